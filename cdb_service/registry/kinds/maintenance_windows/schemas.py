from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cdb_service.kernel import calendar
from cdb_service.kernel.recurrence import LONGEST_MINUTES, Recurrence
from cdb_service.registry.kinds.fields import OwnerOrCommission, ShortText, Text, label_of
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


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class RecurrenceIn(BaseModel):
    """A regular, fixed window (Annex I 6.5, 6.8): the day and time it repeats."""

    model_config = ConfigDict(extra="forbid", field_title_generator=label_of)

    frequency: Literal["weekly", "monthly"] = Field(description="how often it repeats")
    # Stored and answered as declared: a weekly window has no day_of_month member.
    weekday: Weekday | None = Field(
        default=None, exclude_if=lambda v: v is None, description="weekly: the day of the week"
    )
    day_of_month: int | None = Field(
        default=None, ge=1, le=28, exclude_if=lambda v: v is None,
        description="monthly: the day (1 to 28, every month has it)",
    )  # fmt: skip
    time: str = Field(
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="when each occurrence starts, HH:MM on the Brussels clock (CET/CEST)",
    )
    duration_minutes: int = Field(
        ge=1, le=LONGEST_MINUTES, description="how long each occurrence lasts, in minutes"
    )

    @model_validator(mode="after")
    def _one_day_rule(self) -> Self:
        if self.frequency == "weekly" and (self.weekday is None or self.day_of_month):
            raise ValueError("a weekly window names a weekday and no day_of_month")
        if self.frequency == "monthly" and (self.day_of_month is None or self.weekday):
            raise ValueError("a monthly window names a day_of_month and no weekday")
        return self


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
    recurrence: RecurrenceIn | None = Field(
        default=None,
        description="a regular, fixed window (Annex I 6.5, 6.8): it repeats on this day and "
        "time from starts_at until ends_at; its notice is checked once, against the first "
        "occurrence, and each occurrence (and a one-off window inside one) needs no other",
    )

    @field_validator("recurrence")
    @classmethod
    def _occurs(cls, recurrence: RecurrenceIn | None, info: ValidationInfo) -> RecurrenceIn | None:
        starts_at, ends_at = info.data.get("starts_at"), info.data.get("ends_at")
        if recurrence is not None and starts_at and ends_at:
            schedule = Recurrence.of(recurrence.model_dump())
            if schedule.first((starts_at, ends_at)) is None:
                raise ValueError("no occurrence lies wholly between starts_at and ends_at")
        return recurrence

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, ends_at: dt.datetime, info: ValidationInfo) -> dt.datetime:
        starts_at = info.data.get("starts_at")
        if starts_at and ends_at <= starts_at:
            raise ValueError("must be after starts_at")
        return ends_at
