"""The HTTP shapes of acknowledgements and rollouts (`rollouts_controller.py`): what an
access point posts, what it and its operators read back, and a rollout's answer."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MAX_ANSWER_BYTES = 4096
MAX_ANSWER_DEPTH = 8
FUTURE_SKEW = dt.timedelta(minutes=5)  # clocks of access points drift; more is a mistake
TargetKind = Literal["connector4-dir", "domibus", "connector-ng"]


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: TargetKind = Field(
        description="what was configured: connector4-dir (connector 4.x's start-time import "
        "directory), domibus (Domibus /ext/pmode and /ext/truststore), connector-ng "
        "(connector-ng's processing modes)"
    )
    name: str = Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$",
        description="the operator's name for that instance (e.g. gw-1): letters, digits, "
        ". _ : @ / -",
    )  # fmt: skip


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


class AcknowledgementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    package_digest: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="the package's digest (manifest `package_digest`, header "
        "CDB-Package-Digest): 64 lower-case hex digits",
    )
    target: TargetIn = Field(description="where the package was applied (or is scheduled)")
    applied_at: dt.datetime = Field(
        description="when it was applied (ISO 8601 with an offset; not in the future); with "
        "`scheduled_for`, when the package was verified and scheduled"
    )
    scheduled_for: dt.datetime | None = Field(
        default=None,
        description="absent or null: the package was applied. Set (ISO 8601 with an offset, "
        "not before applied_at): the package is verified and held, to be applied at this "
        "moment (its effective_from). The applied acknowledgement of the same digest and "
        "target later upgrades this one",
    )
    answer: str | dict[str, Any] = Field(
        description="the target's own answer (e.g. Domibus's GET /ext/pmode/current id and "
        f"description): a string or an object, at most {MAX_ANSWER_BYTES} bytes as JSON"
    )

    @field_validator("applied_at")
    @classmethod
    def _applied_at(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("give an offset (e.g. Z or +01:00)")
        if value.year < 2000:
            raise ValueError("before the year 2000")
        if value > dt.datetime.now(dt.UTC) + FUTURE_SKEW:
            raise ValueError("is in the future")
        return value.astimezone(dt.UTC)

    @field_validator("scheduled_for")
    @classmethod
    def _scheduled_for(cls, value: dt.datetime | None, info: ValidationInfo
                       ) -> dt.datetime | None:  # fmt: skip
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("give an offset (e.g. Z or +01:00)")
        if value.year < 2000:
            raise ValueError("before the year 2000")
        held = info.data.get("applied_at")  # absent when applied_at itself was refused
        if held is not None and value < held:
            raise ValueError("before applied_at (when the package was scheduled)")
        return value.astimezone(dt.UTC)

    @field_validator("answer")
    @classmethod
    def _answer(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        if _depth(value) > MAX_ANSWER_DEPTH:
            raise ValueError(f"nested deeper than {MAX_ANSWER_DEPTH} levels")
        if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_ANSWER_BYTES:
            raise ValueError(f"longer than {MAX_ANSWER_BYTES} bytes as JSON")
        if "\x00" in json.dumps(value, ensure_ascii=False):
            raise ValueError("holds a NUL character")
        return value


class TargetOut(BaseModel):
    kind: str = Field(description="connector4-dir, domibus or connector-ng")
    name: str = Field(description="the operator's name for the instance")


class AcknowledgementOut(BaseModel):
    id: uuid.UUID = Field(description="the acknowledgement's id")
    party: str = Field(description="the access point (routing party) name")
    package_digest: str = Field(description="the package applied")
    target: TargetOut = Field(description="where")
    applied_at: dt.datetime = Field(
        description="when, as the access point says: applied, or (scheduled_for set) "
        "verified and scheduled"
    )
    received_at: dt.datetime = Field(
        description="when the registry received it first; once a scheduled acknowledgement "
        "is upgraded, when the applied one was received"
    )
    answer: str | dict[str, Any] = Field(description="the target's own answer")
    acknowledged_by: str = Field(description="who posted it (the token's subject)")
    scheduled_for: dt.datetime | None = Field(
        description="null: applied; set: held and scheduled to be applied at that moment, "
        "not applied yet"
    )


class PackageScope(BaseModel):
    owner: str | None = Field(description="`?owner=` the package was fetched with")
    whole_network: bool = Field(description="`?whole_network=true`: every party")


class AccessPointStatus(BaseModel):
    party: str = Field(description="the access point (routing party) that must act")
    owner: str = Field(description="its owner")
    target: TargetOut | None = Field(description="one of its targets; null: none known")
    state: Literal["confirmed", "scheduled", "stale", "unconfirmed"] = Field(
        description="confirmed: applied the package as of effective_from or a later one; "
        "scheduled: not applied yet, but holds such a package scheduled for at most "
        "60 s after effective_from (it will switch on time); stale: acknowledged only "
        "packages without the change (or holds one scheduled later than the change); "
        "unconfirmed: never acknowledged any package"
    )
    package_digest: str | None = Field(
        description="the digest of its package as of effective_from (GET "
        "/packages/{party}?at=effective_from); null when that package cannot be built"
    )
    acknowledged_digest: str | None = Field(
        description="what the target acknowledged: the confirming (or scheduled) package, "
        "else its latest applied one, else its latest one"
    )
    applied_at: str | None = Field(
        description="when the target applied that; null when it is only scheduled"
    )
    scheduled_for: str | None = Field(
        description="when the target will apply that package it holds; null when applied"
    )
    scope: PackageScope | None = Field(
        description="the scope of the confirming package, as its manifest's content.scope: "
        "the default one (owner null, whole_network false), `?whole_network=true`, or "
        "`?owner=` the changed party's owner (the only owner scope that carries it); null "
        "when not confirmed. A package of another scope does not carry the change: stale"
    )


class CertificateWindow(BaseModel):
    use: str = Field(description="signing, encryption or tls")
    sha256: str = Field(description="SHA-256 fingerprint")
    subject: str = Field(description="subject distinguished name")
    accept_from: str = Field(description="from when access points accept it")
    use_from: str = Field(description="from when it is used")
    accept_until: str | None = Field(description="until when it is accepted")


RolloutChange = Literal[
    "accepted",
    "used",
    "no-longer-accepted",
    "added",
    "retired",
    "name",
    "endpoint",
    "identifiers",
    "roles",
    "services",
    "certificates",
]


class Rollout(BaseModel):
    id: str = Field(description="stable id of the change")
    kind: Literal["certificate", "routing"] = Field(
        description="certificate: an edge of a certificate's window; routing: a change of "
        "the party's PMode entry (added, retired, name, endpoint, identifiers, roles, "
        "services, or certificates accepted or used at once by an edit)"
    )
    party: str = Field(description="the routing party that changes")
    owner: str = Field(description="its owner")
    changes: list[RolloutChange] = Field(description="what changes at effective_from")
    description: str = Field(description="what changes, in words (before → after)")
    certificate: CertificateWindow | None = Field(
        description="the certificate and its window (kind certificate; null otherwise)"
    )
    revision: int | None = Field(
        description="the registry revision whose edit made the change (kind routing, at "
        "once); null for a window's edge or a validity date"
    )
    effective_from: str = Field(description="when (ISO 8601, UTC)")
    pending: bool = Field(description="effective_from is still ahead")
    confirmed: int = Field(
        description="access-point targets that confirmed: those that applied a package "
        "carrying the change, plus, while the change is pending, those holding one "
        "scheduled on time (`scheduled`): the gauge cdb_rollout_unconfirmed_access_points "
        "is access_points_total minus this"
    )
    scheduled: int = Field(
        description="access-point targets holding a carrying package scheduled on time, "
        "not applied yet (state scheduled); counted in `confirmed` while pending"
    )
    access_points_total: int = Field(description="access-point targets (or points) listed")
    access_points: list[AccessPointStatus] = Field(description="per access point and target")


class RolloutPage(BaseModel):
    items: list[Rollout] = Field(description="changes, soonest first")
    revision: int = Field(description="the registry revision they were read at")
    next: str | None = Field(description="cursor of the following page")


class AcknowledgementListed(AcknowledgementOut):
    current: bool = Field(
        description="the digest is the party's package in force now (default scope, "
        "`?whole_network=true`, or `?owner=` its own owner): the target runs what it should"
    )


class AcknowledgementPage(BaseModel):
    items: list[AcknowledgementListed] = Field(description="newest (received) first")
    current_package_digest: str | None = Field(
        description="the digest of the party's package in force now (default scope); null "
        "when the party is not valid today or cannot be expressed as a PMode"
    )
    next: str | None = Field(description="cursor of the following page")
