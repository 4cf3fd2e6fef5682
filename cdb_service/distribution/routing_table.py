"""The routing table (Annex I 7.2(c)): every routing party with the recipients it serves.

One consistent snapshot of the registry is read (`read_snapshot`): the routing parties
valid on the day, and the authorities and national members valid on the day that name
them. From it come two shapes: JSON for any client, and a Domibus PMode configuration
(XML) that an e-CODEX access point can upload as it is (`distribution/pmode.py`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cdb_service.db import documents
from cdb_service.db import revisions as rev
from cdb_service.db.documents import document_of
from cdb_service.distribution import pmode
from cdb_service.kernel import codes
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.authorities.models import Authority
from cdb_service.registry.kinds.national_members.models import NationalMember
from cdb_service.registry.kinds.routing_parties.models import RoutingParty


@dataclass
class RoutingTable:
    revision: int
    day: dt.date
    parties: list[dict[str, Any]] = field(default_factory=list)

    def party_names(self) -> list[str]:
        return [p["name"] for p in self.parties]

    def digest(self) -> str:
        """A digest of what a connector acts on: the parties and the recipients they serve.

        It leaves out the revision and the day, so a write elsewhere (an authority's
        phone number, a criterion) or a new day leaves it as it was, and connectors do
        not reload a PMode that would come out the same.
        """
        canonical = json.dumps(self.parties, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def etag(digest: str, form: str, party: str | None) -> str:
    """The routing table's tag: weak, because the body also says the revision and the
    time it was generated.

    The tag follows the parties and their recipients only (see `RoutingTable.digest`);
    the format and a chosen receiving party are part of it, since they change the body.
    """
    chosen = f"-{party}" if party else ""
    return f'W/"{digest}-{form}{chosen}"'


class TableDigests:
    """The routing table's digest per (revision, day), as far as this process has read it.

    A conditional GET at a revision already seen is answered from here without any
    database work; the few most recent entries are kept. One per worker, built at
    start-up (`Services.routing_digests`).
    """

    KEEP = 8

    def __init__(self) -> None:
        self._known: dict[tuple[int, dt.date], str] = {}

    def get(self, revision: int, day: dt.date) -> str | None:
        return self._known.get((revision, day))

    def put(self, revision: int, day: dt.date, digest: str) -> None:
        self._known[(revision, day)] = digest
        while len(self._known) > self.KEEP:
            del self._known[next(iter(self._known))]


async def read_table(session: AsyncSession, day: dt.date) -> RoutingTable:
    """The routing table of the session's snapshot (open it with `read_snapshot`)."""
    revision = await rev.head_revision(session)
    kind = KINDS["routing-parties"]
    rows = (
        await session.scalars(
            select(RoutingParty)
            .where(rev.valid_on(RoutingParty, day))
            .order_by(RoutingParty.name, RoutingParty.id)
        )
    ).all()
    recipients: dict[uuid.UUID, set[str]] = {row.id: set() for row in rows}
    # An entry of an owner the party no longer serves (unshared) is routed through no one.
    served = {row.id: {row.owner, *(row.shared_with or ())} for row in rows}
    if recipients:
        ids = list(recipients)
        authorities = await session.execute(
            select(Authority.routing_party_id, Authority.code, Authority.owner).where(
                Authority.routing_party_id.in_(ids), rev.valid_on(Authority, day)
            )
        )
        for party_id, code, owner in authorities:
            if party_id is not None and owner in served[party_id]:
                recipients[party_id].add(code)
        members = await session.execute(
            select(
                NationalMember.routing_party_id, NationalMember.country, NationalMember.owner
            ).where(NationalMember.routing_party_id.in_(ids), rev.valid_on(NationalMember, day))
        )
        for party_id, country, owner in members:
            if party_id is not None and owner in served[party_id]:
                recipients[party_id].add(codes.desk_code(country))
    parties = [_party_json(document_of(kind, row), sorted(recipients[row.id])) for row in rows]
    return RoutingTable(revision, day, parties)


def tables_by_day(session: AsyncSession) -> Callable[[dt.date], Awaitable[RoutingTable]]:
    """`read_table` of this session, each day read once (a package or a rollout asks for
    the same days again and again)."""
    tables: dict[dt.date, RoutingTable] = {}

    async def table_of(day: dt.date) -> RoutingTable:
        if day not in tables:
            tables[day] = await read_table(session, day)
        return tables[day]

    return table_of


def _party_json(doc: dict[str, Any], final_recipients: list[str]) -> dict[str, Any]:
    return {
        "id": doc["id"],
        "name": doc["name"],
        "owner": doc["owner"],
        "identifiers": [
            {"party_id": i["party_id"], "party_id_type": i["party_id_type"]}
            for i in doc["identifiers"]
        ],
        "endpoint_url": doc["endpoint_url"],
        "roles": list(doc["roles"]),
        "services": [
            {
                "service": s["service"],
                "service_type": s.get("service_type"),
                "actions": list(s["actions"]),
            }
            for s in doc["services"]
        ],
        "certificates": [
            {
                "use": c.get("use"),
                "sha256": c.get("sha256"),
                "subject": c.get("subject"),
                "not_after": c.get("not_after"),
                # The rollover window (`registry/kinds/routing_parties/rollover.py`): in
                # truststores from accept_from to accept_until, used from use_from.
                "accept_from": c.get("accept_from"),
                "use_from": c.get("use_from"),
                "accept_until": c.get("accept_until") or c.get("not_after"),
                "pem": c.get("pem"),
            }
            for c in doc["certificates"]
        ],
        "go_live_at": doc.get("go_live_at"),
        "valid_from": doc.get("valid_from"),
        "valid_to": doc.get("valid_to"),
        "final_recipients": final_recipients,
    }


def as_json(table: RoutingTable, generated_at: dt.datetime) -> dict[str, Any]:
    return {
        "revision": table.revision,
        "valid_at": table.day.isoformat(),
        "generated_at": documents.to_json_value(generated_at),
        "parties": table.parties,
        "warnings": warnings(table),
    }


def warnings(table: RoutingTable) -> list[dict[str, str]]:
    """The parties left out of every PMode, and why: their owners must correct them."""
    return [
        {"party": p["name"], "owner": p["owner"], "code": "inexpressible-in-pmode",
         "detail": f"left out of every PMode: {why}"}
        for p in table.parties
        if (why := pmode.inexpressible(p)) is not None
    ]  # fmt: skip


def as_pmode(table: RoutingTable, receiving_party: str) -> pmode.Pmode:
    return pmode.build(table.parties, receiving_party)
