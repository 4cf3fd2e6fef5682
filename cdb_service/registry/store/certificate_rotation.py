"""Certificate rotation: one certificate swapped for its renewal wherever it is used, at once.

A connector's certificate often serves several routing parties; replacing it one
party at a time would leave the registry half-rotated between writes. The caller
passes `authorize`, the policy's check for one owner, so that the decision stays
with the policy while it is made on the very rows this revision changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db.documents import document_of
from cdb_service.kernel.problems import not_found
from cdb_service.registry.kinds.routing_parties import SPEC
from cdb_service.registry.store.references import EntryIndex, Named
from cdb_service.registry.store.unit_of_work import UnitOfWork
from cdb_service.registry.store.validation import validate
from cdb_service.registry.store.writes import column_values
from cdb_service.security.audit import Who, as_who


async def rotate_certificate(
    sessions: async_sessionmaker[AsyncSession],
    old_sha256: str,
    new_pem: str,
    who: Who | str,
    authorize: Callable[[str], None],
) -> dict[str, Any]:
    """Swap one certificate for its renewal in every routing party that uses it."""
    kind = SPEC
    async with UnitOfWork(sessions, who, "rotate certificate") as writer:
        rows: Sequence[Any] = (
            await writer.session.scalars(select(kind.model).order_by(kind.model.id))
        ).all()
        using = [r for r in rows if any(c.get("sha256") == old_sha256 for c in r.certificates)]
        if not using:
            raise not_found(kind.name, f"using a certificate with SHA-256 {old_sha256}")
        for row in using:
            authorize(row.owner)
        renewed = []
        for row in using:
            document = document_of(kind, row)
            document["certificates"] = [
                {"use": c["use"], "pem": new_pem if c.get("sha256") == old_sha256 else c["pem"]}
                for c in document["certificates"]
            ]
            renewed.append((row, validate(kind, document)))
        # Loaded with the renewed documents: whose parties hold the new certificate.
        index = await EntryIndex.load(writer.session, [Named.of(kind, doc) for _, doc in renewed],
                                      operator=as_who(who).operator)  # fmt: skip
        for row, doc in renewed:
            await writer.update(kind, row, column_values(writer, index, kind, doc, row))
    return {"revision": writer.revision, "routing_parties": [str(r.id) for r in using]}
