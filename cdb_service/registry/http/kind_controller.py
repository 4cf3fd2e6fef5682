"""One controller shape for every kind: list, read, history, diff, create, replace, patch,
revert, delete.

Built per kind from its `KindSpec` (see `controllers()`); no kind has a copy of
its own. Policy decisions (who may write, what a caller may see) are asked of
`security.policy`; writes go through `EntryWrites`, which makes each one revision.

This module does not use postponed annotations: the request body type is the
kind's schema, chosen at run time, and litestar reads it from the signature.
"""

import datetime as dt
from typing import Any

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema
from litestar.params import JSONBody, Parameter

from cdb_service.db.revisions import MAX_REVISION
from cdb_service.kernel.problems import FieldError, invalid, not_found
from cdb_service.registry.http import answers
from cdb_service.registry.http.entry_inputs import (
    IDEMPOTENCY_KEY,
    IF_MATCH,
    MERGE_PATCH,
    EntryId,
    expected_version,
    filters_of,
    idempotency_of,
    merge_patch_body,
    owner_first_guard,
    page_position,
    reach,
    sort_of,
    sortable,
)
from cdb_service.registry.http.entry_outputs import (
    entry_answer,
    history_answer,
    page_answer,
    written_answer,
)
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.registry.store import edits
from cdb_service.registry.store.reads import EntryReads
from cdb_service.registry.store.writes import EntryWrites
from cdb_service.security import policy
from cdb_service.security.audit import Who
from cdb_service.security.policy import Principal
from cdb_service.settings import Settings
from cdb_service.web.consistency import MIN_REVISION_DOC, REVISION_HEADER
from cdb_service.web.docs import (
    IF_NONE_MATCH,
    NOT_MODIFIED,
    ParameterDoc,
    answer,
    operation,
    problems,
)
from cdb_service.web.negotiation import negotiated


def controller_for(spec: KindSpec) -> type[Controller]:
    schema: Any = spec.schema
    owner_first = [owner_first_guard(spec)]
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
            "every language, address, code, ref, party id), ignoring case and accents; by a "
            "named person only for callers who may read it (administrators, operators). Keyset "
            "pages in id order; `next` is the cursor of the following page, which reads the "
            f"same revision. `sort` ({', '.join(sorted(sortable(spec)))}; `-` descending) orders "
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
            filters = filters_of(spec, request)
            await reach(reads, settings, min_revision)
            order = sort_of(spec, sort, revision, count)
            revision, after, after_value = await page_position(reads, cursor, sort, order, revision)
            # `q` finds an entry by its named persons only for a caller who may read them.
            private = policy.sees_named_persons(principal)
            page = await reads.collection(
                spec,
                filters=filters,
                valid_at=valid_at,
                revision=revision,
                after=after,
                limit=limit,
                sort=order,
                after_value=after_value,
                private=private,
            )
            total = None
            if count:
                total, _ = await reads.count(
                    spec, filters=filters, valid_at=valid_at, private=private
                )
            return page_answer(
                request,
                spec,
                principal,
                page,
                sort if order is not None else None,
                total,
                page_root,
            )

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
            await reach(reads, settings, min_revision)
            document = await reads.get(spec, entry_id, revision)
            if document is None:
                at = f" at revision {revision}" if revision is not None else ""
                raise not_found(spec.name, f"{entry_id}{at}")
            return entry_answer(request, spec, principal, document, entry_root)

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
            await reach(reads, settings, min_revision)
            versions = [v for v in await reads.history(entry_id) if v["kind"] == spec.name]
            if not versions:
                raise not_found(spec.name, entry_id)
            return history_answer(request, spec, principal, versions, history_root)

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
            idempotency = await idempotency_of(request, principal)
            created = await writes.create(spec, data, who, idempotency=idempotency)
            document = created.document
            headers = {"Location": f"{request.url.path.rstrip('/')}/{document['id']}"}
            if created.replayed:
                headers["Idempotent-Replayed"] = "true"
            return written_answer(spec, principal, document, status=201, headers=headers)

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
            expected = expected_version(request, current)
            document = await writes.update(spec, entry_id, data, who, expected)
            return written_answer(spec, principal, document)

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
            body = await merge_patch_body(request)
            current = await edits.current(reads, spec, entry_id)
            policy.require_write(principal, current["owner"])
            expected = expected_version(request, current)
            data = edits.patched(spec, current, body, principal)
            document = await writes.update(spec, entry_id, data, who, expected)
            return written_answer(spec, principal, document)

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
            expected = expected_version(request, current)
            data = await edits.reverted(reads, spec, entry_id, version, revision)
            document = await writes.update(spec, entry_id, data, who, expected)
            return written_answer(spec, principal, document)

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
            expected = expected_version(request, current)
            gone = await writes.delete(spec, entry_id, who, expected, cascade=cascade)
            return Response(None, status_code=204, headers={REVISION_HEADER: str(gone["revision"])})

    KindController.__name__ = KindController.__qualname__ = (
        "".join(part.title() for part in spec.name.split("-")) + "Controller"
    )
    return KindController


def controllers() -> list[type[Controller]]:
    return [controller_for(spec) for spec in KINDS.values()]
