"""The console's batch upload: a file (NDJSON, CSV, XLSX) checked as a dry run, then applied.

The same path as the API's `POST /import`: the upload is parsed by `registry.formats`
and applied by `Batches` as one revision or not at all; a refusal is the page again,
listing every problem, never a JSON problem.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency

from cdb_service.console import i18n, previews
from cdb_service.console.deps import ConsoleParts
from cdb_service.console.i18n import gettext
from cdb_service.console.pages import (
    HANDLERS,
    chosen_owner,
    context_of,
    current_user,
    label_of,
    with_registered_owners,
)
from cdb_service.console.web import (
    checked_form,
    page,
    viewer,
    who,
)
from cdb_service.kernel.problems import FieldError, Problem, invalid
from cdb_service.lookup.follower import IndexFollower
from cdb_service.registry.formats import files as entry_files
from cdb_service.registry.formats.budget import Budget
from cdb_service.registry.formats.files import FileTooLarge, FormatError
from cdb_service.registry.formats.ndjson import Mode, apply_parsed
from cdb_service.registry.http.import_export import export_file
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.fields import label_of as field_label
from cdb_service.registry.store.batches import Batches
from cdb_service.registry.store.reads import EntryReads
from cdb_service.security import policy
from cdb_service.web.ceilings import Ceilings

MAX_UPLOAD_BYTES = 8 * 1024 * 1024


class ConsoleUpload(Controller):
    path = "/console"
    include_in_schema = False
    exception_handlers = HANDLERS
    before_request = staticmethod(i18n.speak)  # the language the page is answered in

    @get("/import")
    async def upload_form(self, request: Request[Any, Any, Any],
                          reads: NamedDependency[EntryReads], owner: str | None = None
                          ) -> Response[str]:  # fmt: skip
        user = await current_user(request)
        context = context_of(user, chosen_owner(request, user, owner))
        return page("import.html", await with_registered_owners(context, reads))

    @get("/export")
    async def download(self, request: Request[Any, Any, Any],
                       reads: NamedDependency[EntryReads], format: str = "xlsx",
                       kind: str = "", owner: str | None = None) -> Response[bytes]:  # fmt: skip
        """The owner's entries as the upload reads them: XLSX (every kind, one sheet
        each) or CSV (one kind); the API's export, as a download."""
        user = await current_user(request)
        chosen = chosen_owner(request, user, owner)
        policy.require_read(user.principal)
        if chosen is None or format not in ("xlsx", "csv"):
            wrong = FieldError(("query", "format"), gettext("choose an owner, and xlsx or csv"))
            raise invalid([wrong])
        if format == "csv" and kind not in KINDS:
            wrong = FieldError(("query", "kind"), gettext("a CSV file holds one kind: choose it"))
            raise invalid([wrong])
        kinds = [KINDS[kind]] if format == "csv" else list(KINDS.values())
        body, name = await export_file(reads, viewer(request, user), who(request, user), chosen,
                                       kinds, format, named=format == "csv")  # fmt: skip
        return Response(body, media_type=entry_files.MEDIA_TYPES[format],
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Cache-Control": "no-store"})  # fmt: skip

    @post("/import", request_max_body_size=MAX_UPLOAD_BYTES * 2)
    async def upload(self, request: Request[Any, Any, Any], batches: NamedDependency[Batches],
                     console: NamedDependency[ConsoleParts], ceilings: NamedDependency[Ceilings],
                     reads: NamedDependency[EntryReads],
                     lookup: NamedDependency[IndexFollower]) -> Response[str]:  # fmt: skip
        user = await current_user(request)
        form = await checked_form(request, user)
        owner = policy.owner_acted_for(user.principal, str(form.get("owner") or "") or None)
        policy.require_write(user.principal, owner)
        upload = form.get("file")
        if isinstance(upload, UploadFile) and upload.filename:
            data, name = await upload.read(), upload.filename
        else:
            try:
                data = base64.b64decode(str(form.get("content") or ""), validate=True)
            except (binascii.Error, ValueError):
                data = b""
            name = str(form.get("filename") or "")
        context = await with_registered_owners(
            context_of(user, owner, filename=name, kind=str(form.get("kind") or "")), reads
        )
        if not data:
            context["failed"] = gettext("choose a file to upload")
            return page("import.html", context, status_code=422)
        if len(data) > MAX_UPLOAD_BYTES:
            context["failed"] = gettext("the file is larger than {size} MiB").format(
                size=MAX_UPLOAD_BYTES // 2**20
            )
            return page("import.html", context, status_code=413)
        apply = form.get("action") == "apply"
        budget = Budget(seconds=console.settings.import_read_budget_s)
        try:
            fmt = entry_files.format_of_file(name)
            kind = KINDS.get(context["kind"]) if fmt == "csv" else None
            if fmt == "csv" and kind is None:
                raise FormatError(gettext("a CSV file holds one kind: choose which"))
            # In a worker thread, one at a time per user (the API's ceiling on imports).
            async with ceilings.imports.slot(user.principal.client_key):
                batch = await entry_files.parse_upload_aside(data, fmt, owner, kind, budget)
        except FormatError as error:
            context["failed"] = gettext(str(error))
            too_large = isinstance(error, FileTooLarge)
            return page("import.html", context, status_code=413 if too_large else 422)
        mode: Mode = "replace" if form.get("mode") == "replace" else "merge"
        try:
            result = await apply_parsed(batches, batch, who(request, user), owner, mode=mode,
                                        dry_run=not apply, via="console import")  # fmt: skip
        except Problem as problem:
            if problem.status not in (409, 422):
                raise
            context |= {"problem": problem, "mode": mode}
            return page("import.html", context, status_code=problem.status)
        absent: list[tuple[str, str]] = []
        absent_total = 0
        if mode == "merge":
            # Merge mode deletes nothing: what the file leaves out stays, and is named.
            absent, absent_total = await previews.absent_from_file(reads, owner, result.diff)
        effects = [] if apply else await previews.batch_consequences(
            lookup.index, reads, owner, batch.items, result.diff)  # fmt: skip
        context |= {"result": result, "applied": apply, "mode": mode,
                    "changes": [c | {"spoken": _spoken_fields(c), "label": await _entry(reads, c)}
                                for c in result.changes(200)],
                    "counts": result.counts(), "absent": absent, "absent_total": absent_total,
                    "effects": effects,
                    "content": base64.b64encode(data).decode(),
                    "digest": hashlib.sha256(data).hexdigest()[:16]}  # fmt: skip
        return page("import.html", context)


def _spoken_fields(change: dict[str, Any]) -> list[str]:
    """A change's fields by their labels in the contract (as the forms show them)."""
    fields = KINDS[change["kind"]].schema.model_fields
    return [gettext(str(fields[f].title if f in fields and fields[f].title else field_label(f)))
            for f in change.get("fields") or ()]  # fmt: skip


async def _entry(reads: EntryReads, change: dict[str, Any]) -> str:
    """A change's entry by its key, or (an entry without one) by its code and name."""
    if change["id"] is None or str(change["key"]) != change["id"]:
        return str(change["key"])
    kind = KINDS[change["kind"]]
    document = await reads.get(kind, uuid.UUID(change["id"]))
    return label_of(kind, document) if document else gettext("a new entry")
