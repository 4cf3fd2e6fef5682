"""What an entry's console pages show beyond its stored fields: its form's controls (with
the entries a reference may name, by code and name), whether a sender can reach an
authority and the criteria that make it competent, and a posted form's fields."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from litestar import Request
from litestar.datastructures import UploadFile

from cdb_service.console import coverage, widgets
from cdb_service.console.i18n import gettext
from cdb_service.console.pages import label_of
from cdb_service.kernel.problems import Problem
from cdb_service.lookup.index import Gazetteer, LookupIndex
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.fields import label_of as field_label
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.registry.store import edits
from cdb_service.registry.store.reads import EntryReads

SAMPLE = 5


async def routing_of(reads: EntryReads, index: LookupIndex | None, authority: dict[str, Any]
                     ) -> dict[str, Any]:  # fmt: skip
    """Whether a sender can reach an authority, and the criteria that make it competent."""
    party, why = None, ""
    if authority.get("routing_party_id"):
        try:
            party = await edits.current(reads, KINDS["routing-parties"],
                                        uuid.UUID(str(authority["routing_party_id"])))  # fmt: skip
        except Problem:
            why = gettext("its routing party no longer exists.")
    else:
        why = gettext("it has no routing party (choose one in Edit).")
    if party is not None:
        now = dt.datetime.now(dt.UTC)
        live = [
            c
            for c in party.get("certificates") or []
            if _instant(c.get("not_before")) <= now <= _instant(c.get("not_after"))
        ]
        if not party.get("endpoint_url"):
            why = gettext("its routing party {name} has no endpoint.").format(name=party["name"])
        elif not live:
            why = gettext("its routing party {name} has no certificate valid today.").format(
                name=party["name"]
            )
    criteria_kind = KINDS["jurisdiction-criteria"]
    naming = {"authority_id": uuid.UUID(str(authority["id"]))}
    listed = await reads.collection(criteria_kind, filters=naming, limit=100)
    owner = str(authority["owner"])
    criteria, places, at_least = [], set(), False
    for c in listed.items:
        # Places, not keys: a NUTS region counts each postal code the gazetteer puts in it.
        covers = coverage.covered(index.gazetteer if index else Gazetteer(), c.get("geo") or [],
                                  owner)  # fmt: skip
        at_least |= covers.at_least or covers.total > len(covers.places)
        places.update(covers.places)
        sample = [coverage.spoken(p, owner) for p in covers.places[:SAMPLE]]
        criteria.append({"id": c["id"], "instrument": c.get("instrument"),
                         "competence": c.get("competence"), "count": covers.total,
                         "sample": sample})  # fmt: skip
    if not criteria and not why:
        why = gettext("no jurisdiction criterion names it, so no look-up finds it.")
    return {"party": party, "routable": not why, "why": why, "criteria": criteria,
            "places": len(places), "at_least": at_least, "checked": index is not None,
            "ties": ties_of(index, authority, listed.items) if index else []}  # fmt: skip


def ties_of(index: LookupIndex, authority: dict[str, Any], criteria: list[dict[str, Any]]
            ) -> list[dict[str, Any]]:  # fmt: skip
    """Where another authority of the owner is competent for a place these criteria cover
    (`coverage.ties`: by place, through the gazetteer, not only by identical keys)."""
    owner = str(authority["owner"])
    found, _ = coverage.ties(index, authority["id"], owner, criteria)
    return [{"id": t.authority_id, "label": t.label, "instrument": t.instrument,
             "competence": t.competence, "same_rank": t.same_rank,
             "places": [coverage.spoken(p, owner) for p in t.places]} for t in found]  # fmt: skip


def _instant(value: Any) -> dt.datetime:
    """A stored time (ISO 8601 text or a datetime), in UTC; none is the distant past."""
    try:
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


async def choices_of(reads: EntryReads, spec: KindSpec, owner: str
                   ) -> dict[str, list[tuple[str, str]]]:  # fmt: skip
    """The entries a reference may name, by code and name: the owner's of each target kind."""
    out = {}
    for ref in spec.references:
        target = KINDS[ref.target]
        found = await reads.documents([target], owner)
        out[ref.target] = sorted(((str(d["id"]), label_of(target, d)) for _, d in found),
                                 key=lambda pair: pair[1].casefold())  # fmt: skip
    return out


async def controls_of(reads: EntryReads, spec: KindSpec, owner: str,
                    document: dict[str, Any] | None, defaults: bool = True
                    ) -> list[widgets.Widget]:  # fmt: skip
    """The kind's form for this owner, filled with `document` (None: to be read from a form)."""
    controls = widgets.blank(spec, owner, await choices_of(reads, spec, owner))
    if document is not None:
        widgets.fill(controls, document, owner, defaults)
        for ref in spec.references:
            # A reference to an entry of another owner (a shared routing party) is kept.
            control = next((w for w in controls if w.path == ref.id_field), None)
            if control and control.value and control.value not in dict(control.options):
                target = await edits.current(reads, KINDS[ref.target], uuid.UUID(control.value))
                control.options.append((control.value, label_of(KINDS[ref.target], target)))
    return controls


# A certificate is a few kilobytes; a file much larger is no certificate.
MAX_UPLOADED_PEM = 64 * 1024


async def filter_controls(reads: EntryReads, spec: KindSpec, owner: str | None
                          ) -> list[tuple[str, str, list[tuple[str, str]]]]:  # fmt: skip
    """A list's filters as (name, label, options): a pick list where the field is a code
    list or a reference (the owner's entries, by code and name), else typed text. A
    reference is offered only once an owner is chosen (every owner's entries are too many)."""
    choices = await choices_of(reads, spec, owner) if owner else {}
    controls = {w.path: w for w in widgets.blank(spec, owner or "", choices)}
    out: list[tuple[str, str, list[tuple[str, str]]]] = []
    for f in spec.filters:
        w = controls.get(f.name)
        if w is None:
            out.append((f.name, gettext(field_label(f.name)), []))
        elif w.control == "select":
            options = [o for o in w.options if o[0]]
            if options:
                out.append((f.name, w.label, options))
        else:
            out.append((f.name, w.label, []))
    return out


async def items_of_form(request: Request[Any, Any, Any]) -> list[tuple[str, str]]:
    """The posted form's fields in order, repeated names kept; an uploaded certificate
    file as its text."""
    out = []
    for key, value in (await request.form()).multi_items():
        if isinstance(value, UploadFile):
            raw = await value.read(MAX_UPLOADED_PEM + 1)
            text = raw.decode("utf-8", "replace") if len(raw) <= MAX_UPLOADED_PEM else "(too large)"
            out.append((key, text.strip()))
        else:
            out.append((key, str(value)))
    return out
