"""The console's pages: sign-in and out, home, lists, an entry with its history, diff and
revert, edit and create forms, delete with its referrers, and batch upload.

Every read and write goes through the API's services (`EntryReads`, `EntryWrites`,
`registry.edits`, `Batches`) and every decision through `security.policy`; a refusal
is a page that says what happened, never a JSON problem.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import uuid
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import Parameter
from litestar.response import Redirect

from cdb_service.console import forms
from cdb_service.console.signin import SignInFailed
from cdb_service.console.web import (
    BRUSSELS,
    SIGN_IN_COOKIE,
    TITLES,
    NotSignedIn,
    User,
    checked_form,
    page,
    parts,
    session_cookie,
    sign_in_cookie,
    sign_in_url,
    signed_in,
    who,
)
from cdb_service.kernel import calendar, codes
from cdb_service.kernel.problems import FieldError, Problem, invalid, stale
from cdb_service.lookup import resolver
from cdb_service.lookup.controller import build_query
from cdb_service.lookup.deps import lookup_of
from cdb_service.quality.service import owner_report
from cdb_service.registry import edits, exports
from cdb_service.registry.batches import Batches
from cdb_service.registry.exports import FormatError, natural_keys
from cdb_service.registry.imports import owner_of_batch
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.reads import EntryReads, Sort
from cdb_service.registry.routing_parties.expiry import expiring
from cdb_service.registry.routing_parties.rotation import rotate_certificate
from cdb_service.registry.spec import KindSpec
from cdb_service.registry.validation import validate
from cdb_service.registry.writes import EntryWrites, referrers_of
from cdb_service.security import policy
from cdb_service.settings import Settings

PAGE_SIZE = 25
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
SORTS = ("", "-updated_at", "updated_at")
EXPIRY_HORIZON = dt.timedelta(days=60)
SEVERITY_ORDER = ("error", "warning", "info")


def _kind(name: str) -> KindSpec:
    spec = KINDS.get(name)
    if spec is None:
        raise NotFoundException(f"no kind {name!r}")
    return spec


def _owner(user: User, asked: str | None) -> str | None:
    """The owner a page is about: an administrator's own; an operator's choice."""
    mine = user.principal.administers
    if user.principal.is_operator:
        wanted = (asked or "").strip().upper()
        # Operators also own the Commission's records (incidents, its maintenance).
        return wanted if wanted in codes.OWNERS or wanted == codes.COMMISSION else mine
    return mine


def _base(user: User, owner: str | None, **more: Any) -> dict[str, Any]:
    owners = {**codes.OWNERS, codes.COMMISSION: "European Commission"}
    return {"user": user, "owner": owner, "owners": owners, **more}


def _label(spec: KindSpec, document: dict[str, Any]) -> str:
    names = document.get("names")
    if isinstance(names, dict) and names:
        first = names.get("en") or next(iter(names.values()))
        return f"{document.get(spec.natural_key) or ''} {first}".strip()
    return str(document.get(spec.natural_key) or document.get("name") or document["id"])


async def _key_of(reads: EntryReads, spec: KindSpec, document: dict[str, Any]) -> Any:
    return await natural_keys(reads, {spec.name: [document]})


def _problem_page(request: Request[Any, Any, Any], problem: Problem) -> Response[str]:
    user = request.scope.get("console_user")
    titles = {403: "Not allowed", 404: "Not found", 409: "Conflict", 422: "Not accepted"}
    return page("error.html", {"user": user, "owner": None, "problem": problem,
                               "heading": titles.get(problem.status, problem.title)},
                status_code=problem.status, headers=problem.headers)  # fmt: skip


def _to_sign_in(request: Request[Any, Any, Any], _: NotSignedIn) -> Response[Any]:
    if request.method == "GET":
        query = f"?{request.url.query}" if request.url.query else ""
        return Redirect(sign_in_url(request.url.path + query))
    return page(
        "sign-in.html", {"user": None, "next": "/console/", "expired": True}, status_code=401
    )


async def _user(request: Request[Any, Any, Any]) -> User:
    user = await signed_in(request)
    request.scope["console_user"] = user  # type: ignore[typeddict-unknown-key]
    return user


def _safe_next(value: str | None) -> str:
    """Only a console path: never a redirect to another site."""
    if value and value.startswith("/console/") and not value.startswith("//"):
        return value
    return "/console/"


class ConsoleController(Controller):
    path = "/console"
    include_in_schema = False
    exception_handlers = {Problem: _problem_page, NotSignedIn: _to_sign_in}  # noqa: RUF012

    # --- signing in and out --------------------------------------------------------

    @get("/sign-in")
    async def sign_in_page(
        self, next_path: str | None = Parameter(query="next", default=None)
    ) -> Response[str]:
        return page("sign-in.html", {"user": None, "next": _safe_next(next_path)})

    @get("/auth/start")
    async def start(
        self,
        request: Request[Any, Any, Any],
        next_path: str | None = Parameter(query="next", default=None),
    ) -> Response[Any]:
        console = parts(request.app.state)
        # Each start stores a pending sign-in: counted like a refused request of its
        # address, so that a flood of starts is answered 429 and grows no table.
        limits, source = console.gate.limits, console.gate.source_address(request.scope)
        if limits is not None:
            limits.before_authentication(source or "unknown", None)
            limits.after_refusal(source or "unknown")
        redirect_uri = str(request.base_url).rstrip("/") + "/console/auth/callback"
        try:
            url, pending = await console.signin.begin(redirect_uri)
        except SignInFailed as error:
            return page("sign-in.html", {"user": None, "next": "/console/", "failed": str(error)},
                        status_code=502)  # fmt: skip
        pending["next"] = _safe_next(next_path)
        started = await console.store.begin_sign_in(pending)
        return Redirect(url, status_code=303, cookies=[sign_in_cookie(started.token, 600)])

    @get("/auth/callback")
    async def callback(
        self,
        request: Request[Any, Any, Any],
        code: str = "",
        answer_state: str = Parameter(query="state", default=""),
        error: str = "",
        error_description: str = "",
    ) -> Response[str]:
        console = parts(request.app.state)
        token = request.cookies.get(SIGN_IN_COOKIE, "")
        pending = await console.store.take_sign_in(token) if token else None
        gone = sign_in_cookie("", 0)
        failed = None
        if error:
            failed = f"the identity provider said: {error} {error_description}".strip()
        elif pending is None:
            failed = "this sign-in has expired or was already used: start again"
        if failed is None and pending is not None:
            try:
                data = await console.signin.finish(pending, code, answer_state)
            except SignInFailed as why:
                failed = str(why)
        if failed is not None or pending is None:
            return page("sign-in.html", {"user": None, "next": "/console/", "failed": failed},
                        status_code=400, cookies=[gone])  # fmt: skip
        session = await console.store.open(data)
        cookie = session_cookie(session.token, console.settings.console_absolute_timeout_s)
        # A page, not a redirect: the SameSite=Strict cookie is sent on the next navigation,
        # which starts here, on this site (after a redirect chain begun by the provider's
        # site, a browser would hold it back).
        context = {"user": None, "next": pending["next"], "person": data["person"]}
        return page("signed-in.html", context, cookies=[gone, cookie])

    @post("/sign-out", status_code=200)
    async def sign_out(self, request: Request[Any, Any, Any]) -> Response[Any]:
        user = await _user(request)
        await checked_form(request, user)
        console = parts(request.app.state)
        await console.store.close(user.session.token)
        gone = session_cookie("", 0)
        end = user.session.data.get("end_session")
        if end:
            back = str(request.base_url).rstrip("/") + "/console/signed-out"
            query = urlencode({"id_token_hint": user.session.data.get("id_token") or "",
                               "post_logout_redirect_uri": back,
                               "client_id": console.settings.console_client_id})  # fmt: skip
            # A page that moves on by itself, not a redirect: the CSP's form-action would
            # stop a form's redirect to the provider's origin.
            return page("signed-out.html", {"user": None, "provider_url": f"{end}?{query}"},
                        cookies=[gone])  # fmt: skip
        return Redirect("/console/signed-out", status_code=303, cookies=[gone])

    @get("/signed-out")
    async def signed_out(self) -> Response[str]:
        return page("signed-out.html", {"user": None})

    # --- home ----------------------------------------------------------------------

    @get("/")
    async def home(self, request: Request[Any, Any, Any], reads: NamedDependency[EntryReads],
                   settings: NamedDependency[Settings], owner: str | None = None
                   ) -> Response[str]:  # fmt: skip
        user = await _user(request)
        chosen = _owner(user, owner)
        context = _base(user, chosen)
        if chosen is None:
            return page("home.html", context)
        counts = {}
        for spec in KINDS.values():
            counts[spec.name], _ = await reads.count(spec, filters={"owner": chosen})
        today = dt.datetime.now(dt.UTC).date()
        quality = await owner_report(reads, chosen, today, settings.quality_review_days)
        now = dt.datetime.now(dt.UTC)
        parties = await reads.documents([KINDS["routing-parties"]], chosen)
        windows = [d for _, d in await reads.documents([KINDS["maintenance-windows"]], chosen)
                   if str(d.get("ends_at") or "") >= now.isoformat()[:19]]  # fmt: skip
        windows.sort(key=lambda d: str(d.get("starts_at")))
        context |= {"counts": counts, "quality": quality, "severities": SEVERITY_ORDER,
                    "certificates": expiring(parties, EXPIRY_HORIZON, now),
                    "windows": windows[:10]}  # fmt: skip
        return page("home.html", context)

    # --- batch upload --------------------------------------------------------------

    @get("/import")
    async def upload_form(self, request: Request[Any, Any, Any], owner: str | None = None
                          ) -> Response[str]:  # fmt: skip
        user = await _user(request)
        return page("import.html", _base(user, _owner(user, owner)))

    @post("/import", request_max_body_size=MAX_UPLOAD_BYTES * 2)
    async def upload(self, request: Request[Any, Any, Any], batches: NamedDependency[Batches]
                     ) -> Response[str]:  # fmt: skip
        user = await _user(request)
        form = await checked_form(request, user)
        owner = owner_of_batch(str(form.get("owner") or "") or None,
                               user.principal.administers, user.principal.is_operator)  # fmt: skip
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
        context = _base(user, owner, filename=name, kind=str(form.get("kind") or ""))
        if not data:
            context["failed"] = "choose a file to upload"
            return page("import.html", context, status_code=422)
        if len(data) > MAX_UPLOAD_BYTES:
            context["failed"] = f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MiB"
            return page("import.html", context, status_code=413)
        apply = form.get("action") == "apply"
        try:
            fmt = exports.format_of_file(name)
            kind = KINDS.get(context["kind"]) if fmt == "csv" else None
            if fmt == "csv" and kind is None:
                raise FormatError("a CSV file holds one kind: choose which")
            batch = exports.parse_upload(data, fmt, owner, kind)
        except FormatError as error:
            context["failed"] = str(error)
            return page("import.html", context, status_code=422)
        mode = "replace" if form.get("mode") == "replace" else "merge"
        try:
            result = await batches.apply(
                batch.items, who(request, user),
                replace_owner=owner if mode == "replace" else None, dry_run=not apply,
                summary=f"console import {owner} ({mode})", prior_errors=batch.errors,
                unlisted_errors=batch.error_count - len(batch.errors), broken=batch.broken,
                complete=not batch.unidentified,
            )  # fmt: skip
        except Problem as problem:
            if problem.status not in (409, 422):
                raise
            context |= {"problem": problem, "mode": mode}
            return page("import.html", context, status_code=problem.status)
        context |= {"result": result, "applied": apply, "mode": mode,
                    "changes": result.changes(200), "counts": result.counts(),
                    "content": base64.b64encode(data).decode(),
                    "digest": hashlib.sha256(data).hexdigest()[:16]}  # fmt: skip
        return page("import.html", context)

    # --- lists ---------------------------------------------------------------------

    @get("/{kind_name:str}")
    async def listing(self, request: Request[Any, Any, Any], kind_name: str,
                      reads: NamedDependency[EntryReads], q: str = "", sort: str = "",
                      owner: str | None = None, after: str = "",
                      page_number: int = Parameter(query="page", default=1, ge=1, le=100_000)
                      ) -> Response[str]:  # fmt: skip
        user = await _user(request)
        spec = _kind(kind_name)
        chosen = _owner(user, owner) if owner or not user.principal.is_operator else None
        filters: dict[str, Any] = {}
        if chosen:
            filters["owner"] = chosen
        if q.strip():
            filters["q"] = spec.all_filters["q"].parse(q.strip()[:200])
        # The kind's own filters (instrument, code, component, …), as on the API.
        chosen_filters = {}
        for name in (f.name for f in spec.filters):
            value = request.query_params.get(name, "").strip()[:200]
            if value:
                try:
                    filters[name] = spec.all_filters[name].parse(value)
                except ValueError:
                    raise invalid([FieldError(("query", name), "is not a valid id")]) from None
                chosen_filters[name] = value
        order = Sort.parse(sort) if sort in SORTS and sort else None
        cursor_id, cursor_value = None, None
        if after:
            head, _, tail = after.partition("|")
            try:
                cursor_id = uuid.UUID(head)
            except ValueError:
                raise invalid([FieldError(("query", "after"), "is not a page mark")]) from None
            cursor_value = tail or None
        listed = await reads.collection(spec, filters=filters, after=cursor_id, limit=PAGE_SIZE,
                                        sort=order, after_value=cursor_value)  # fmt: skip
        total, revision = await reads.count(spec, filters=filters)
        more = None
        if listed.next is not None:
            mark = str(listed.next) + (f"|{listed.next_value}" if order else "")
            query = {"q": q, "sort": sort, "after": mark, "page": page_number + 1, **chosen_filters}
            if chosen and user.principal.is_operator:
                query["owner"] = chosen
            more = urlencode({k: v for k, v in query.items() if v})
        rows = [(d, _label(spec, d)) for d in listed.items]
        may_create = bool(chosen) and policy.may_write(user.principal, str(chosen))
        context = _base(user, chosen, spec=spec, title=TITLES.get(spec.name, spec.name),
                        rows=rows, total=total, revision=revision, q=q, sort=sort,
                        sorts=SORTS, more=more, page_number=page_number,
                        may_create=may_create, kind_filters=[f.name for f in spec.filters],
                        chosen_filters=chosen_filters)  # fmt: skip
        return page("list.html", context)

    # --- one entry -----------------------------------------------------------------

    @get("/{kind_name:str}/{entry_id:uuid}")
    async def entry(self, request: Request[Any, Any, Any], kind_name: str,
                    entry_id: uuid.UUID, reads: NamedDependency[EntryReads],
                    from_version: int | None = Parameter(query="from", default=None, ge=1),
                    to_version: int | None = Parameter(query="to", default=None, ge=1),
                    done: str = "") -> Response[str]:  # fmt: skip
        user = await _user(request)
        spec = _kind(kind_name)
        document = policy.redact(await edits.current(reads, spec, entry_id), spec.private_fields,
                                 user.principal)  # fmt: skip
        versions = [v for v in await reads.history(entry_id) if v["kind"] == spec.name]
        diff = None
        if from_version is not None:
            diff = await edits.diff(reads, spec, entry_id, user.principal, from_version,
                                    to_version)  # fmt: skip
        elif len(versions) > 1:
            diff = await edits.diff(reads, spec, entry_id, user.principal,
                                    versions[1]["version"], versions[0]["version"])  # fmt: skip
        links = {}
        for ref in spec.references:
            target = document.get(ref.id_field)
            if target:
                links[ref.id_field] = f"/console/{ref.target}/{target}"
        context = _base(user, document["owner"], spec=spec, document=document,
                        label=_label(spec, document), versions=versions, diff=diff, links=links,
                        title=TITLES.get(spec.name, spec.name), done=done,
                        may_write=policy.may_write(user.principal, document["owner"]))  # fmt: skip
        return page("entry.html", context)

    @post("/{kind_name:str}/{entry_id:uuid}/revert", status_code=303)
    async def revert(self, request: Request[Any, Any, Any], kind_name: str,
                     entry_id: uuid.UUID, reads: NamedDependency[EntryReads],
                     writes: NamedDependency[EntryWrites]) -> Response[Any]:  # fmt: skip
        user = await _user(request)
        form = await checked_form(request, user)
        spec = _kind(kind_name)
        current = await edits.current(reads, spec, entry_id)
        policy.require_write(user.principal, current["owner"])
        expected, version = _number(form, "expected"), _number(form, "version")
        if expected != current["version"]:
            raise stale(expected, int(current["version"]))
        data = await edits.reverted(reads, spec, entry_id, version, None)
        policy.require_write(user.principal, data.owner, current["owner"])
        written = await writes.update(spec, entry_id, data, who(request, user), expected)
        done = f"Version {version} is current again, as version {written['version']}."
        return Redirect(f"/console/{spec.name}/{entry_id}?" + urlencode({"done": done}),
                        status_code=303)  # fmt: skip

    @get("/{kind_name:str}/{entry_id:uuid}/edit")
    async def edit_form(self, request: Request[Any, Any, Any], kind_name: str,
                        entry_id: uuid.UUID, reads: NamedDependency[EntryReads]
                        ) -> Response[str]:  # fmt: skip
        user = await _user(request)
        spec = _kind(kind_name)
        current = await edits.current(reads, spec, entry_id)
        policy.require_write(user.principal, current["owner"])
        values = forms.values_of(spec, current, await _key_of(reads, spec, current))
        return page("edit.html", _base(user, current["owner"], spec=spec, document=current,
                                       fields=forms.fields_of(spec, values), loose=[],
                                       label=_label(spec, current),
                                       title=TITLES.get(spec.name, spec.name)))  # fmt: skip

    @post("/{kind_name:str}/{entry_id:uuid}/edit", status_code=200)
    async def edit(self, request: Request[Any, Any, Any], kind_name: str, entry_id: uuid.UUID,
                   reads: NamedDependency[EntryReads], writes: NamedDependency[EntryWrites]
                   ) -> Response[Any]:  # fmt: skip
        user = await _user(request)
        form = await checked_form(request, user)
        spec = _kind(kind_name)
        current = await edits.current(reads, spec, entry_id)
        policy.require_write(user.principal, current["owner"])
        expected = _number(form, "expected")
        opened = await edits.version_document(reads, spec, entry_id, expected, None, "expected")
        before = forms.values_of(spec, opened, await _key_of(reads, spec, opened))
        typed = forms.submitted(form)
        body, unreadable = forms.merge_patch(spec, typed, before)
        fields = forms.fields_of(spec, before | typed)
        context = _base(user, current["owner"], spec=spec, document=current, fields=fields,
                        label=_label(spec, current), title=TITLES.get(spec.name, spec.name),
                        expected=expected)  # fmt: skip
        if expected != current["version"]:
            # Someone else wrote since the form was opened: say who changed what, keep
            # what was typed, and let the person look again before sending.
            context |= {"stale": await edits.diff(reads, spec, entry_id, user.principal,
                                                  expected, None), "loose": []}  # fmt: skip
            context["document"] = current
            return page("edit.html", context, status_code=409)
        if not body and not unreadable:
            unchanged = urlencode({"done": "Nothing was changed."})
            return Redirect(f"/console/{spec.name}/{entry_id}?{unchanged}", status_code=303)
        try:
            if unreadable:
                raise invalid(unreadable)
            data = edits.patched(spec, current, body, user.principal)
            written = await writes.update(spec, entry_id, data, who(request, user), expected)
        except Problem as problem:
            if problem.status not in (409, 412, 422):
                raise
            context["loose"] = forms.place_errors(fields, problem.errors)
            if not problem.errors:
                context["loose"].append(problem.detail)
            return page("edit.html", context, status_code=problem.status)
        done = f"Saved as version {written['version']} (revision {written['revision']})."
        return Redirect(f"/console/{spec.name}/{entry_id}?" + urlencode({"done": done}),
                        status_code=303)  # fmt: skip

    @get("/{kind_name:str}/new")
    async def create_form(self, request: Request[Any, Any, Any], kind_name: str,
                          owner: str | None = None) -> Response[str]:  # fmt: skip
        user = await _user(request)
        spec = _kind(kind_name)
        chosen = _owner(user, owner)
        if chosen is None:
            raise Problem(403, "Forbidden", "choose an owner first", "forbidden")
        policy.require_write(user.principal, chosen)
        values = forms.values_of(spec, {"owner": chosen}, lambda _k, _i: None)
        return page("create.html", _base(user, chosen, spec=spec, loose=[],
                                         fields=forms.fields_of(spec, values),
                                         title=TITLES.get(spec.name, spec.name)))  # fmt: skip

    @post("/{kind_name:str}/new", status_code=200)
    async def create(self, request: Request[Any, Any, Any], kind_name: str,
                     writes: NamedDependency[EntryWrites]) -> Response[Any]:  # fmt: skip
        user = await _user(request)
        form = await checked_form(request, user)
        spec = _kind(kind_name)
        chosen = _owner(user, str(form.get("owner") or ""))
        if chosen is None:
            raise Problem(403, "Forbidden", "choose an owner first", "forbidden")
        policy.require_write(user.principal, chosen)
        typed = forms.submitted(form)
        blank = forms.values_of(spec, {"owner": chosen}, lambda _k, _i: None)
        fields = forms.fields_of(spec, blank | typed)
        context = _base(user, chosen, spec=spec, fields=fields,
                        title=TITLES.get(spec.name, spec.name))  # fmt: skip
        document, unreadable = forms.whole_document(spec, typed, chosen)
        try:
            if unreadable:
                raise invalid(unreadable)
            data = validate(spec, document)
            policy.require_write(user.principal, data.owner)
            created = await writes.create(spec, data, who(request, user))
        except Problem as problem:
            if problem.status not in (409, 422):
                raise
            context["loose"] = forms.place_errors(fields, problem.errors)
            if not problem.errors:
                context["loose"].append(problem.detail)
            return page("create.html", context, status_code=problem.status)
        done = f"Created (revision {created.document['revision']})."
        return Redirect(f"/console/{spec.name}/{created.document['id']}?" +
                        urlencode({"done": done}), status_code=303)  # fmt: skip

    @get("/{kind_name:str}/{entry_id:uuid}/delete")
    async def delete_form(self, request: Request[Any, Any, Any], kind_name: str,
                          entry_id: uuid.UUID, reads: NamedDependency[EntryReads]
                          ) -> Response[str]:  # fmt: skip
        user = await _user(request)
        spec = _kind(kind_name)
        current = await edits.current(reads, spec, entry_id)
        policy.require_write(user.principal, current["owner"])
        async with reads.sessions() as session:
            found = await referrers_of(session, spec, entry_id)
        referrers = [(other.name, row.id, getattr(row, other.natural_key, None) or row.id)
                     for other, row in found]  # fmt: skip
        return page("delete.html", _base(user, current["owner"], spec=spec, document=current,
                                         label=_label(spec, current), referrers=referrers,
                                         title=TITLES.get(spec.name, spec.name)))  # fmt: skip

    @post("/{kind_name:str}/{entry_id:uuid}/delete", status_code=303)
    async def delete(self, request: Request[Any, Any, Any], kind_name: str,
                     entry_id: uuid.UUID, reads: NamedDependency[EntryReads],
                     writes: NamedDependency[EntryWrites]) -> Response[Any]:  # fmt: skip
        user = await _user(request)
        form = await checked_form(request, user)
        spec = _kind(kind_name)
        current = await edits.current(reads, spec, entry_id)
        policy.require_write(user.principal, current["owner"])
        expected = _number(form, "expected")
        if form.get("action") == "retire":
            day = str(form.get("valid_to") or "")
            data = edits.patched(spec, current, {"valid_to": day or None}, user.principal)
            written = await writes.update(spec, entry_id, data, who(request, user), expected)
            done = f"Valid until {day or 'further notice'}: version {written['version']}."
            return Redirect(f"/console/{spec.name}/{entry_id}?" + urlencode({"done": done}),
                            status_code=303)  # fmt: skip
        await writes.delete(spec, entry_id, who(request, user), expected)
        return Redirect(f"/console/{spec.name}?" + urlencode({"q": ""}), status_code=303)


def _number(form: dict[str, Any], name: str) -> int:
    try:
        return int(str(form.get(name)))
    except ValueError:
        raise invalid([FieldError((name,), "is not a version number")]) from None


def _brussels(text: str) -> dt.datetime | None:
    """A time typed in a form (no zone) as Europe/Brussels, or None when empty or wrong."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=BRUSSELS)


class ConsoleTools(Controller):
    """The pages that are not one kind's: who would receive a message, the notice rule of a
    maintenance window, and a routing party's certificate rotation."""

    path = "/console"
    include_in_schema = False
    exception_handlers = {Problem: _problem_page, NotSignedIn: _to_sign_in}  # noqa: RUF012

    @get("/resolve")
    async def resolve(self, request: Request[Any, Any, Any], country: str = "",
                      instrument: str = "", competence: str = "", postal_code: str = "",
                      day: str = Parameter(query="date", default="")) -> Response[str]:  # fmt: skip
        user = await _user(request)
        asked = {"country": country, "instrument": instrument, "competence": competence,
                 "postal_code": postal_code, "date": day}  # fmt: skip
        context = _base(user, user.principal.administers, asked=asked, answer=None, errors={},
                        countries=codes.COUNTRIES, instruments=codes.INSTRUMENTS,
                        competences=codes.COMPETENCES)  # fmt: skip
        if country:
            try:
                date = dt.date.fromisoformat(day) if day else None
            except ValueError:
                context["errors"] = {"date": "is not a date (YYYY-MM-DD)"}
                return page("resolve.html", context, status_code=422)
            try:
                query = build_query(country, instrument or None, competence or None,
                                    postal_code or None, None, None, None, None, date)  # fmt: skip
                index = lookup_of(request.scope).index
                if index is None:
                    raise Problem(503, "Not ready", "the lookup data is still loading", "not-ready")
                context["answer"] = resolver.resolve(index, query)
            except Problem as problem:
                if problem.status != 422:
                    raise
                context["errors"] = {str(e.loc[-1]): e.msg for e in problem.errors}
                return page("resolve.html", context, status_code=422)
        return page("resolve.html", context)

    @get("/maintenance-notice")
    async def notice(self, request: Request[Any, Any, Any], starts_at: str = "",
                     ends_at: str = "") -> Response[str]:  # fmt: skip
        """Annex I 6.3/6.4 for the times typed: the notice needed, whether announcing now
        gives it, and whether the window lies in the preferred hours."""
        user = await _user(request)
        context = _base(user, user.principal.administers, starts_at=starts_at, ends_at=ends_at,
                        rule=None, error=None)  # fmt: skip
        if starts_at or ends_at:
            starts, ends = _brussels(starts_at), _brussels(ends_at)
            if starts is None or ends is None or ends <= starts:
                context["error"] = "give a start and a later end (YYYY-MM-DD HH:MM, Brussels)"
                return page("notice.html", context, status_code=422)
            now = dt.datetime.now(dt.UTC)
            context["rule"] = calendar.derive(starts, ends, now)
            context["hours"] = round((ends - starts).total_seconds() / 3600, 2)
        return page("notice.html", context)

    @get("/rotate/{entry_id:uuid}")
    async def rotate_form(self, request: Request[Any, Any, Any], entry_id: uuid.UUID,
                          reads: NamedDependency[EntryReads]) -> Response[str]:  # fmt: skip
        user = await _user(request)
        party = await edits.current(reads, KINDS["routing-parties"], entry_id)
        policy.require_write(user.principal, party["owner"])
        return page("rotate.html", _base(user, party["owner"], party=party, error=None))

    @post("/rotate/{entry_id:uuid}", status_code=303)
    async def rotate(self, request: Request[Any, Any, Any], entry_id: uuid.UUID,
                     reads: NamedDependency[EntryReads],
                     writes: NamedDependency[EntryWrites]) -> Response[Any]:  # fmt: skip
        user = await _user(request)
        form = await checked_form(request, user)
        party = await edits.current(reads, KINDS["routing-parties"], entry_id)
        policy.require_write(user.principal, party["owner"])
        try:
            done = await rotate_certificate(
                writes.sessions, str(form.get("old") or ""), str(form.get("pem") or ""),
                who(request, user), lambda owner: policy.require_write(user.principal, owner),
            )  # fmt: skip
        except Problem as problem:
            if problem.status not in (404, 409, 422):
                raise
            why = "; ".join(e.msg for e in problem.errors) or problem.detail
            context = _base(user, party["owner"], party=party, error=why)
            return page("rotate.html", context, status_code=problem.status)
        message = (f"Certificate replaced in {len(done['routing_parties'])} routing "
                   f"part{'y' if len(done['routing_parties']) == 1 else 'ies'} "
                   f"(revision {done['revision']}).")  # fmt: skip
        return Redirect(f"/console/routing-parties/{entry_id}?" + urlencode({"done": message}),
                        status_code=303)  # fmt: skip
