"""What a rollout is about: the changes an access point must import (issue 28 item 4).

Two kinds of change, one shape (`Change`), so that the rollout status (`rollouts.py`)
treats both alike (the package digest of each access point as of `effective_from`):

* **certificate**: an edge of a routing-party certificate's window (`packages.held`):
  the certificate is *accepted* (it enters the truststores), *used* (it takes the
  party's alias) or *no longer accepted*. Edges at one moment of one certificate are one
  change (a certificate with no windows is accepted and used at its notBefore).
* **routing**: a change of what a party's PMode entry says: the party *added* to the
  network or *retired* from it, its Domibus party `name`, `endpoint`, party
  `identifiers`, `roles` or `services`, and certificates accepted or used from the moment
  of an edit on (one added with a window already open). Found in the routing parties'
  entry versions, so record time and legal time are both honoured: an edit takes effect
  when it is committed (its revision's `recorded_at`); a `valid_from` / `valid_to` takes
  effect at the start of its (Brussels) day, as a package does (`packages.day_start`),
  provided the version that says so is still the one in force then.

Who must act on a change are the access points whose default package carries the
party (`packages.exchanges_with`), before or after the change: a party that stops
offering a service must be dropped by those that offered it. A retiring party has no
package of its own to import.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from cdb_service.db.revisions import EntryVersion, Operation
from cdb_service.distribution.packages import FOREVER, Held, day_start, exchanges_with, held, used
from cdb_service.distribution.routing_table import RoutingTable
from cdb_service.kernel.calendar import local_date
from cdb_service.registry.kinds.routing_parties.models import RoutingParty

MAX_CHANGES = 2000  # changes considered at all (pending and recent), soonest first
MAX_ENTRIES = 1000  # routing parties whose history is read for one list
AHEAD = dt.timedelta(days=800)  # past a certificate's life: accept_until, notAfter
NAMESPACE = uuid.UUID("5a0b7c38-7d0e-4f0b-9a38-cdb28c0a11ed")
EDGES = (("accepted", "accept_from"), ("used", "use_from"), ("no-longer-accepted", "accept_until"))
KIND = "routing-parties"
# What of a party's entry its PMode says, in the order a description names it.
FIELDS = ("name", "endpoint_url", "identifiers", "roles", "services")
WHAT = {"name": "name", "endpoint_url": "endpoint", "identifiers": "identifiers",
        "roles": "roles", "services": "services"}  # fmt: skip


@dataclass(frozen=True)
class Change:
    """One change an access point must import: what happens to a party, and when."""

    kind: str  # certificate, routing
    party: str
    owner: str
    what: tuple[str, ...]  # e.g. accepted, used; added, retired, endpoint, services
    effective_from: dt.datetime
    description: str
    # The party as before and/or after the change: whose packages carry it.
    documents: tuple[dict[str, Any], ...] = field(compare=False, repr=False)
    certificate: Held | None = None
    revision: int | None = None  # routing: the revision that made it (None: a date)
    leaves: bool = False  # the party leaves the network: it has no package to import

    @property
    def id(self) -> uuid.UUID:
        if self.certificate is not None:
            key = f"{self.party}/{self.certificate.use}/{self.certificate.sha256}/"
        else:  # a party's own name is part of the key: a rename is a change of its own
            key = f"routing/{self.party}/{','.join(self.what)}/{self.revision}/"
        return uuid.uuid5(NAMESPACE, key + self.effective_from.isoformat())

    @property
    def carried_on(self) -> dt.date:
        """The day whose access points must act: a leaving party's are those of the day
        it was still there (one joining the same moment never carried it)."""
        before = dt.timedelta(microseconds=1) if self.leaves else dt.timedelta(0)
        return local_date(self.effective_from - before)

    @property
    def key(self) -> tuple[str, str]:
        return (self.effective_from.isoformat(), str(self.id))


def in_window(moment: dt.datetime, now: dt.datetime, recent: dt.timedelta) -> bool:
    return moment != FOREVER and now - recent <= moment <= now + AHEAD


def certificate_changes(table: RoutingTable, now: dt.datetime,
                        recent: dt.timedelta) -> list[Change]:  # fmt: skip
    """Every edge of a certificate window from `now - recent` on, of the parties valid
    today."""
    found: list[Change] = []
    for party in table.parties:
        for c in held(party):
            at: dict[dt.datetime, list[str]] = {}
            for what, edge in EDGES:
                moment = getattr(c, edge)
                if in_window(moment, now, recent):
                    at.setdefault(moment, []).append(what)
            for moment, what_list in at.items():
                text = (f"{c.use} certificate {c.sha256[:16]}… ({c.subject}) "
                        + " and ".join(what_list).replace("-", " "))  # fmt: skip
                found.append(Change("certificate", party["name"], party["owner"],
                                    tuple(what_list), moment, text, (party,),
                                    certificate=c))  # fmt: skip
    return found


def carriers(table: RoutingTable, change: Change) -> list[dict[str, Any]]:
    """The access points (valid on `carried_on`) whose default package carries the
    party before or after the change; a certificate's change concerns a party valid then."""
    if change.kind == "certificate" and change.party not in table.party_names():
        return []
    return [
        q for q in table.parties
        if any(exchanges_with(q, doc) for doc in change.documents)
        and not (change.leaves and q["name"] == change.party)
    ]  # fmt: skip


async def routing_changes(session: AsyncSession, now: dt.datetime,
                          recent: dt.timedelta) -> list[Change]:  # fmt: skip
    """Every change of a routing party's PMode entry from `now - recent` on (at most
    MAX_ENTRIES parties' histories are read: those edited since, and those whose
    validity begins or ends since)."""
    since = now - recent
    first_day = local_date(since) - dt.timedelta(days=1)
    edited = select(EntryVersion.entry_id).where(
        EntryVersion.kind == KIND, EntryVersion.recorded_at >= since)  # fmt: skip
    dated = select(RoutingParty.id).where(
        or_(RoutingParty.valid_from >= first_day, RoutingParty.valid_to >= first_day)
    )
    ids = list(await session.scalars(select(union(edited, dated).subquery().c[0])
                                     .limit(MAX_ENTRIES)))  # fmt: skip
    if not ids:
        return []
    versions = await session.scalars(
        select(EntryVersion).where(EntryVersion.kind == KIND, EntryVersion.entry_id.in_(ids))
        .order_by(EntryVersion.entry_id, EntryVersion.version))  # fmt: skip
    by_entry: dict[uuid.UUID, list[EntryVersion]] = {}
    for v in versions:
        by_entry.setdefault(v.entry_id, []).append(v)
    found: list[Change] = []
    for history in by_entry.values():
        found.extend(
            c for c in _of_history(history, since) if in_window(c.effective_from, now, recent)
        )
    return found


def _present(version: EntryVersion | None, moment: dt.datetime) -> bool:
    if version is None or version.operation == Operation.DELETE.value:
        return False
    day = local_date(moment)
    return ((version.valid_from is None or version.valid_from <= day)
            and (version.valid_to is None or version.valid_to >= day))  # fmt: skip


def _of_history(history: Sequence[EntryVersion], since: dt.datetime) -> list[Change]:
    out: list[Change] = []
    for i, version in enumerate(history):
        before = history[i - 1] if i else None
        after = history[i + 1] if i + 1 < len(history) else None
        at = version.recorded_at
        made = _edit(before, version, at, since)
        if made is not None:
            out.append(made)
        if version.operation == Operation.DELETE.value:
            continue
        # The dates of this version take effect while it is the one in force.
        until = after.recorded_at if after is not None else FOREVER
        doc = version.document
        if version.valid_from is not None and at < day_start(version.valid_from) < until:
            out.append(_presence(doc, True, day_start(version.valid_from), None))
        if version.valid_to is not None:
            ends = day_start(version.valid_to + dt.timedelta(days=1))
            if at < ends < until:
                out.append(_presence(doc, False, ends, None))
    return out


def _presence(doc: dict[str, Any], joins: bool, at: dt.datetime, revision: int | None
              ) -> Change:  # fmt: skip
    if joins:
        text = f"{doc['name']} joins the network (endpoint {doc.get('endpoint_url')})"
    else:
        text = f"{doc['name']} leaves the network: every PMode drops it"
    return Change("routing", doc["name"], doc["owner"], ("added",) if joins else ("retired",),
                  at, text, (doc,), revision=revision, leaves=not joins)  # fmt: skip


def _edit(before: EntryVersion | None, version: EntryVersion, at: dt.datetime,
          since: dt.datetime) -> Change | None:  # fmt: skip
    """What the edit that wrote `version` changed at once, if anything a PMode says."""
    was, now_in = _present(before, at), _present(version, at)
    if was != now_in:
        doc = version.document if now_in or before is None else before.document
        return _presence(doc, now_in, at, version.revision)
    if not (was and before is not None):
        return None
    old, new = before.document, version.document
    what, said = [], []
    for name in FIELDS:
        a, b = _view(old, name), _view(new, name)
        if a != b:
            what.append(WHAT[name])
            said.append(_said(name, a, b))
    # A certificate the edit brings whose window opens within the list's span is listed
    # as a certificate change already (accepted, used): not twice.
    listed = {c.sha256 for c in held(_certified(new))
              if since <= c.accept_from or since <= c.use_from}  # fmt: skip
    trust = _trust(old, at, listed), _trust(new, at, listed)
    if trust[0] != trust[1]:
        what.append("certificates")
        said.append(_said("certificates", trust[0], trust[1]))
    if not what:
        return None
    return Change("routing", new["name"], new["owner"], tuple(what), at,
                  f"{new['name']}: " + "; ".join(said), (old, new),
                  revision=version.revision)  # fmt: skip


def _view(doc: dict[str, Any], name: str) -> Any:
    value = doc.get(name)
    if name == "identifiers":
        return sorted(f"{i.get('party_id')} ({i.get('party_id_type') or 'no type'})"
                      for i in value or [])  # fmt: skip
    if name == "roles":
        return sorted(value or [])
    if name == "services":
        return sorted(f"{s.get('service')}" + (f" [{s['service_type']}]" if s.get("service_type")
                      else "") + f" ({', '.join(sorted(s.get('actions') or []))})"
                      for s in value or [])  # fmt: skip
    return value


def _certified(doc: dict[str, Any]) -> dict[str, Any]:
    return {"name": doc["name"], "certificates": doc.get("certificates") or []}


def _trust(doc: dict[str, Any], at: dt.datetime, listed: set[str]) -> list[str]:
    """The certificates accepted at `at`, and those used: what the stores hold then."""
    mine = held(_certified(doc))
    in_use = {c.sha256 for c in used(mine, at).values()}
    return sorted(f"{c.use} {c.sha256[:16]}…" + (" (used)" if c.sha256 in in_use else "")
                  for c in mine if c.accepted(at) and c.sha256 not in listed)  # fmt: skip


def _said(name: str, old: Any, new: Any) -> str:
    label = WHAT.get(name, name)
    if isinstance(old, list):
        gone = [x for x in old if x not in new]
        came = [x for x in new if x not in old]
        parts = [f"+ {x}" for x in came] + [f"− {x}" for x in gone]
        return f"{label}: " + ", ".join(parts)
    return f"{label} {old} → {new}"
