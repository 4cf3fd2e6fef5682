"""The console's pages of entries: home, lists, an entry with its history, diff and revert,
edit and create forms, retire or delete with its referrers (batch upload: `uploads.py`).

Every read and write goes through the API's services (`EntryReads`, `EntryWrites`,
`registry.store.edits`) and every decision through `security.policy`; a refusal
is a page that says what happened, never a JSON problem.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import Redirect

from cdb_service.console import form_reading, i18n, previews, refusals, widgets
from cdb_service.console.endings import change_of, writable
from cdb_service.console.entry_views import (
    controls_of,
    filter_controls,
    items_of_form,
    routing_of,
)
from cdb_service.console.i18n import gettext
from cdb_service.console.pages import (
    HANDLERS,
    chosen_owner,
    context_of,
    current_user,
    kind_of,
    label_of,
    owner_cookie,
    owner_of,
    with_registered_owners,
)
from cdb_service.console.web import (
    checked_form,
    page,
    title_of,
    viewer,
    who,
)
from cdb_service.kernel.json_documents import merge_patch_between
from cdb_service.kernel.problems import FORBIDDEN, FieldError, Problem, invalid
from cdb_service.lookup.follower import IndexFollower
from cdb_service.quality.service import owner_report
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.routing_parties.expiry import expiring
from cdb_service.registry.store import edits
from cdb_service.registry.store.reads import EntryReads, Sort
from cdb_service.registry.store.validation import validate
from cdb_service.registry.store.writes import EntryWrites
from cdb_service.security import policy
from cdb_service.settings import Settings

PAGE_SIZE = 25
SORTS = ("", "-updated_at", "updated_at")
EXPIRY_HORIZON = dt.timedelta(days=60)
SEVERITY_ORDER = ("error", "warning", "info")


class ConsoleEntries(Controller):
    path = "/console"
    include_in_schema = False
    exception_handlers = HANDLERS
    before_request = staticmethod(i18n.speak)  # the language the page is answered in

    @get("/")
    async def home(self, request: Request[Any, Any, Any], reads: NamedDependency[EntryReads],
                   settings: NamedDependency[Settings], owner: str | None = None
                   ) -> Response[str]:  # fmt: skip
        user = await current_user(request)
        chosen = chosen_owner(request, user, owner)
        context = await with_registered_owners(context_of(user, chosen), reads)
        # An operator's choice is remembered: the next visit opens on the same owner.
        cookies = [owner_cookie(chosen)] if chosen and owner and user.principal.is_operator else []
        if chosen is None:
            return page("home.html", context)
        counts = {}
        for spec in KINDS.values():
            counts[spec.name], _ = await reads.count(spec, filters={"owner": chosen})
        today = dt.datetime.now(dt.UTC).date()
        quality = await owner_report(reads, chosen, today, settings.quality_review_days,
                                     settings.rollover_min_overlap_working_days,
                                     settings.rollout_alert_working_days)  # fmt: skip
        now = dt.datetime.now(dt.UTC)
        parties = await reads.documents([KINDS["routing-parties"]], chosen)
        windows = [d for _, d in await reads.documents([KINDS["maintenance-windows"]], chosen)
                   if str(d.get("ends_at") or "") >= now.isoformat()[:19]]  # fmt: skip
        windows.sort(key=lambda d: str(d.get("starts_at")))
        context |= {"counts": counts, "quality": quality, "severities": SEVERITY_ORDER,
                    "certificates": expiring(parties, EXPIRY_HORIZON, now),
                    "windows": windows[:10]}  # fmt: skip
        return page("home.html", context, cookies=cookies)

    # --- lists ---------------------------------------------------------------------

    @get("/{kind_name:str}")
    async def listing(self, request: Request[Any, Any, Any], kind_name: str,
                      reads: NamedDependency[EntryReads], q: str = "", sort: str = "",
                      owner: str | None = None, after: str = "", done: str = "",
                      page_number: int = Parameter(query="page", default=1, ge=1, le=100_000)
                      ) -> Response[str]:  # fmt: skip
        user = await current_user(request)
        spec = kind_of(kind_name)
        chosen = chosen_owner(request, user, owner)
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
                    wrong = FieldError(("query", name), gettext("is not a valid id"))
                    raise invalid([wrong]) from None
                chosen_filters[name] = value
        order = Sort.parse(sort) if sort in SORTS and sort else None
        cursor_id, cursor_value = None, None
        if after:
            head, _, tail = after.partition("|")
            try:
                cursor_id = uuid.UUID(head)
                cursor_value = order.mark(tail) if order and tail else None
            except ValueError:
                wrong = FieldError(("query", "after"), gettext("is not a page mark"))
                raise invalid([wrong]) from None
        private = policy.sees_named_persons(user.principal)  # `q` searches names it may read
        listed = await reads.collection(spec, filters=filters, after=cursor_id, limit=PAGE_SIZE,
                                        sort=order, after_value=cursor_value,
                                        private=private)  # fmt: skip
        total, revision = await reads.count(spec, filters=filters, private=private)
        more = None
        if listed.next is not None:
            mark = str(listed.next) + (f"|{listed.next_value}" if order else "")
            query = {"q": q, "sort": sort, "after": mark, "page": page_number + 1, **chosen_filters}
            if chosen and user.principal.is_operator:
                query["owner"] = chosen
            more = urlencode({k: v for k, v in query.items() if v})
        # A list shows no named person (its label is the entry's key and name), so it is
        # no consultation; they are left out of what the page is given.
        rows = [(policy.redact(d, spec.private_fields), label_of(spec, d)) for d in listed.items]
        may_create = bool(chosen) and policy.may_write(user.principal, str(chosen))
        filters_shown = await filter_controls(reads, spec, chosen)
        context = context_of(user, chosen, spec=spec, title=title_of(spec.name),
                        rows=rows, total=total, revision=revision, q=q, sort=sort,
                        sorts=SORTS, more=more, page_number=page_number,
                        may_create=may_create, kind_filters=filters_shown,
                        chosen_filters=chosen_filters, done=done[:300])  # fmt: skip
        return page("list.html", context)

    # --- one entry -----------------------------------------------------------------

    @get("/{kind_name:str}/{entry_id:uuid}")
    async def entry(self, request: Request[Any, Any, Any], kind_name: str,
                    entry_id: uuid.UUID, reads: NamedDependency[EntryReads],
                    lookup: NamedDependency[IndexFollower],
                    from_version: int | None = Parameter(query="from", default=None, ge=1),
                    to_version: int | None = Parameter(query="to", default=None, ge=1),
                    done: str = "") -> Response[str]:  # fmt: skip
        user = await current_user(request)
        spec = kind_of(kind_name)
        reader = viewer(request, user)
        current = await edits.current(reads, spec, entry_id)
        document = reader.visible(spec.name, spec.private_fields, current, "console")
        versions = [v for v in await reads.history(entry_id) if v["kind"] == spec.name]
        diff = None
        if from_version is not None:
            diff = await edits.diff(reads, spec, entry_id, reader, from_version,
                                    to_version)  # fmt: skip
        elif len(versions) > 1:
            diff = await edits.diff(reads, spec, entry_id, reader,
                                    versions[1]["version"], versions[0]["version"])  # fmt: skip
        links = {}
        for ref in spec.references:
            target = document.get(ref.id_field)
            if target:
                links[ref.id_field] = f"/console/{ref.target}/{target}"
        controls = await controls_of(reads, spec, document["owner"], document, defaults=False)
        routing = (
            await routing_of(reads, lookup.index, document) if spec.name == "authorities" else None
        )
        context = context_of(user, document["owner"], spec=spec, document=document,
                        widgets=controls, routing=routing,
                        label=label_of(spec, document), versions=versions, diff=diff, links=links,
                        title=title_of(spec.name), done=done,
                        may_write=policy.may_write(user.principal, document["owner"]))  # fmt: skip
        return page("entry.html", context)

    @get("/{kind_name:str}/{entry_id:uuid}/edit")
    async def edit_form(self, request: Request[Any, Any, Any], kind_name: str,
                        entry_id: uuid.UUID, reads: NamedDependency[EntryReads]
                        ) -> Response[str]:  # fmt: skip
        user = await current_user(request)
        spec, current = await writable(user, reads, kind_name, entry_id)
        # The form shows every field, named persons included: a consultation.
        current = viewer(request, user).visible(spec.name, spec.private_fields, current,
                                                "console")  # fmt: skip
        controls = await controls_of(reads, spec, current["owner"], current)
        return page("edit.html", context_of(user, current["owner"], spec=spec, document=current,
                                       widgets=controls, loose=[],
                                       label=label_of(spec, current),
                                       title=title_of(spec.name)))  # fmt: skip

    @post("/{kind_name:str}/{entry_id:uuid}/edit", status_code=200)
    async def edit(self, request: Request[Any, Any, Any], kind_name: str, entry_id: uuid.UUID,
                   reads: NamedDependency[EntryReads], writes: NamedDependency[EntryWrites],
                   lookup: NamedDependency[IndexFollower]) -> Response[Any]:  # fmt: skip
        user, _, spec, current, expected = await change_of(request, reads, kind_name, entry_id)
        owner = current["owner"]
        opened = await edits.version_document(reads, spec, entry_id, expected, None, "expected")
        shown = await controls_of(reads, spec, owner, opened)
        before, _ = form_reading.read(shown, widgets.items_of(shown), owner)
        controls = await controls_of(reads, spec, owner, None)
        items = await items_of_form(request)
        after, unreadable = form_reading.read(controls, items, owner)
        body = merge_patch_between(form_reading.only_sent(before, controls, items),
                                   form_reading.only_sent(after, controls, items))  # fmt: skip
        context = context_of(user, owner, spec=spec, document=current, widgets=controls,
                        label=label_of(spec, current), title=title_of(spec.name),
                        expected=expected, loose=[])  # fmt: skip
        if expected != current["version"]:
            # Someone else wrote since the form was opened: say who changed what, keep
            # what was typed, and let the person look again before sending.
            context |= {"stale": await edits.diff(reads, spec, entry_id, viewer(request, user),
                                                  expected, None)}  # fmt: skip
            context["document"] = current
            return page("edit.html", context, status_code=409)
        if not body and not unreadable:
            unchanged = urlencode({"done": gettext("Nothing was changed.")})
            return Redirect(f"/console/{spec.name}/{entry_id}?{unchanged}", status_code=303)
        errors = list(unreadable)
        try:
            data = edits.patched(spec, current, body, user.principal)
            if not errors and not previews.confirmed(user.csrf, items):
                # Nothing is written before the person has seen what it changes and causes;
                # the write is tried and rolled back, so that what the API would refuse
                # (a duplicate, a reference to nothing) is said now, not after confirming.
                await writes.update(spec, entry_id, data, who(request, user), expected,
                                    dry_run=True)  # fmt: skip
                rows = previews.changes(
                    controls,
                    form_reading.only_sent(before, controls, items),
                    form_reading.only_sent(after, controls, items),
                    owner,
                )
                effects = await previews.consequences(
                    lookup.index,
                    reads,
                    spec,
                    owner,
                    current,
                    form_reading.as_document(data, current),
                    rows,
                )
                context["preview"] = previews.preview_of(user.csrf, items, rows, effects)
                return page("edit.html", context)
            if not errors:
                written = await writes.update(spec, entry_id, data, who(request, user), expected)
        except Problem as problem:
            if problem.status not in (409, 412, 422):
                raise
            errors += problem.errors
            context["loose"] = [] if problem.errors else [refusals.said(problem.detail)]
            status = problem.status
        else:
            status = 422
        if errors or context["loose"]:
            context["loose"] += form_reading.place_errors(controls, errors)
            return page("edit.html", context, status_code=status)
        done = gettext("Saved as version {version} (revision {revision}).").format(
            version=written["version"], revision=written["revision"]
        )
        return Redirect(f"/console/{spec.name}/{entry_id}?" + urlencode({"done": done}),
                        status_code=303)  # fmt: skip

    @get("/{kind_name:str}/new")
    async def create_form(self, request: Request[Any, Any, Any], kind_name: str,
                          reads: NamedDependency[EntryReads], owner: str | None = None
                          ) -> Response[str]:  # fmt: skip
        user = await current_user(request)
        spec = kind_of(kind_name)
        chosen = chosen_owner(request, user, owner)
        if chosen is None:
            raise FORBIDDEN(gettext("choose an owner first"))
        policy.require_write(user.principal, chosen)
        controls = await controls_of(reads, spec, chosen, {})
        return page("create.html", context_of(user, chosen, spec=spec, loose=[],
                                         widgets=controls,
                                         title=title_of(spec.name)))  # fmt: skip

    @post("/{kind_name:str}/new", status_code=200)
    async def create(self, request: Request[Any, Any, Any], kind_name: str,
                     reads: NamedDependency[EntryReads], writes: NamedDependency[EntryWrites],
                     lookup: NamedDependency[IndexFollower]) -> Response[Any]:  # fmt: skip
        user = await current_user(request)
        form = await checked_form(request, user)
        spec = kind_of(kind_name)
        chosen = owner_of(user, str(form.get("owner") or ""))
        if chosen is None:
            raise FORBIDDEN(gettext("choose an owner first"))
        policy.require_write(user.principal, chosen)
        controls = await controls_of(reads, spec, chosen, None)
        items = await items_of_form(request)
        document, errors = form_reading.read(controls, items, chosen)
        context = context_of(user, chosen, spec=spec, widgets=controls, loose=[],
                        title=title_of(spec.name))  # fmt: skip
        status = 422
        try:
            # Every error at once: what could not be read and what the contract refuses.
            data = validate(spec, document | {"owner": chosen})
            if not errors and not previews.confirmed(user.csrf, items):
                policy.require_write(user.principal, data.owner)
                await writes.create(spec, data, who(request, user), dry_run=True)
                rows = previews.changes(controls, {}, document, chosen)
                effects = await previews.consequences(
                    lookup.index,
                    reads,
                    spec,
                    chosen,
                    None,
                    form_reading.as_document(data, None),
                    rows,
                )
                context["preview"] = previews.preview_of(user.csrf, items, rows, effects)
                return page("create.html", context)
            if not errors:
                policy.require_write(user.principal, data.owner)
                created = await writes.create(spec, data, who(request, user))
        except Problem as problem:
            if problem.status not in (409, 422):
                raise
            errors += problem.errors
            context["loose"] = [] if problem.errors else [refusals.said(problem.detail)]
            status = problem.status
        if errors or context["loose"]:
            context["loose"] += form_reading.place_errors(controls, errors)
            return page("create.html", context, status_code=status)
        done = gettext("Created (revision {revision}).").format(
            revision=created.document["revision"]
        )
        return Redirect(f"/console/{spec.name}/{created.document['id']}?" +
                        urlencode({"done": done}), status_code=303)  # fmt: skip
