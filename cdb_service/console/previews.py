"""Preview before harm: what a save, a delete or an upload will change, said in the
clerk's words (the form's labels, codes and names rather than paths and UUIDs), and what
it will cause (ties with another authority, places no longer covered, routing parties
left serving nobody, named persons' details), before the person confirms.

The changes are the API's own: the field diff of `kernel.json_documents.field_changes`
(as an entry's history shows it) for one entry, and the import's dry run (`Batches`) for
a file. A confirmation carries the same form again plus a token bound to the session and
to exactly what was previewed, so that what is saved is what was shown.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from cdb_service.console import coverage, widgets
from cdb_service.console.i18n import N_, current, gettext, language_names
from cdb_service.console.pages import context_of, label_of
from cdb_service.console.web import User, title_of
from cdb_service.kernel.json_documents import field_changes
from cdb_service.kernel.problems import Problem
from cdb_service.lookup.index import LookupIndex
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.registry.store import edits
from cdb_service.registry.store.reads import EntryReads
from cdb_service.registry.store.writes import delete_block, referrers_of

# Fields a form posts that are no part of what is saved.
NOT_PREVIEWED = frozenset({"csrf", "confirm", "action"})
# How many criteria of one authority a retirement's coverage check reads (bounded).
COVER_SCAN = 100
# How many entries absent from an uploaded file are named (the rest are counted).
ABSENT_NAMED = 200


def confirm_token(csrf: str, items: Iterable[tuple[str, str]]) -> str:
    """A token for exactly these form items in this session: a confirmation whose form
    differs from the one previewed (or comes from another session) is previewed again."""
    # By name: a form's fields come in no fixed order (a stable sort keeps the order of
    # a repeated name's values, which pairs a language with its name).
    kept = sorted(((k, v.replace("\r\n", "\n")) for k, v in items if k not in NOT_PREVIEWED),
                  key=lambda item: item[0])  # fmt: skip
    text = json.dumps(kept, ensure_ascii=False, separators=(",", ":"))
    return hmac.new(csrf.encode(), text.encode(), hashlib.sha256).hexdigest()


def confirmed(csrf: str, items: Sequence[tuple[str, str]]) -> bool:
    sent = next((v for k, v in items if k == "confirm"), "")
    return bool(sent) and hmac.compare_digest(sent.encode(), confirm_token(csrf, items).encode())


def carried(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The form's items to send again as hidden fields with the confirmation."""
    return [(k, v) for k, v in items if k not in NOT_PREVIEWED]


def empty() -> str:
    """An empty value, as a preview says it."""
    return gettext("(empty)")


# --- what changes, in the form's words -----------------------------------------------


def _controls(controls: Sequence[widgets.Widget]) -> dict[str, widgets.Widget]:
    """Each control by its document path ("address.street"), rows by their list's path."""
    out: dict[str, widgets.Widget] = {}
    for top in controls:
        out[top.path] = top
        if top.control == "group":
            for child in top.children:
                out[child.path] = child
    return out


def _label(path: str, by_path: dict[str, widgets.Widget]) -> str:
    if path in by_path:
        parent = by_path.get(path.rsplit(".", 1)[0]) if "." in path else None
        own = by_path[path].label
        return f"{parent.label}: {own}" if parent else own
    head, _, member = path.rpartition(".")
    top = by_path.get(head)
    if top is not None and top.control == "names":
        return f"{top.label} ({_language(member)})"
    return f"{_label(head, by_path)}: {member}" if head else path


def _language(code: str) -> str:
    return dict(language_names(current().language)).get(code, code)


def _spoken(path: str, value: Any, by_path: dict[str, widgets.Widget], owner: str) -> str:
    """A value as the form shows it: a code list's or a reference's entry by its name,
    places one after the other, a contact's fields by their labels."""
    if value in (None, "", [], {}):
        return empty()
    w = by_path.get(path)
    if w is not None and w.control == "geo" and isinstance(value, list):
        return ", ".join(widgets._geo_line(g, owner) for g in value if isinstance(g, dict))
    if w is not None and w.control == "rows" and isinstance(value, list):
        labels = {c.path.rsplit(".", 1)[-1]: c.label for c in w.children}
        return "; ".join(
            ", ".join(f"{labels.get(k, k)}: {v}" for k, v in row.items() if v not in (None, ""))
            if isinstance(row, dict) else str(row) for row in value
        )  # fmt: skip
    if w is not None and w.control == "names" and isinstance(value, dict):
        return "; ".join(f"{t} ({_language(k)})" for k, t in value.items())
    options = dict(w.options) if w is not None else {}
    if isinstance(value, list):
        return ", ".join(str(options.get(str(v), v)) for v in value)
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items() if v not in (None, ""))
    return str(options.get(str(value), value))


def changes(controls: Sequence[widgets.Widget], before: dict[str, Any],
            after: dict[str, Any], owner: str) -> list[tuple[str, str, str]]:  # fmt: skip
    """(label, before, after) for each changed field; an object member by member."""
    by_path = _controls(controls)
    rows: list[tuple[str, str, str]] = []

    def walk(path: str, old: Any, new: Any) -> None:
        control = by_path.get(path)
        opened = control is None or control.control in ("group", "names")
        if isinstance(old, dict | None) and isinstance(new, dict | None) and opened \
                and isinstance(old or new, dict):  # fmt: skip
            old, new = old or {}, new or {}
            for key in [*old, *(k for k in new if k not in old)]:
                if old.get(key) != new.get(key):
                    walk(f"{path}.{key}", old.get(key), new.get(key))
            return
        spoken = _spoken(path, old, by_path, owner), _spoken(path, new, by_path, owner)
        if spoken[0] != spoken[1]:  # an empty list is no more a change than no list
            rows.append((_label(path, by_path), *spoken))

    for change in field_changes(before, after):
        walk(str(change["field"]), change["from"], change["to"])
    return rows


# --- what it causes --------------------------------------------------------------------


def _ends(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dt.date | None:
    """The first day an entry no longer counts, where this change retires it (sets or
    brings forward its `valid_to`)."""
    if before is None or after is None or not after.get("valid_to"):
        return None
    new, old = str(after["valid_to"])[:10], str(before.get("valid_to") or "")[:10]
    if old and old <= new:
        return None
    try:
        return max(dt.date.fromisoformat(new) + dt.timedelta(days=1), dt.date.today())
    except ValueError:
        return None


# Said (in the request's language) where the look-up index is not built yet.
NOT_READY = N_("Ties with other authorities and places left uncovered could not be checked: "
               "the look-up index is still being built. Check again in a minute.")  # fmt: skip


async def _unused_party(reads: EntryReads, spec: KindSpec, before: dict[str, Any] | None,
                        after: dict[str, Any] | None) -> list[str]:  # fmt: skip
    """A routing party that no entry would name any more."""
    party_id = (before or {}).get("routing_party_id")
    if not party_id or (after is not None and after.get("routing_party_id") == party_id):
        return []
    try:
        party = await edits.current(reads, KINDS["routing-parties"], uuid.UUID(str(party_id)))
    except (Problem, ValueError):
        return []
    async with reads.sessions() as session:
        found = await referrers_of(session, KINDS["routing-parties"], uuid.UUID(str(party_id)))
    others = [
        row
        for kind, row in found
        if not (kind is spec and str(row.id) == str(before and before.get("id")))
    ]
    if others:
        return []
    return [
        gettext(
            "The routing party {name} serves no entry any more: nothing is sent "
            "through it until another entry chooses it."
        ).format(name=party.get("name"))
    ]


def _persons(spec: KindSpec, rows: Sequence[tuple[str, str, str]],
             before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:  # fmt: skip
    out = []
    for name in spec.private_fields:
        old, new = (before or {}).get(name), (after or {}).get(name)
        if old != new:
            if not new:
                said = gettext("A named person's details are removed (personal data, kept "
                               "out of bulk extracts).")  # fmt: skip
            elif not old:
                said = gettext("A named person's details are recorded (personal data, kept "
                               "out of bulk extracts).")  # fmt: skip
            else:
                said = gettext("A named person's details are changed (personal data, kept "
                               "out of bulk extracts).")  # fmt: skip
            out.append(said)
    return out


async def consequences(index: LookupIndex | None, reads: EntryReads, spec: KindSpec,
                       owner: str, before: dict[str, Any] | None, after: dict[str, Any] | None,
                       rows: Sequence[tuple[str, str, str]] = ()) -> list[str]:  # fmt: skip
    """What a change of one entry causes beyond itself, one sentence each. A retirement
    (`valid_to` set or brought forward) is judged from the first day it takes effect."""
    out: list[str] = []
    ends = _ends(before, after)
    if spec.name in ("jurisdiction-criteria", "authorities") and index is None:
        out.append(gettext(NOT_READY))
    elif spec.name == "jurisdiction-criteria":
        assert index is not None
        if after is not None and ends is None:
            out += coverage.tie_sentences(index, owner, before, after)
        out += coverage.uncovered_sentences(index, owner, before, None if ends else after, ends)
    elif spec.name == "authorities" and before is not None and (ends or after is None):
        assert index is not None
        naming = {"authority_id": uuid.UUID(str(before["id"]))}
        criteria = await reads.collection(KINDS["jurisdiction-criteria"], filters=naming,
                                          limit=COVER_SCAN)  # fmt: skip
        # One budget of places for all its criteria (`coverage.PLACES_CHECKED`).
        share = max(20, coverage.PLACES_CHECKED // max(1, len(criteria.items)))
        for criterion in criteria.items:
            out += coverage.uncovered_sentences(index, owner, criterion, None, ends,
                                                gone_authority=before["id"], cap=share)  # fmt: skip
    if any(r.id_field == "routing_party_id" for r in spec.references):
        out += await _unused_party(reads, spec, before, after)
    out += _persons(spec, rows, before, after)
    return out


# --- an upload's dry run -----------------------------------------------------------------


async def absent_from_file(reads: EntryReads, owner: str, diff: Iterable[Any]
                           ) -> tuple[list[tuple[str, str]], int]:  # fmt: skip
    """The owner's entries of the file's kinds that the file does not name, as
    (kind title, code and name), the first ABSENT_NAMED of them, and how many in all."""
    rows = list(diff)
    named = {(r.kind, str(r.id)) for r in rows}
    kinds = [KINDS[n] for n in dict.fromkeys(r.kind for r in rows)]
    out: list[tuple[str, str]] = []
    total = 0
    for name, document in await reads.documents(kinds, owner):
        if (name, str(document["id"])) in named:
            continue
        total += 1
        if len(out) < ABSENT_NAMED:
            out.append((name, label_of(KINDS[name], document)))
    return out, total


# How many of a file's criteria are checked for ties and places left uncovered (bounded).
BATCH_CRITERIA_CHECKED = 200


async def batch_consequences(index: LookupIndex | None, reads: EntryReads, owner: str,
                             items: Iterable[Any], diff: Sequence[Any]) -> list[str]:  # fmt: skip
    """What a file's criteria cause: ties they create and places they stop covering,
    each judged against the registry as it is now (as a single save's preview is), for
    the first BATCH_CRITERIA_CHECKED criteria the file creates, changes or deletes."""
    kind = KINDS["jurisdiction-criteria"]
    if index is None:
        return [gettext(NOT_READY)]
    rows = {(r.kind, str(r.key)): r for r in diff}
    out: list[str] = []
    checked = 0
    for item in items:
        if item.kind is not kind or checked >= BATCH_CRITERIA_CHECKED:
            continue
        row = rows.get((kind.name, str(item.key if item.key is not None else item.entry_id)))
        if row is None or row.change.value not in ("created", "updated"):
            continue
        checked += 1
        after = item.document().model_dump(mode="json")
        if not after.get("authority_id") and after.get("authority_code"):
            named = {"code": after["authority_code"]}
            found = await reads.collection(KINDS["authorities"], filters=named, limit=1)
            if not found.items:
                continue  # an authority the file creates: no criterion of it exists yet
            after["authority_id"] = found.items[0]["id"]
        before = await reads.get(kind, row.id) if row.change.value == "updated" else None
        after["id"] = str(row.id)
        where = gettext("Criterion {label}: ").format(label=label_of(kind, before or after))
        out += [where + e for e in coverage.tie_sentences(index, owner, before, after)]
        out += [where + e for e in coverage.uncovered_sentences(index, owner, before, after)]
    for row in diff:
        if (
            row.kind == kind.name
            and row.change.value == "deleted"
            and checked < BATCH_CRITERIA_CHECKED
        ):
            checked += 1
            before = await reads.get(kind, row.id)
            if before is not None:
                gone = coverage.uncovered_sentences(index, owner, before, None)
                where = gettext("Criterion {label} (deleted): ").format(
                    label=label_of(kind, before)
                )
                out += [where + e for e in gone]
    return out


def _named(kind: KindSpec, row: Any) -> str:
    """A referrer by its code, or (a criterion without a reference) by what it is for:
    never by its UUID."""
    key = getattr(row, kind.natural_key, None)
    if key:
        return str(key)
    if getattr(row, "instrument", None):
        return f"{row.instrument}, {row.competence}"
    return gettext("an entry without a code")


async def delete_context(user: User, index: LookupIndex | None, reads: EntryReads,
                         spec: KindSpec, current: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """What the retire-or-delete page shows: who refers to the entry, whether the API
    would delete it (`delete_block`, the rule it applies), and what a delete causes."""
    async with reads.sessions() as session:
        block = await delete_block(session, spec, uuid.UUID(str(current["id"])))
    referrers = [(other.name, row.id, _named(other, row)) for other, row in block.referrers]
    effects = await consequences(index, reads, spec, current["owner"], current, None)
    return context_of(user, current["owner"], spec=spec, document=current,
                      label=label_of(spec, current), referrers=referrers, never=block.never,
                      may_delete=block.never is None and not block.referrers,
                      effects=effects, title=title_of(spec.name))  # fmt: skip


def preview_of(csrf: str, items: list[tuple[str, str]], rows: list[tuple[str, str, str]],
             effects: list[str]) -> dict[str, Any]:  # fmt: skip
    """What a preview page shows, and the form (with its token) that confirms it."""
    return {"rows": rows, "effects": effects, "items": carried(items),
            "token": confirm_token(csrf, items)}  # fmt: skip
