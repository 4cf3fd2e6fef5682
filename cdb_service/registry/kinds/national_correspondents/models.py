from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import GUID, JsonB
from cdb_service.db.revisions import EntryModel


class NationalCorrespondent(EntryModel):
    __tablename__ = "national_correspondents"
    __table_args__ = (UniqueConstraint("owner", "ref"),)

    country: Mapped[str] = mapped_column(String(2), index=True)
    type: Mapped[str] = mapped_column(String(40))
    authority_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("authorities.id", ondelete="RESTRICT"), index=True
    )
    contact: Mapped[dict[str, Any]] = mapped_column(JsonB)
    person: Mapped[dict[str, Any] | None] = mapped_column(JsonB)
    languages: Mapped[list[Any]] = mapped_column(JsonB)
