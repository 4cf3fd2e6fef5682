from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar

from pydantic import (
    AfterValidator,
    Field,
    ValidationInfo,
    field_validator,
)

from cdb_service.kernel import calendar
from cdb_service.registry.kinds.fields import OwnerOrCommission, ShortText, Text
from cdb_service.registry.kinds.maintenance_windows.models import DERIVED
from cdb_service.registry.kinds.schemas import EntryIn

WindowOwner = OwnerOrCommission


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone offset (e.g. 2027-01-12T20:00:00+01:00)")
    # Every later computation (notice periods, UTC storage) must be able to move it.
    calendar.check_year(value)  # an OutsideCalendar is a ValueError: the field's error
    return value


AwareDatetime = Annotated[dt.datetime, AfterValidator(_aware)]


class MaintenanceWindowIn(EntryIn):
    # Set by the server (announced_at) or derived from the window: sent back as read,
    # they are dropped. The kind's SPEC names the same (KindSpec checks that they agree).
    server_set: ClassVar[frozenset[str]] = frozenset(("announced_at", *DERIVED))

    owner: WindowOwner = Field(  # type: ignore[assignment]
        description="EC for the central service; a member state or EJ for its national parts"
    )
    component: ShortText = Field(description="e.g. cdb, connector, ris")
    starts_at: AwareDatetime = Field(
        description="when the maintenance begins (with a time zone offset)"
    )
    ends_at: AwareDatetime = Field(
        description="when it is planned to end (with a time zone offset)"
    )
    reason: Text = Field(description="what is done, as announced to the member states")
    cancelled: bool = Field(
        default=False, description="true: it will not take place (a window is never deleted)"
    )

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, ends_at: dt.datetime, info: ValidationInfo) -> dt.datetime:
        starts_at = info.data.get("starts_at")
        if starts_at and ends_at <= starts_at:
            raise ValueError("must be after starts_at")
        return ends_at
