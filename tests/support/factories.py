"""Small valid documents for tests, each a dict a client could send."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cdb_service.security.pki import Issued, issue, make_ca

_CA: Issued | None = None


def certificate_pem(days: int = 365, name: str = "ap.example.eu", country: str | None = None
                    ) -> str:  # fmt: skip
    global _CA
    _CA = _CA or make_ca("test CA")
    now = dt.datetime.now(dt.UTC)
    return issue(_CA, name, not_before=now - dt.timedelta(days=2),
                 not_after=now + dt.timedelta(days=days), country=country).cert_pem  # fmt: skip


def routing_party(owner: str = "DE", name: str = "de-ap", **extra: Any) -> dict[str, Any]:
    return {
        "owner": owner,
        "name": name,
        "identifiers": [{"party_id": name}],
        "endpoint_url": f"https://{name}.example.eu/msh",
        "roles": ["http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/responder"],
        "services": [{"service": "urn:test", "actions": ["Submit"]}],
    } | extra


def authority(owner: str = "DE", code: str = "DE:COURT-1", **extra: Any) -> dict[str, Any]:
    return {
        "owner": owner,
        "code": code,
        "kind": "court",
        "names": {"de": "Amtsgericht Eins", "en": "Local Court One"},
        "contacts": [{"channel": "email", "value": "court1@justiz.example.de"}],
        "languages": ["de", "en"],
    } | extra


def criterion(
    owner: str = "DE", authority_code: str = "DE:COURT-1", **extra: Any
) -> dict[str, Any]:
    return {
        "owner": owner,
        "ref": "crit-1",
        "authority_code": authority_code,
        "instrument": "eio",
        "competence": "execute",
        "geo": [{"scheme": "postal-code", "code": "10115"}, {"scheme": "nuts3", "code": "DE300"}],
    } | extra
