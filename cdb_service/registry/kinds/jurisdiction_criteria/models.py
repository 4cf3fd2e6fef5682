from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import GUID, Base, JsonB
from cdb_service.db.revisions import EntryModel


class JurisdictionCriterion(EntryModel):
    __tablename__ = "jurisdiction_criteria"
    __table_args__ = (UniqueConstraint("owner", "ref"),)

    authority_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("authorities.id", ondelete="RESTRICT"), index=True
    )
    instrument: Mapped[str] = mapped_column(String(60), index=True)
    competence: Mapped[str] = mapped_column(String(20))
    subject_matters: Mapped[list[Any]] = mapped_column(JsonB)
    stages: Mapped[list[Any]] = mapped_column(JsonB)
    geo: Mapped[list[Any]] = mapped_column(JsonB)
    priority: Mapped[int] = mapped_column(Integer)


class GeoKey(Base):
    """Projection of `geo`: one row per key, indexed for resolution."""

    __tablename__ = "criterion_geo_keys"
    __table_args__ = (Index("ix_criterion_geo_keys_lookup", "country", "scheme", "code"),)

    entry_id: Mapped[uuid.UUID] = mapped_column(
        GUID,
        ForeignKey("jurisdiction_criteria.id", ondelete="CASCADE"),
        primary_key=True,
    )
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    scheme: Mapped[str] = mapped_column(String(20), primary_key=True)
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
