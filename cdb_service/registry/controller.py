"""One controller shape for every kind: list, read, history, diff, create, replace, patch,
revert, delete.

Built per kind from its `KindSpec` (see `controllers()`); no kind has a copy of
its own. Policy decisions (who may write, what a caller may see) are asked of
`security.policy`; writes go through `EntryWrites`, which makes each one revision.

This module does not use postponed annotations: the request body type is the
kind's schema, chosen at run time, and litestar reads it from the signature.
"""

import datetime as dt
import json
import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.enums import ParamType
from litestar.handlers import BaseRouteHandler
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema
from litestar.params import JSONBody, Parameter, PathParameter

from cdb_service.db.revisions import MAX_REVISION
from cdb_service.kernel.problems import FieldError, Problem, invalid, not_found, stale
from cdb_service.registry import answers, edits
from cdb_service.registry.deps import reads_of
from cdb_service.registry.idempotency import IdempotentRequest
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.reads import EntryReads, Sort
from cdb_service.registry.spec import KindSpec
from cdb_service.registry.writes import EntryWrites
from cdb_service.security import policy
from cdb_service.security.audit import Who
from cdb_service.security.policy import Principal
from cdb_service.settings import Settings
from cdb_service.web.conditional import none_match
from cdb_service.web.consistency import MIN_REVISION_DOC, REVISION_HEADER, require_revision
from cdb_service.web.docs import (
    IF_NONE_MATCH,
    NOT_MODIFIED,
    ParameterDoc,
    answer,
    operation,
    problems,
)
from cdb_service.web.negotiation import negotiated
from cdb_service.web.pagination import decode_sorted_cursor, encode_cursor

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
EntryId = Annotated[
    uuid.UUID, PathParameter(description="The entry's id (a UUID set by the server)")
]


def etag(document: dict[str, Any]) -> str:
    return f'"{document["version"]}"'


def _filters(spec: KindSpec, request: Request[Any, Any, Any]) -> dict[str, Any]:
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
        raise Problem(400, "Malformed request", "; ".join(f"{e.loc[1]}: {e.msg}" for e in errors),
                      "malformed-request", errors)  # fmt: skip
    return out


def _sorts(spec: KindSpec) -> set[str]:
    return {"id", spec.natural_key, "ref", "updated_at"}


def _sort(spec: KindSpec, text: str | None, revision: int | None, count: bool) -> Sort | None:
    if revision is not None and (text or count):
        name = "sort" if text else "count"
        raise invalid([FieldError(("query", name), "applies to current entries, not `revision`")])
    if text is None or text == "id":
        return None
    order = Sort.parse(text)
    if order.field not in _sorts(spec) or order.field == "id":
        allowed = ", ".join(sorted(_sorts(spec) - {"id"}))
        raise invalid([FieldError(("query", "sort"), f"sorts by one of {allowed} (or -field)")])
    return order


def _if_match(request: Request[Any, Any, Any], current: dict[str, Any]) -> int:
    header = request.headers.get("if-match")
    if not header:
        raise Problem(428, "Precondition required",
                      "send If-Match with the ETag you read, so that no one else's change is lost",
                      "precondition-required")  # fmt: skip
    tags = [t.strip() for t in header.split(",")]
    if "*" in tags or etag(current) in tags:
        return int(current["version"])
    raise stale(-1 if not tags else _version_of(tags[0]), int(current["version"]))


def _version_of(tag: str) -> int:
    try:
        return int(tag.strip('W/"'))
    except ValueError:
        return -1


async def _reach(reads: EntryReads, settings: Settings, min_revision: int | None) -> None:
    await require_revision(
        min_revision, reads.head, settings.min_revision_wait_s, settings.retry_after_s
    )


def _written(document: dict[str, Any]) -> dict[str, str]:
    """Every write's answer: the new version's ETag and the revision it made (for
    `min_revision` on a read through another worker)."""
    return {"ETag": etag(document), REVISION_HEADER: str(document["revision"])}


async def _merge_patch_body(request: Request[Any, Any, Any]) -> dict[str, Any]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in (MERGE_PATCH, "application/json"):
        detail = f"send the patch as {MERGE_PATCH} (RFC 7396)"
        raise Problem(415, "Unsupported media type", detail, "unsupported-media-type")
    try:
        body = json.loads(await request.body())
    except ValueError as error:
        raise Problem(400, "Malformed request", f"the body is not JSON: {error}",
                      "malformed-request") from None  # fmt: skip
    if not isinstance(body, dict):
        raise invalid([FieldError(("body",), "must be a JSON object (the fields to change)")])
    return body


def _owner_first(spec: KindSpec) -> Any:
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
                owners.add(named.strip().upper()[:8])
        for owner in sorted(owners):
            policy.require_write(principal, owner)

    return guard


def controller_for(spec: KindSpec) -> type[Controller]:
    schema: Any = spec.schema
    owner_first = [_owner_first(spec)]
    filter_doc = ", ".join(spec.all_filters)
    entry = answers.document_model(spec.name)
    # The XML answers' root elements, one per kind and shape: the XSD types each kind.
    entry_root, page_root, history_root = (f"{spec.name}-{s}" for s in ("entry", "page", "history"))
    filters = [
        ParameterDoc(f.name, "text search" if f.name == "q" else f"filter on `{f.field}`",
                 OpenAPIFormat.UUID if f.uuid else None)
        for f in spec.all_filters.values()
    ]  # fmt: skip
    merge_patch = Schema(
        type=OpenAPIType.OBJECT,
        additional_properties=True,
        description="RFC 7396: the fields to change; `null` removes one",
    )

    class KindController(Controller):
        path = f"/{spec.name}"
        tags = [spec.name]  # noqa: RUF012

        @get(
            "/",
            summary=f"List {spec.name}",
            responses=problems(400, 406, 422) | answer(answers.page_model(spec.name)),
            operation_class=operation(parameters=filters, xml_root=page_root),
            description=f"Filters: {filter_doc}. `q` finds entries by any text (names in "
            "every language, address, code, ref, party id), ignoring case and accents. Keyset "
            "pages in id order; `next` is the cursor of the following page, which reads the "
            f"same revision. `sort` ({', '.join(sorted(_sorts(spec)))}; `-` descending) orders "
            "current entries (not with `revision`); a sorted walk reads the current state on "
            "each page. `count=true` adds `total`, the number of matching current entries.",
        )
        async def collection(
            self,
            request: Request[Any, Any, Any],
            reads: NamedDependency[EntryReads],
            principal: NamedDependency[Principal],
            settings: NamedDependency[Settings],
            limit: int = Parameter(
                default=100, ge=1, le=1000, description="the most entries on this page"
            ),
            cursor: str | None = Parameter(
                default=None, description="the previous page's `next`, to read the page after it"
            ),
            valid_at: dt.date | None = Parameter(default=None, description="legal validity date"),
            revision: int | None = Parameter(
                default=None, ge=0, le=MAX_REVISION, description="as of revision"
            ),
            sort: str | None = Parameter(default=None, description="field; `-field` descending"),
            count: bool = Parameter(default=False, description="add `total`"),
            min_revision: int | None = Parameter(
                default=None, ge=0, le=MAX_REVISION, description=MIN_REVISION_DOC
            ),
        ) -> Response[Any]:
            filters = _filters(spec, request)
            await _reach(reads, settings, min_revision)
            order = _sort(spec, sort, revision, count)
            after, after_value = None, None
            if cursor:
                pinned, after, carried = decode_sorted_cursor(cursor)
                if order is None:
                    revision = pinned
                elif not isinstance(carried, list) or carried[:1] != [sort]:
                    raise invalid([FieldError(("query", "cursor"), "belongs to another sort")])
                else:
                    after_value = carried[1]
            if revision is not None:
                head = await reads.head()
                if revision > head:
                    raise invalid(
                        [FieldError(("query", "revision"), f"is after the head revision {head}")]
                    )
            page = await reads.collection(
                spec,
                filters=filters,
                valid_at=valid_at,
                revision=revision,
                after=after,
                limit=limit,
                sort=order,
                after_value=after_value,
            )
            carried = [sort, page.next_value] if order is not None else None
            out = {
                "items": [policy.redact(d, spec.private_fields, principal) for d in page.items],
                "revision": page.revision,
                "next": encode_cursor(page.revision, page.next, carried) if page.next else None,
            }
            if count:
                out["total"], _ = await reads.count(spec, filters=filters, valid_at=valid_at)
            return negotiated(request.scope, out, page_root)

        @get("/{entry_id:uuid}", summary=f"One {spec.name} entry",
             responses=problems(404, 406, 422) | answer(entry) | NOT_MODIFIED,
             operation_class=operation(parameters=[IF_NONE_MATCH],
                                       xml_root=entry_root))  # fmt: skip
        async def one(
            self,
            entry_id: EntryId,
            request: Request[Any, Any, Any],
            reads: NamedDependency[EntryReads],
            principal: NamedDependency[Principal],
            settings: NamedDependency[Settings],
            revision: int | None = Parameter(
                default=None,
                ge=0,
                le=MAX_REVISION,
                description="the entry as it was at this revision (404 if it did not exist)",
            ),
            min_revision: int | None = Parameter(
                default=None, ge=0, le=MAX_REVISION, description=MIN_REVISION_DOC
            ),
        ) -> Response[Any]:
            await _reach(reads, settings, min_revision)
            document = await reads.get(spec, entry_id, revision)
            if document is None:
                at = f" at revision {revision}" if revision is not None else ""
                raise Problem(404, "Not found", f"no {spec.name} entry {entry_id}{at}", "not-found")
            tag = etag(document)
            if none_match(request.scope, tag):
                return Response(None, status_code=304, headers={"ETag": tag})
            visible = policy.redact(document, spec.private_fields, principal)
            return negotiated(request.scope, visible, entry_root, headers={"ETag": tag})

        @get(
            "/{entry_id:uuid}/history",
            summary="Every version, newest first",
            responses=problems(404, 406, 422) | answer(answers.history_model(spec.name)),
            operation_class=operation(xml_root=history_root),
        )
        async def history(
            self,
            entry_id: EntryId,
            request: Request[Any, Any, Any],
            reads: NamedDependency[EntryReads],
            principal: NamedDependency[Principal],
            settings: NamedDependency[Settings],
            min_revision: int | None = Parameter(
                default=None, ge=0, le=MAX_REVISION, description=MIN_REVISION_DOC
            ),
        ) -> Response[Any]:
            await _reach(reads, settings, min_revision)
            versions = [v for v in await reads.history(entry_id) if v["kind"] == spec.name]
            if not versions:
                raise not_found(spec.name, entry_id)
            items = [
                v | {"document": policy.redact(v["document"], spec.private_fields, principal)}
                for v in versions
            ]
            return negotiated(request.scope, {"items": items}, history_root)

        @post("/", summary=f"Create a {spec.name} entry",
              responses=problems(400, 409, 413, 422) | answer(entry, "Created", 201),
              operation_class=operation(parameters=[IDEMPOTENCY_KEY]), guards=owner_first,
              description="`Idempotency-Key` makes a retry return the first result.")  # fmt: skip
        async def create(
            self,
            data: JSONBody[schema],
            request: Request[Any, Any, Any],
            writes: NamedDependency[EntryWrites],
            principal: NamedDependency[Principal],
            who: NamedDependency[Who],
        ) -> Response[Any]:
            policy.require_write(principal, data.owner)
            key = request.headers.get("idempotency-key")
            idempotency = None
            if key:
                caller = f"{principal.subject}|{principal.client_key}"
                idempotency = IdempotentRequest.of(
                    caller, key[:200], "POST", request.url.path, await request.body()
                )
            created = await writes.create(spec, data, who, idempotency=idempotency)
            document = created.document
            headers = {"Location": f"{request.url.path.rstrip('/')}/{document['id']}"}
            headers |= _written(document)
            if created.replayed:
                headers["Idempotent-Replayed"] = "true"
            visible = policy.redact(document, spec.private_fields, principal)
            return Response(visible, status_code=201, headers=headers)

        @put("/{entry_id:uuid}", summary="Replace an entry (If-Match required)",
             responses=problems(400, 404, 409, 412, 413, 422, 428) | answer(entry),
             operation_class=operation(parameters=[IF_MATCH]), guards=owner_first)  # fmt: skip
        async def replace(
            self,
            entry_id: EntryId,
            data: JSONBody[schema],
            request: Request[Any, Any, Any],
            reads: NamedDependency[EntryReads],
            writes: NamedDependency[EntryWrites],
            principal: NamedDependency[Principal],
            who: NamedDependency[Who],
        ) -> Response[Any]:
            current = await edits.current(reads, spec, entry_id)
            policy.require_write(principal, data.owner, current["owner"])
            expected = _if_match(request, current)
            document = await writes.update(spec, entry_id, data, who, expected)
            visible = policy.redact(document, spec.private_fields, principal)
            return Response(visible, headers=_written(document))

        @patch("/{entry_id:uuid}", summary="Change some fields (Merge Patch, If-Match required)",
               description="RFC 7396: the body names only the fields to change; `null` "
               "removes a field (it takes its default). Every other field and every reference "
               "stays as it was. The result is validated whole, like a PUT.",
               responses=problems(400, 404, 409, 412, 413, 415, 422, 428) | answer(entry),
               operation_class=operation(body={MERGE_PATCH: merge_patch}, parameters=[IF_MATCH]),
               guards=owner_first)  # fmt: skip
        async def change(
            self,
            entry_id: EntryId,
            request: Request[Any, Any, Any],
            reads: NamedDependency[EntryReads],
            writes: NamedDependency[EntryWrites],
            principal: NamedDependency[Principal],
            who: NamedDependency[Who],
        ) -> Response[Any]:
            body = await _merge_patch_body(request)
            current = await edits.current(reads, spec, entry_id)
            policy.require_write(principal, current["owner"])
            expected = _if_match(request, current)
            data = edits.patched(spec, current, body, principal)
            document = await writes.update(spec, entry_id, data, who, expected)
            visible = policy.redact(document, spec.private_fields, principal)
            return Response(visible, headers=_written(document))

        @post("/{entry_id:uuid}/revert", status_code=200,
              summary="Make an earlier version current again (If-Match required)",
              description="Writes the document of `version` (or of the entry as it stood at "
              "`revision`) as a new version, in one new revision; the history keeps both.",
              responses=problems(400, 404, 409, 412, 422, 428) | answer(entry),
              operation_class=operation(parameters=[IF_MATCH]), guards=owner_first)  # fmt: skip
        async def revert(
            self,
            entry_id: EntryId,
            request: Request[Any, Any, Any],
            reads: NamedDependency[EntryReads],
            writes: NamedDependency[EntryWrites],
            principal: NamedDependency[Principal],
            who: NamedDependency[Who],
            version: int | None = Parameter(
                default=None, ge=1, le=MAX_REVISION, description="version to restore"
            ),
            revision: int | None = Parameter(
                default=None, ge=0, le=MAX_REVISION, description="or: as of revision"
            ),
        ) -> Response[Any]:
            if (version is None) == (revision is None):
                raise invalid([FieldError(("query", "version"), "give version or revision")])
            current = await edits.current(reads, spec, entry_id)
            policy.require_write(principal, current["owner"])
            expected = _if_match(request, current)
            data = await edits.reverted(reads, spec, entry_id, version, revision)
            document = await writes.update(spec, entry_id, data, who, expected)
            visible = policy.redact(document, spec.private_fields, principal)
            return Response(visible, headers=_written(document))

        @get("/{entry_id:uuid}/diff", summary="What changed between two versions",
             description="`from` / `to` are version numbers (or `from_revision` / "
             "`to_revision` registry revisions); `to` defaults to the current version. "
             "`patch` is an RFC 6902 JSON Patch from one to the other, `fields` the same "
             "field by field; bookkeeping (version, revision, timestamps) is left out.",
             responses=problems(400, 404, 406, 422) | answer(answers.Diff),
             operation_class=operation(xml_root="diff-answer"))  # fmt: skip
        async def diff(
            self,
            entry_id: EntryId,
            request: Request[Any, Any, Any],
            reads: NamedDependency[EntryReads],
            principal: NamedDependency[Principal],
            from_version: int | None = Parameter(
                query="from",
                default=None,
                ge=1,
                le=MAX_REVISION,
                description="the version to compare from",
            ),
            to_version: int | None = Parameter(
                query="to",
                default=None,
                ge=1,
                le=MAX_REVISION,
                description="the version to compare to (default: current)",
            ),
            from_revision: int | None = Parameter(
                default=None,
                ge=0,
                le=MAX_REVISION,
                description="compare from the version current at this registry revision",
            ),
            to_revision: int | None = Parameter(
                default=None,
                ge=0,
                le=MAX_REVISION,
                description="compare to the version current at this registry revision",
            ),
        ) -> Response[Any]:
            changes = await edits.diff(
                reads, spec, entry_id, principal, from_version, to_version, from_revision,
                to_revision,
            )  # fmt: skip
            return negotiated(request.scope, changes, "diff-answer")

        @delete(
            "/{entry_id:uuid}",
            summary="Delete an entry (If-Match required); a tombstone stays",
            responses=problems(404, 409, 412, 428),
            status_code=204,
            operation_class=operation(parameters=[IF_MATCH]),
            guards=owner_first,
        )
        async def remove(
            self,
            entry_id: EntryId,
            request: Request[Any, Any, Any],
            reads: NamedDependency[EntryReads],
            writes: NamedDependency[EntryWrites],
            principal: NamedDependency[Principal],
            who: NamedDependency[Who],
            cascade: bool = Parameter(
                default=False, description="also delete the owner's referrers"
            ),
        ) -> Response[None]:
            current = await edits.current(reads, spec, entry_id)
            policy.require_write(principal, current["owner"])
            expected = _if_match(request, current)
            gone = await writes.delete(spec, entry_id, who, expected, cascade=cascade)
            return Response(None, status_code=204, headers={REVISION_HEADER: str(gone["revision"])})

    KindController.__name__ = KindController.__qualname__ = (
        "".join(part.title() for part in spec.name.split("-")) + "Controller"
    )
    return KindController


def controllers() -> list[type[Controller]]:
    return [controller_for(spec) for spec in KINDS.values()]
