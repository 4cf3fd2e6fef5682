from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from cdb_service.registry.kinds.fields import ShortText, Text
from cdb_service.registry.kinds.maintenance_windows.schemas import AwareDatetime, WindowOwner
from cdb_service.registry.kinds.schemas import EntryIn


class IncidentIn(EntryIn):
    # Set by the server (notified_at) or derived (status, from ended_at): sent back as
    # read, they are dropped. The kind's SPEC names the same (KindSpec checks that they agree).
    server_set: ClassVar[frozenset[str]] = frozenset(("notified_at", "status"))

    owner: WindowOwner = Field(  # type: ignore[assignment]
        description="EC for the central service; a member state or EJ for its national parts"
    )
    component: ShortText = Field(description="e.g. cdb, connector, ris")
    description: Text = Field(description="what is unavailable, as told to the member states")
    started_at: AwareDatetime = Field(description="when the unavailability began")
    detected_at: AwareDatetime | None = Field(
        default=None,
        description="when it was detected (the probe: the confirming failure); "
        "left out: kept, or on creation the time the incident is recorded",
    )
    ended_at: AwareDatetime | None = Field(
        default=None, description="when the service recovered; setting it closes the incident"
    )
    source: Literal["operator", "probe"] = Field(
        default="operator", description="who recorded it: an operator, or the probe"
    )
    expected_recovery_at: AwareDatetime | None = Field(
        default=None,
        validate_default=True,
        description="Annex I 6.10: required while an operator's incident is open "
        "(an estimate: update it as it changes)",
    )

    @field_validator("detected_at", "ended_at")
    @classmethod
    def _not_before_start(
        cls, value: dt.datetime | None, info: ValidationInfo
    ) -> dt.datetime | None:
        started_at = info.data.get("started_at")
        if value is not None and started_at is not None and value < started_at:
            raise ValueError("must not be before started_at")
        return value

    @field_validator("expected_recovery_at")
    @classmethod
    def _expected_recovery(
        cls, value: dt.datetime | None, info: ValidationInfo
    ) -> dt.datetime | None:
        started_at = info.data.get("started_at")
        if value is not None and started_at is not None and value <= started_at:
            raise ValueError("must be after started_at")
        still_open = "ended_at" in info.data and info.data["ended_at"] is None
        if value is None and still_open and info.data.get("source") == "operator":
            raise ValueError(
                "is required while an incident opened by an operator is open "
                "(Annex I 6.10: notified with the expected recovery time)"
            )
        return value
