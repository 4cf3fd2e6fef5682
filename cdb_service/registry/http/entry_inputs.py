"""What an entry request asks, read and checked before the store is asked: the filters, the
sort, `min_revision`, `If-Match`, a merge-patch body, and whose entry a write touches.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.enums import ParamType
from litestar.handlers import BaseRouteHandler
from litestar.params import PathParameter

from cdb_service.kernel import codes
from cdb_service.kernel.problems import (
    PRECONDITION_REQUIRED,
    UNSUPPORTED_MEDIA_TYPE,
    FieldError,
    bad_parameters,
    invalid,
    malformed,
    stale,
    unknown_cursor,
)
from cdb_service.registry.http.deps import reads_of
from cdb_service.registry.http.entry_outputs import etag
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.registry.store.idempotency import IdempotentRequest
from cdb_service.registry.store.reads import EntryReads, Sort
from cdb_service.security import policy
from cdb_service.security.policy import Principal
from cdb_service.settings import Settings
from cdb_service.web.consistency import require_revision
from cdb_service.web.docs import ParameterDoc
from cdb_service.web.pagination import decode_sorted_cursor

IF_MATCH = ParameterDoc(
    "If-Match",
    "the ETag you read: 428 without, 412 when it is no longer current",
    where=ParamType.HEADER,
    required=True,
)
IDEMPOTENCY_KEY = ParameterDoc(
    "Idempotency-Key", "a retry with the same key returns the first result", where=ParamType.HEADER
)
PAGING = frozenset({"limit", "cursor", "valid_at", "revision", "sort", "count", "min_revision"})
MERGE_PATCH = "application/merge-patch+json"
# The `{entry_id}` of every entry route, described once for the contract.
EntryId = Annotated[
    uuid.UUID, PathParameter(description="The entry's id (a UUID set by the server)")
]


def filters_of(spec: KindSpec, request: Request[Any, Any, Any]) -> dict[str, Any]:
    known = spec.all_filters
    out: dict[str, Any] = {}
    errors = []
    for name, value in request.query_params.items():
        if name in PAGING:
            continue
        flt = known.get(name)
        if flt is None:
            errors.append(
                FieldError(("query", name), f"unknown parameter; filters: {', '.join(known)}")
            )
            continue
        try:
            out[name] = flt.parse(value)
        except ValueError:
            errors.append(FieldError(("query", name), "is not a valid id"))
    if errors:
        raise bad_parameters(errors)
    return out


def sortable(spec: KindSpec) -> set[str]:
    return {"id", spec.natural_key, "ref", "updated_at"}


def sort_of(spec: KindSpec, text: str | None, revision: int | None, count: bool) -> Sort | None:
    if revision is not None and (text or count):
        name = "sort" if text else "count"
        raise invalid([FieldError(("query", name), "applies to current entries, not `revision`")])
    if text is None or text == "id":
        return None
    order = Sort.parse(text)
    if order.field not in sortable(spec) or order.field == "id":
        allowed = ", ".join(sorted(sortable(spec) - {"id"}))
        raise invalid([FieldError(("query", "sort"), f"sorts by one of {allowed} (or -field)")])
    return order


def expected_version(request: Request[Any, Any, Any], current: dict[str, Any]) -> int:
    header = request.headers.get("if-match")
    if not header:
        raise PRECONDITION_REQUIRED(
            "send If-Match with the ETag you read, so that no one else's change is lost"
        )
    tags = [t.strip() for t in header.split(",")]
    if "*" in tags or etag(current) in tags:
        return int(current["version"])
    raise stale(-1 if not tags else _version_of(tags[0]), int(current["version"]))


def _version_of(tag: str) -> int:
    try:
        return int(tag.strip('W/"'))
    except ValueError:
        return -1


async def reach(reads: EntryReads, settings: Settings, min_revision: int | None) -> None:
    await require_revision(
        min_revision, reads.head, settings.min_revision_wait_s, settings.retry_after_s
    )


async def merge_patch_body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in (MERGE_PATCH, "application/json"):
        detail = f"send the patch as {MERGE_PATCH} (RFC 7396)"
        raise UNSUPPORTED_MEDIA_TYPE(detail)
    try:
        body = json.loads(await request.body())
    except ValueError as error:
        raise malformed(f"the body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise invalid([FieldError(("body",), "must be a JSON object (the fields to change)")])
    return body


def owner_first_guard(spec: KindSpec) -> Any:
    """A guard asking whose entry a write touches before its body is validated: another
    owner's administrator gets the 403 (and the audit event of a denial) whatever the body
    holds, never a 422 that would tell them about its content and leave no trace.

    Both owners count: the entry's as stored, and the one the body names.
    """

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal: Principal = connection.user
        if principal.is_operator:
            return
        owners: set[str] = set()
        entry_id = connection.path_params.get("entry_id")
        if entry_id is not None:
            current = await reads_of(connection.scope).get(spec, entry_id)
            if current is not None:
                owners.add(current["owner"])
        if connection.scope.get("method") in ("POST", "PUT", "PATCH"):
            # Read once; litestar keeps it for the handler's own parsing.
            raw = await Request(connection.scope, connection.receive).body()
            try:
                named = json.loads(raw).get("owner")
            except (ValueError, AttributeError):
                named = None  # the handler answers for a body that is not an object
            if isinstance(named, str) and named.strip():
                owners.add(codes.code_of(named)[:8])
        for owner in sorted(owners):
            policy.require_write(principal, owner)

    return guard


async def page_position(
    reads: EntryReads,
    cursor: str | None,
    sort: str | None,
    order: Sort | None,
    revision: int | None,
) -> tuple[int | None, Any, Any]:
    """Where a page starts: (the revision it reads, the id after which, the sort value after
    which). An id-ordered cursor pins the revision of the first page; a sorted one carries
    its sort and reads the current state. A revision after the head is refused."""
    after, after_value = None, None
    if cursor:
        pinned, after, carried = decode_sorted_cursor(cursor)
        if order is None:
            revision = pinned
        elif not isinstance(carried, list) or carried[:1] != [sort]:
            raise invalid([FieldError(("query", "cursor"), "belongs to another sort")])
        else:
            try:
                after_value = order.mark(carried[1])
            except ValueError:
                raise unknown_cursor() from None
    if revision is not None:
        head = await reads.head()
        if revision > head:
            raise invalid([FieldError(("query", "revision"), f"is after the head revision {head}")])
    return revision, after, after_value


async def idempotency_of(
    request: Request[Any, Any, Any], principal: Principal
) -> IdempotentRequest | None:
    """A create's `Idempotency-Key`, bound to the caller and the request it came with."""
    key = request.headers.get("idempotency-key")
    if not key:
        return None
    caller = f"{principal.subject}|{principal.client_key}"
    return IdempotentRequest.of(caller, key[:200], "POST", request.url.path, await request.body())
