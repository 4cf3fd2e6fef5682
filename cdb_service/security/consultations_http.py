"""`GET /api/v1/consultations`: who read which entry's named persons, for operators.

Regulation (EU) 2018/1725 (article 88) keeps such logs for verifying that processing
is lawful and for self-monitoring: operators read them, nobody else; each reading of
them is in the audit trail. Keyset pages, newest row last, as every collection.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from typing import Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import Parameter
from pydantic import BaseModel, Field
from sqlalchemy import or_, select

from cdb_service.kernel.problems import unknown_cursor
from cdb_service.security import audit, policy
from cdb_service.security.audit import Who
from cdb_service.security.consultations import Consultation, ConsultationLog
from cdb_service.security.policy import Principal
from cdb_service.web.docs import answer, problems


class ConsultationOut(BaseModel):
    kind: str = Field(description="the entry's kind (national-members, national-correspondents)")
    entry_id: uuid.UUID = Field(description="the entry whose named person was read")
    version: int = Field(description="the entry's version that was read")
    action: str = Field(
        description="how: entry, page, history, diff, export, extract, changes, console"
    )
    subject: str = Field(description="who read it: the token's subject (console: and name)")
    client_id: str | None = Field(description="the token's client id")
    cert_thumbprint: str | None = Field(
        description="the client certificate's SHA-256 thumbprint (x5t#S256); null in the console"
    )
    source_ip: str | None = Field(description="the source address, as the audit trail has it")
    window_start: dt.datetime = Field(description="the hour these reads are counted in")
    count: int = Field(description="how many times it was read in that hour")
    first_at: dt.datetime = Field(description="the first read in that hour")
    last_at: dt.datetime = Field(description="the last read in that hour")
    request_id: str | None = Field(description="the first read's request id (access log)")


class ConsultationPage(BaseModel):
    items: list[ConsultationOut] = Field(description="the consultations, oldest first")
    next: str | None = Field(description="the cursor of the next page, or null")


def _cursor(last: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"c": last}).encode()).decode().rstrip("=")


def _after(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor[:200] + "=" * (-len(cursor) % 4)))
        last = data["c"]
        if not isinstance(last, int) or isinstance(last, bool) or last < 0:
            raise ValueError("not a row")
        return last
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise unknown_cursor() from None


class ConsultationController(Controller):
    path = "/consultations"
    tags = ["audit"]  # noqa: RUF012

    @get(
        "/",
        summary="Who read which named person, when (operators)",
        description="Every read by an administrator or operator that showed a named person "
        "(a national member's or national correspondent's `person`): one row per caller, "
        "entry version and way of reading per hour, with the number of reads. Written a few "
        "seconds after the read; kept `CDB_CONSULTATION_RETENTION_DAYS` after the last read. "
        "`who` matches the subject, the client id or the certificate thumbprint.",
        responses=problems(403) | answer(ConsultationPage),
    )
    async def page(
        self,
        principal: NamedDependency[Principal],
        who: NamedDependency[Who],
        consultations: NamedDependency[ConsultationLog],
        entry: uuid.UUID | None = Parameter(default=None, description="only this entry"),
        kind: str | None = Parameter(default=None, max_length=40, description="only this kind"),
        who_is: str | None = Parameter(
            query="who",
            default=None,
            max_length=300,
            description="only this caller: subject, client id or certificate thumbprint",
        ),
        since: dt.datetime | None = Parameter(
            default=None, description="only those read at or after this instant"
        ),
        until: dt.datetime | None = Parameter(
            default=None, description="only those read before this instant"
        ),
        limit: int = Parameter(default=100, ge=1, le=1000, description="the most rows on a page"),
        cursor: str | None = Parameter(
            default=None, max_length=200, description="the previous page's `next`"
        ),
    ) -> ConsultationPage:
        policy.require_operator(principal, "consultations of personal data are read by operators")
        query = select(Consultation).where(Consultation.id > _after(cursor))
        if entry is not None:
            query = query.where(Consultation.entry_id == entry)
        if kind is not None:
            query = query.where(Consultation.kind == kind)
        if who_is is not None:
            query = query.where(or_(Consultation.subject == who_is,
                                    Consultation.client_id == who_is,
                                    Consultation.cert_thumbprint == who_is))  # fmt: skip
        if since is not None:
            query = query.where(Consultation.last_at >= _aware(since))
        if until is not None:
            query = query.where(Consultation.first_at < _aware(until))
        sessions = consultations.sessions
        async with sessions() as session:
            rows = (await session.scalars(query.order_by(Consultation.id).limit(limit + 1))).all()
        more = len(rows) > limit
        rows = rows[:limit]
        asked = {"entry": str(entry) if entry else None, "kind": kind, "who": who_is,
                 "since": since.isoformat() if since else None, "rows": len(rows)}  # fmt: skip
        await audit.record(sessions, who, "consultations.read", "ok", None,
                           {k: v for k, v in asked.items() if v is not None})  # fmt: skip
        return ConsultationPage(
            items=[ConsultationOut(**_out(row)) for row in rows],
            next=_cursor(rows[-1].id) if more else None,
        )


def _aware(instant: dt.datetime) -> dt.datetime:
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=dt.UTC)


def _out(row: Consultation) -> dict[str, Any]:
    return {name: getattr(row, name) for name in ConsultationOut.model_fields}
