"""The console's actions that end or undo an entry's state: retire (set `valid_to`),
revert (make an earlier version current again) and delete. Each is previewed first, as a
save is (`previews`): what changes, in the form's words, and what it causes (places left
uncovered, a routing party left unused, named persons' details); nothing is written until
the person confirms that exact preview, and a message then says what happened.
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect

from cdb_service.console import form_reading, i18n, previews, refusals
from cdb_service.console.entry_views import controls_of, items_of_form
from cdb_service.console.i18n import gettext
from cdb_service.console.pages import HANDLERS, context_of, current_user, kind_of, label_of
from cdb_service.console.web import User, checked_form, page, title_of, who
from cdb_service.kernel.problems import Problem, stale
from cdb_service.lookup.follower import IndexFollower
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.registry.store import edits
from cdb_service.registry.store.reads import EntryReads
from cdb_service.registry.store.writes import EntryWrites
from cdb_service.security import policy


async def writable(user: User, reads: EntryReads, kind_name: str, entry_id: uuid.UUID
                    ) -> tuple[KindSpec, dict[str, Any]]:  # fmt: skip
    """The kind and current document of an entry this user may change (403 otherwise)."""
    spec = kind_of(kind_name)
    current = await edits.current(reads, spec, entry_id)
    policy.require_write(user.principal, current["owner"])
    return spec, current


class Change(NamedTuple):
    """A posted change of one entry: who, the form (its CSRF token checked), the entry this
    user may change, and the version the form was made from."""

    user: User
    form: Any
    spec: KindSpec
    current: dict[str, Any]
    expected: int


async def change_of(request: Request[Any, Any, Any], reads: EntryReads, kind_name: str,
                    entry_id: uuid.UUID) -> Change:  # fmt: skip
    """What every changing form (edit, retire, revert, delete) reads first."""
    user = await current_user(request)
    form = await checked_form(request, user)
    spec, current = await writable(user, reads, kind_name, entry_id)
    return Change(user, form, spec, current, form_reading.version_number(form, "expected"))


def _back(spec: KindSpec, entry_id: Any, done: str) -> Redirect:
    return Redirect(f"/console/{spec.name}/{entry_id}?" + urlencode({"done": done}),
                    status_code=303)  # fmt: skip


def _shown(spec: KindSpec, document: dict[str, Any]) -> dict[str, Any]:
    """A document as a preview compares it: no bookkeeping, no named person (a preview
    says that one changes, not to what: reading it is a consultation of its own)."""
    kept = {k: v for k, v in document.items() if k not in edits.BOOKKEEPING}
    return policy.redact(kept, spec.private_fields)


class ConsoleEndings(Controller):
    path = "/console"
    include_in_schema = False
    exception_handlers = HANDLERS
    before_request = staticmethod(i18n.speak)  # the language the page is answered in

    @get("/{kind_name:str}/{entry_id:uuid}/delete")
    async def delete_form(self, request: Request[Any, Any, Any], kind_name: str,
                          entry_id: uuid.UUID, reads: NamedDependency[EntryReads],
                          lookup: NamedDependency[IndexFollower]) -> Response[str]:  # fmt: skip
        user = await current_user(request)
        spec, current = await writable(user, reads, kind_name, entry_id)
        context = await previews.delete_context(user, lookup.index, reads, spec, current)
        return page("delete.html", context)

    @post("/{kind_name:str}/{entry_id:uuid}/retire", status_code=200)
    async def retire(self, request: Request[Any, Any, Any], kind_name: str,
                     entry_id: uuid.UUID, reads: NamedDependency[EntryReads],
                     writes: NamedDependency[EntryWrites],
                     lookup: NamedDependency[IndexFollower]) -> Response[Any]:  # fmt: skip
        """A last day of validity: previewed with what it causes from the day after."""
        user, form, spec, current, expected = await change_of(request, reads, kind_name, entry_id)
        if expected != current["version"]:
            raise stale(expected, int(current["version"]))
        day = str(form.get("valid_to") or "").strip()[:10]
        context = await previews.delete_context(user, lookup.index, reads, spec, current)
        context["typed_valid_to"] = day  # the form shows the day typed, not the stored one
        try:
            data = edits.patched(spec, current, {"valid_to": day or None}, user.principal)
            items = await items_of_form(request)
            if not previews.confirmed(user.csrf, items):
                await writes.update(spec, entry_id, data, who(request, user), expected,
                                    dry_run=True)  # fmt: skip
                after = form_reading.as_document(data, current)
                controls = await controls_of(reads, spec, current["owner"], None)
                rows = previews.changes(controls, {"valid_to": current.get("valid_to")},
                                        {"valid_to": after.get("valid_to")},
                                        current["owner"])  # fmt: skip
                effects = await previews.consequences(
                    lookup.index, reads, spec, current["owner"], current, after, rows
                )
                context["preview"] = previews.preview_of(user.csrf, items, rows, effects)
                return page("delete.html", context)
            written = await writes.update(spec, entry_id, data, who(request, user), expected)
        except Problem as problem:
            if problem.status not in (409, 412, 422):
                raise
            # The form has one field: every refusal is said beside it, in a sentence.
            valid_until = gettext("Valid until")
            context["refused"] = [f"{valid_until}: {gettext(e.msg)}" for e in problem.errors] or [
                refusals.said(problem.detail or problem.title)
            ]
            return page("delete.html", context, status_code=problem.status)
        label = label_of(spec, current)
        if day:
            done = gettext("{label} is retired: valid until {day} (version {version}).")
        else:
            done = gettext("{label} is valid until further notice again (version {version}).")
        done = done.format(label=label, day=day, version=written["version"])
        return _back(spec, entry_id, done)

    @post("/{kind_name:str}/{entry_id:uuid}/revert", status_code=200)
    async def revert(self, request: Request[Any, Any, Any], kind_name: str,
                     entry_id: uuid.UUID, reads: NamedDependency[EntryReads],
                     writes: NamedDependency[EntryWrites],
                     lookup: NamedDependency[IndexFollower]) -> Response[Any]:  # fmt: skip
        """An earlier version made current again, after its preview."""
        user, form, spec, current, expected = await change_of(request, reads, kind_name, entry_id)
        version = form_reading.version_number(form, "version")
        if expected != current["version"]:
            raise stale(expected, int(current["version"]))
        data = await edits.reverted(reads, spec, entry_id, version, None)
        policy.require_write(user.principal, data.owner, current["owner"])
        items = await items_of_form(request)
        label = label_of(spec, current)
        if not previews.confirmed(user.csrf, items):
            await writes.update(spec, entry_id, data, who(request, user), expected,
                                dry_run=True)  # fmt: skip
            after = form_reading.as_document(data, current)
            owner = current["owner"]
            controls = await controls_of(reads, spec, owner, None)
            rows = previews.changes(controls, _shown(spec, current), _shown(spec, after), owner)
            effects = await previews.consequences(lookup.index, reads, spec, owner, current,
                                                  after, rows)  # fmt: skip
            shown = previews.preview_of(user.csrf, items, rows, effects)
            context = context_of(user, owner, spec=spec, document=current, label=label,
                                 version=version, title=title_of(spec.name),
                                 preview=shown)  # fmt: skip
            return page("revert.html", context)
        written = await writes.update(spec, entry_id, data, who(request, user), expected)
        done = gettext("Version {version} of {label} is current again, as version {new}.")
        return _back(spec, entry_id, done.format(version=version, label=label,
                                                 new=written["version"]))  # fmt: skip

    @post("/{kind_name:str}/{entry_id:uuid}/delete", status_code=303)
    async def delete(self, request: Request[Any, Any, Any], kind_name: str,
                     entry_id: uuid.UUID, reads: NamedDependency[EntryReads],
                     writes: NamedDependency[EntryWrites],
                     lookup: NamedDependency[IndexFollower]) -> Response[Any]:  # fmt: skip
        user, form, spec, current, expected = await change_of(request, reads, kind_name, entry_id)
        label = label_of(spec, current)
        if form.get("confirm") != "delete":
            # A delete is asked for once more, with what it causes, before it is done; one
            # the API would refuse (referrers) is sent on, for its refusal to be shown.
            context = await previews.delete_context(user, lookup.index, reads, spec, current)
            if context["may_delete"]:
                context["confirming"] = True
                return page("delete.html", context, status_code=200)
        written = await writes.delete(spec, entry_id, who(request, user), expected)
        done = gettext("{label} was deleted permanently (revision {revision}).").format(
            label=label, revision=written.get("revision")
        )
        return Redirect(f"/console/{spec.name}?" + urlencode({"done": done}), status_code=303)
