"""`POST /api/v1/import` (a national batch, whole or not at all; `dry_run` shows the diff)
and `GET /api/v1/export` (an owner's entries in the same shape), in NDJSON, CSV or XLSX."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema
from litestar.params import Parameter

from cdb_service.kernel.problems import (
    CONTENT_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    FieldError,
    malformed,
)
from cdb_service.registry.formats import files as entry_files
from cdb_service.registry.formats.budget import Budget
from cdb_service.registry.formats.files import FileTooLarge, FormatError
from cdb_service.registry.formats.ndjson import apply_parsed, parse_stream
from cdb_service.registry.http.answers import ImportResult
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.registry.store.batches import Batches
from cdb_service.registry.store.reads import EntryReads
from cdb_service.security import audit, policy
from cdb_service.security.audit import Who
from cdb_service.security.consultations import Viewer
from cdb_service.security.policy import Principal
from cdb_service.settings import Settings
from cdb_service.web.ceilings import Ceilings
from cdb_service.web.consistency import REVISION_HEADER
from cdb_service.web.docs import answer, operation, problems
from cdb_service.web.negotiation import require_media

# A whole member state's registry in one batch fits with room to spare (documented).
MAX_BATCH_BYTES = 64 * 1024 * 1024
# What the body may be, for the contract: NDJSON lines (a single line may be sent as
# application/json), CSV of one kind, or an XLSX workbook.
_LINE = Schema(
    type=OpenAPIType.OBJECT,
    required=["kind", "document"],
    properties={
        "kind": Schema(type=OpenAPIType.STRING, enum=list(KINDS)),
        "document": Schema(type=OpenAPIType.OBJECT, additional_properties=True,
                           description="the kind's input document; references by natural key"),
    },
    description="one entry; NDJSON: one such object per line",
)  # fmt: skip
BATCH_FORMS = {
    entry_files.MEDIA_TYPES["ndjson"]: _LINE,
    "application/json": _LINE,
    entry_files.MEDIA_TYPES["csv"]: Schema(
        type=OpenAPIType.STRING, description="one kind (`kind=`)"
    ),
    entry_files.MEDIA_TYPES["xlsx"]: Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY),
}

# What `GET /export` writes: what the import reads, less the single JSON document.
EXPORT_FORMS = {media: form for media, form in BATCH_FORMS.items() if media != "application/json"}


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
        "returns the diff and writes nothing. Also CSV (`text/csv`, one kind: `kind=`) and "
        "XLSX (one sheet per kind), in the columns `GET /export` writes. Every problem of the "
        "batch is reported at once, each with its line (or sheet and row) and entry.",
        responses=problems(400, 409, 413, 415, 422, 429, 503) | answer(ImportResult),
        operation_class=operation(body=BATCH_FORMS),
        request_max_body_size=MAX_BATCH_BYTES,
    )
    async def apply(
        self,
        request: Request[Any, Any, Any],
        batches: NamedDependency[Batches],
        principal: NamedDependency[Principal],
        who: NamedDependency[Who],
        ceilings: NamedDependency[Ceilings],
        settings: NamedDependency[Settings],
        mode: Literal["merge", "replace"] = Parameter(
            default="merge",
            description="merge: create and update; replace: also delete the owner's entries "
            "of those kinds that the batch no longer names",
        ),
        dry_run: bool = Parameter(
            default=False, description="validate and answer the diff, write nothing"
        ),
        owner: str | None = Parameter(default=None, description="default: the caller's owner"),
        first: int | None = Parameter(
            default=None, ge=0, description="list only the first N changes (`by_kind` counts all)"
        ),
        kind: str | None = Parameter(default=None, description="the kind of a CSV upload"),
    ) -> Response[dict[str, Any]]:
        batch_owner = policy.owner_acted_for(principal, owner)
        policy.require_write(principal, batch_owner)
        async with ceilings.imports.slot(principal.client_key):
            kind_spec = _kind(kind)
            try:
                fmt = entry_files.format_of_media_type(request.headers.get("content-type", ""))
                if fmt == "csv" and kind_spec is None:
                    error = FieldError(("query", "kind"), "is required: a CSV file holds one kind")
                    raise malformed(error.msg, error)
                if fmt == "ndjson":
                    batch = await parse_stream(request.stream(), batch_owner)
                else:
                    budget = Budget(seconds=settings.import_read_budget_s)
                    batch = await entry_files.parse_upload_aside(
                        await request.body(), fmt, batch_owner, kind_spec, budget
                    )
            except FileTooLarge as error:
                raise CONTENT_TOO_LARGE(str(error)) from None
            except FormatError as error:
                raise UNSUPPORTED_MEDIA_TYPE(str(error)) from None
            result = await apply_parsed(batches, batch, who, batch_owner, mode=mode,
                                        dry_run=dry_run)  # fmt: skip
        body = {
            "owner": batch_owner,
            "mode": mode,
            "dry_run": dry_run,
            "revision": result.revision,
            "counts": result.counts(),
            "by_kind": result.counts_by_kind(),
            "changes": result.changes(first),
        }
        # Like every write's answer: the revision it made (and so its signed receipt).
        written = {REVISION_HEADER: str(result.revision)} if result.revision else {}
        return Response(body, headers=written)


def _kind(name: str | None) -> KindSpec | None:
    if name is None:
        return None
    if name not in KINDS:
        error = FieldError(("query", "kind"), f"must be one of {', '.join(KINDS)}")
        raise malformed(error.msg, error)
    return KINDS[name]


class ExportController(Controller):
    path = "/export"
    tags = ["import"]  # noqa: RUF012

    @get(
        "/",
        summary="An owner's entries in the import shape (NDJSON, CSV or XLSX)",
        description="What `POST /import` reads back as a no-op: NDJSON lines "
        "`{kind, document}`; CSV, one kind (`kind=`); XLSX, one sheet per kind. Spreadsheet "
        "columns: `id`, plain fields, `names.<lang>`, `address.<member>`, lists as `a; b`, "
        "lists of objects as a JSON array, references by the target's code or name.",
        responses=problems(400, 406),
        operation_class=operation(forms=EXPORT_FORMS),
        media_type="application/octet-stream",
    )
    async def export(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[EntryReads],
        principal: NamedDependency[Principal],
        viewer: NamedDependency[Viewer],
        who: NamedDependency[Who],
        owner: str | None = Parameter(default=None, description="default: the caller's owner"),
        kind: list[str] | None = Parameter(default=None, description="kinds; default: all"),
        format: Literal["ndjson", "csv", "xlsx"] = Parameter(
            default="ndjson", description="the file format, and so the answer's media type"
        ),
    ) -> Response[bytes]:
        policy.require_read(principal)
        # `format` chooses the media type; an Accept that excludes it is refused, not
        # answered with a file the client said it cannot take.
        require_media(request.scope, entry_files.MEDIA_TYPES[format])
        batch_owner = policy.owner_acted_for(principal, owner)
        kinds = [k for k in (_kind(n) for n in kind or ()) if k] or list(KINDS.values())
        try:
            body, name = await export_file(reads, viewer, who, batch_owner, kinds, format,
                                           named=bool(kind))  # fmt: skip
        except FormatError as error:
            field = FieldError(("query", "kind"), str(error))
            raise malformed(str(error), field) from None
        return Response(
            body,
            media_type=entry_files.MEDIA_TYPES[format],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


async def export_file(reads: EntryReads, viewer: Viewer, who: Who, owner: str,
                      kinds: list[KindSpec], fmt: str, *, named: bool = True
                      ) -> tuple[bytes, str]:  # fmt: skip
    """An owner's entries of `kinds` in the import shape, and the file's name; audited as
    a bulk read, named persons as this reader may see them. The API's `GET /export` and
    the console's download both answer with it."""
    # A bulk read, audited like an extract.
    names = ",".join(k.name for k in kinds) if named else "*"
    await audit.record(reads.sessions, who, "export", "ok",
                       f"owner={owner} kinds={names} format={fmt}")  # fmt: skip
    by_kind = await entry_files.documents_by_kind(reads, kinds, owner)
    by_kind = {
        name: [viewer.visible(name, KINDS[name].private_fields, d, "export") for d in docs]
        for name, docs in by_kind.items()
    }
    if fmt == "csv" and len(kinds) == 1:
        by_kind.setdefault(kinds[0].name, [])
    body = await entry_files.render(reads, by_kind, fmt)
    return body, f"cdb-{owner}{'-' + kinds[0].name if len(kinds) == 1 else ''}.{fmt}"
