"""`GET /api/v1/quality`: an owner's data-quality findings, as JSON or CSV."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import Parameter
from pydantic import BaseModel, Field

from cdb_service.kernel.calendar import today
from cdb_service.quality.report import CSV_COLUMNS, as_csv
from cdb_service.quality.service import owner_report
from cdb_service.registry.store.reads import EntryReads
from cdb_service.security import policy
from cdb_service.security.policy import Principal
from cdb_service.settings import Settings
from cdb_service.web.docs import answer, operation, problems
from cdb_service.web.negotiation import require_json


class Finding(BaseModel):
    id: str = Field(description="stable across reports")
    rule: str = Field(description="the rule that found it")
    severity: Literal["error", "warning", "info"] = Field(description="error, warning or info")
    kind: str | None = Field(description="the entry's kind")
    entry_id: str | None = Field(description="the entry's id")
    key: str | None = Field(description="the entry's natural key (code, name, ref)")
    message: str = Field(description="what is wrong")
    action: str = Field(description="what to do about it")
    detail: dict[str, Any] = Field(description="the facts behind it")


class QualityReport(BaseModel):
    """`format=csv` gives the findings as CSV (text/csv) instead."""

    owner: str = Field(description="the owner reported on")
    date: dt.date = Field(description="the day the report holds for")
    revision: int = Field(description="the registry revision it was read at")
    summary: dict[str, int] = Field(description="findings per severity")
    findings: list[Finding] = Field(description="the findings")


CSV_FORM = Schema(
    type=OpenAPIType.STRING,
    description=f"`format=csv`: a header row ({', '.join(CSV_COLUMNS)}), then one row per finding",
)


class QualityController(Controller):
    path = "/quality"
    tags = ["quality"]  # noqa: RUF012

    @get(
        "/",
        summary="An owner's data-quality findings (Annex I 7.6: complete, exact, current)",
        description="Findings with severity (error, warning, info), the entry, and what to do: "
        "unroutable authorities, criteria on retired authorities, unused routing parties, "
        "certificates expiring within 30/60/90 days, missing names and contacts, coverage of "
        "the state's postal codes per instrument and competence, unbroken ties, entries due "
        "for review. Each finding's `id` is stable across reports. Administrators of the "
        "owner and operators.",
        responses=problems(406) | answer(QualityReport),
        operation_class=operation(forms={"text/csv": CSV_FORM}),
        media_type="application/json",
    )
    async def quality(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[EntryReads],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        owner: str | None = Parameter(default=None, description="default: the caller's owner"),
        format: Literal["json", "csv"] = Parameter(
            default="json", description="json (default, the report) or csv (its findings)"
        ),
        date: dt.date | None = Parameter(default=None, description="as of; default: today"),
        review_days: int | None = Parameter(
            default=None, ge=1, le=36_500, description="review period in days (at most 100 years)"
        ),
    ) -> Response[Any]:
        if format == "json":
            require_json(request.scope)
        wanted = policy.owner_acted_for(principal, owner)
        if not policy.may_write(principal, wanted):
            raise policy.forbidden(
                f"the quality report of {wanted} is for its administrators and operators"
            )
        body = await owner_report(
            reads, wanted, date or today(), review_days or settings.quality_review_days,
            settings.rollover_min_overlap_working_days, settings.rollout_alert_working_days,
        )  # fmt: skip
        if format == "csv":
            return Response(as_csv(body).encode(), media_type="text/csv")
        return Response(body)
