from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import JsonB
from cdb_service.db.revisions import EntryModel


class Owner(EntryModel):
    __tablename__ = "owners"

    code: Mapped[str] = mapped_column(String(2), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    instruments: Mapped[list[Any]] = mapped_column(JsonB)
