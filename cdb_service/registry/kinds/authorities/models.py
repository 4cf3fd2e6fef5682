from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import GUID, JsonB
from cdb_service.db.revisions import EntryModel


class Authority(EntryModel):
    __tablename__ = "authorities"
    __table_args__ = (UniqueConstraint("owner", "ref"),)

    code: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    names: Mapped[dict[str, Any]] = mapped_column(JsonB)
    address: Mapped[dict[str, Any] | None] = mapped_column(JsonB)
    contacts: Mapped[list[Any]] = mapped_column(JsonB)
    languages: Mapped[list[Any]] = mapped_column(JsonB)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("authorities.id", ondelete="RESTRICT"), index=True
    )
    routing_party_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("routing_parties.id", ondelete="RESTRICT"), index=True
    )
