"""Owners and participation as a write sees them: the registry's `owners` entries, read
in the write's own transaction, over the defaults of `kernel/owners.py`.

A document's owner must be an owner (a member state, EJ, or a third country an
operator registered); a jurisdiction criterion's instrument one its owner takes part
in (a 422 naming `instrument`); a geo key's country a member state or a registered
third country.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cdb_service.kernel import codes
from cdb_service.kernel.owners import Owners
from cdb_service.kernel.problems import FieldError
from cdb_service.registry.kinds.owners.models import Owner
from cdb_service.registry.kinds.schemas import EntryIn
from cdb_service.registry.kinds.spec import KindSpec

CRITERIA = "jurisdiction-criteria"


async def owners_in(session: AsyncSession) -> Owners:
    """The owners as this session sees them (the table holds one row per operator's entry)."""
    rows = await session.execute(select(Owner.code, Owner.name, Owner.instruments))
    return Owners.of({"code": c, "name": n, "instruments": i} for c, n, i in rows)


def owner_errors(owners: Owners, kind: KindSpec, document: EntryIn) -> list[FieldError]:
    owner = document.owner
    if owner == codes.COMMISSION:
        return []
    if not owners.is_owner(owner):
        text = codes.unknown_code(owner, "owners", owners.names(), codes.GREECE_HINT)
        return [FieldError(("owner",), f"{text}; an operator registers a third country's "
                           "central authority (POST /api/v1/owners)")]  # fmt: skip
    if kind.name != CRITERIA:
        return []
    errors = []
    instrument = getattr(document, "instrument", "")
    if not owners.takes_part(owner, instrument):
        errors.append(FieldError(("instrument",), owners.why_not(owner, instrument),
                                 "not_participating"))  # fmt: skip
    for n, key in enumerate(getattr(document, "geo", ())):
        if key.country not in codes.COUNTRIES and not owners.is_third_country(key.country):
            text = codes.unknown_code(key.country, "countries", owners.countries(),
                                      codes.GREECE_HINT)  # fmt: skip
            errors.append(FieldError(("geo", n, "country"), text))
    return errors
