"""`POST /api/v1/import`: a national batch, whole or not at all; `dry_run` shows the diff."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from litestar.params import Parameter

from cdb_service.registry.batches import Batches
from cdb_service.registry.imports import owner_of_batch, parse_stream
from cdb_service.security import policy
from cdb_service.security.audit import Who
from cdb_service.security.policy import Principal
from cdb_service.web.ceilings import Ceilings
from cdb_service.web.docs import problems

# A whole member state's registry in one batch fits with room to spare (documented).
MAX_BATCH_BYTES = 64 * 1024 * 1024


class ImportController(Controller):
    path = "/import"
    tags = ["import"]  # noqa: RUF012

    @post(
        "/",
        status_code=200,
        summary="Apply a national batch (NDJSON) as one revision",
        description="One entry per line: `kind` and the document, keyed by natural key (code, "
        "routing-party name, ref). `mode=merge` creates and updates; `mode=replace` also deletes "
        "the owner's entries of those kinds that the batch no longer names. `dry_run=true` "
        "returns the diff and writes nothing.",
        responses=problems(400, 409, 413, 422, 429, 503),
        request_max_body_size=MAX_BATCH_BYTES,
    )
    async def apply(
        self,
        request: Request[Any, Any, Any],
        batches: NamedDependency[Batches],
        principal: NamedDependency[Principal],
        who: NamedDependency[Who],
        ceilings: NamedDependency[Ceilings],
        mode: Literal["merge", "replace"] = "merge",
        dry_run: bool = False,
        owner: str | None = Parameter(default=None, description="default: the caller's owner"),
    ) -> dict[str, Any]:
        batch_owner = owner_of_batch(owner, principal.administers, principal.is_operator)
        policy.require_write(principal, batch_owner)
        async with ceilings.imports.slot(principal.certificate.facts.x5t_s256):
            batch = await parse_stream(request.stream(), batch_owner)
            batch.raise_if_invalid()
            result = await batches.apply(
                batch.items,
                who,
                replace_owner=batch_owner if mode == "replace" else None,
                dry_run=dry_run,
                summary=f"import {batch_owner} ({mode})",
            )
        return {
            "owner": batch_owner,
            "mode": mode,
            "dry_run": dry_run,
            "revision": result.revision,
            "counts": result.counts(),
            "changes": [row.as_dict() for row in result.diff if row.change.value != "unchanged"],
        }
