from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import GUID, Base, DateTimeUTC, JsonB
from cdb_service.db.revisions import EntryModel


class RoutingParty(EntryModel):
    __tablename__ = "routing_parties"
    __table_args__ = (UniqueConstraint("owner", "ref"),)

    name: Mapped[str] = mapped_column(String(100), unique=True)
    identifiers: Mapped[list[Any]] = mapped_column(JsonB)
    endpoint_url: Mapped[str] = mapped_column(String(2000))
    roles: Mapped[list[Any]] = mapped_column(JsonB)
    services: Mapped[list[Any]] = mapped_column(JsonB)
    certificates: Mapped[list[Any]] = mapped_column(JsonB)
    go_live_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC)
    # Other owners whose entries may name this party (see `EntryIndex.lane_errors`,
    # registry/store/references.py).
    shared_with: Mapped[list[Any]] = mapped_column(JsonB, default=list)


class PartyIdentifier(Base):
    """Projection of `identifiers`: an AS4 party id names one routing party only."""

    __tablename__ = "routing_party_identifiers"
    party_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    party_id_type: Mapped[str] = mapped_column(String(200), primary_key=True)
    entry_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("routing_parties.id", ondelete="CASCADE"), index=True
    )
