from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import GUID, JsonB
from cdb_service.db.revisions import EntryModel


class NationalMember(EntryModel):
    __tablename__ = "national_members"
    __table_args__ = (UniqueConstraint("owner", "ref"),)

    country: Mapped[str] = mapped_column(String(2), index=True)
    role: Mapped[str] = mapped_column(String(30))
    contact: Mapped[dict[str, Any]] = mapped_column(JsonB)
    person: Mapped[dict[str, Any] | None] = mapped_column(JsonB)
    languages: Mapped[list[Any]] = mapped_column(JsonB)
    routing_party_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("routing_parties.id", ondelete="RESTRICT"), index=True
    )
