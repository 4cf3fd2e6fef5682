"""E-mail out: a plain-text message naming the event in words, through the SMTP relay."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from cdb_service.kernel.webhooks import in_words
from cdb_service.outbound import SmtpRelay
from cdb_service.settings import Settings


def relay_of(settings: Settings) -> SmtpRelay | None:
    if not settings.smtp_url:
        return None
    return SmtpRelay(
        settings.smtp_url,
        settings.smtp_from,
        settings.smtp_starttls,
        settings.smtp_ca_file,
        settings.webhook_timeout_s,
    )


async def send_email(relay: SmtpRelay, to: str, event: Mapping[str, Any]) -> None:
    """One message; the event id goes in a header too, for a mail filter that deduplicates."""
    subject, text = in_words(event)
    headers = {"X-CDB-Event-Id": str(event["id"]), "X-CDB-Event-Type": str(event["type"])}
    await asyncio.to_thread(relay.send, to, subject, text, headers)
