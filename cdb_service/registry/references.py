"""What a write needs to know about other entries, loaded in a few queries per batch.

For every document of a write (one entry or a national batch of thousands) the
service needs: the current entry with the same natural key, and the entries its
references name (by id or by natural key). `EntryIndex.load` fetches all of that
in bulk up front, and learns the entries the batch itself creates as it goes, so
applying a batch costs no query per line.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cdb_service.kernel.problems import FieldError
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.schemas import EntryIn
from cdb_service.registry.spec import KindSpec, Reference

CHUNK = 500
PARTIES = "routing-parties"


@dataclass(frozen=True)
class Target:
    id: uuid.UUID
    owner: str
    parent_id: uuid.UUID | None = None
    # Owners whose entries may refer to it: its own, and those a routing party shares with.
    shared_with: frozenset[str] = frozenset()

    def serves(self, owner: str) -> bool:
        return owner == self.owner or owner in self.shared_with


@dataclass(frozen=True)
class Holder:
    """A routing party holding a certificate (see `EntryIndex.lane_errors`)."""

    owner: str
    name: str
    id: uuid.UUID | None


def _key(kind: KindSpec, owner: str, value: Any) -> Any:
    return value if kind.natural_key_global else (owner, value)


@dataclass
class EntryIndex:
    # kind -> natural key -> current row (for the entries the write names)
    rows: dict[str, dict[Any, Any]] = field(default_factory=lambda: defaultdict(dict))
    # kind -> natural key value -> target facts (for references by natural key)
    by_key: dict[str, dict[Any, Target]] = field(default_factory=lambda: defaultdict(dict))
    # kind -> id -> target facts (for references by id)
    by_id: dict[str, dict[uuid.UUID, Target]] = field(default_factory=lambda: defaultdict(dict))
    # certificate sha256 -> the routing parties holding it (loaded when a write names any)
    holders: dict[str, list[Holder]] = field(default_factory=lambda: defaultdict(list))
    # routing party id -> the entries of other owners that name it (for shared_with)
    foreign_referrers: dict[uuid.UUID, list[tuple[str, str, str]]] = field(default_factory=dict)

    @classmethod
    async def load(
        cls, session: AsyncSession, documents: Sequence[tuple[KindSpec, EntryIn]]
    ) -> EntryIndex:
        index = cls()
        named: dict[str, set[Any]] = defaultdict(set)
        ref_keys: dict[str, set[Any]] = defaultdict(set)
        ref_ids: dict[str, set[uuid.UUID]] = defaultdict(set)
        for kind, document in documents:
            value = getattr(document, kind.natural_key)
            if value is not None:
                named[kind.name].add(_key(kind, document.owner, value))
            for ref in kind.references:
                if (key := getattr(document, ref.key_field)) is not None:
                    ref_keys[ref.target].add(key)
                if (ident := getattr(document, ref.id_field)) is not None:
                    ref_ids[ref.target].add(ident)
        for name, keys in named.items():
            for row in await _rows_by_natural_key(session, KINDS[name], keys):
                index.remember(KINDS[name], row)
        for name, keys in ref_keys.items():
            target = KINDS[name]
            for row in await _rows_by_natural_key(session, target, keys, global_only=True):
                index.remember(target, row)
        for name, ids in ref_ids.items():
            await index._load_ids(session, KINDS[name], ids)
        await index._load_ancestors(session)
        parties = [d for k, d in documents if k.name == PARTIES]
        if parties:
            await index._load_party_lanes(session, parties)
        return index

    async def _load_party_lanes(self, session: AsyncSession, parties: Sequence[EntryIn]) -> None:
        """Who holds the certificates the write names, and which other owners' entries
        name the parties it changes: the routing-party table is small (one row per
        access point), so it is read whole."""
        wanted = {c.sha256 for p in parties for c in getattr(p, "certificates", ())}
        model: Any = KINDS[PARTIES].model
        rows = (await session.execute(select(model.id, model.owner, model.name,
                                             model.certificates))).all()  # fmt: skip
        for entry_id, owner, name, certificates in rows:
            for certificate in certificates or ():
                if certificate.get("sha256") in wanted:
                    self.holders[certificate["sha256"]].append(Holder(owner, name, entry_id))
        changed = {
            row.id: row.owner
            for p in parties
            if (row := self.rows[PARTIES].get(getattr(p, "name", None))) is not None
        }
        for party_id in changed:
            self.foreign_referrers[party_id] = []
        for kind in KINDS.values():
            for ref in kind.references:
                if ref.target != PARTIES or not changed:
                    continue
                id_column = getattr(kind.model, ref.id_field)
                key_column = getattr(kind.model, kind.natural_key)
                query = select(id_column, kind.model.owner, key_column).where(
                    id_column.in_(list(changed))
                )
                for party_id, owner, key in (await session.execute(query)).all():
                    if owner != changed[party_id]:
                        self.foreign_referrers[party_id].append((kind.name, str(key), owner))

    async def _load_ids(
        self, session: AsyncSession, kind: KindSpec, ids: Iterable[uuid.UUID]
    ) -> None:
        for chunk in _chunks(ids):
            for row in await session.scalars(select(kind.model).where(kind.model.id.in_(chunk))):
                self.remember(kind, row)

    async def _load_ancestors(self, session: AsyncSession, depth: int = 32) -> None:
        """Parents of known entries, so that a cycle check sees the whole chain."""
        for name, known in list(self.by_id.items()):
            kind = KINDS[name]
            if not any(r.target == name for r in kind.references):
                continue
            for _ in range(depth):
                missing = {t.parent_id for t in known.values() if t.parent_id} - set(known)
                if not missing:
                    break
                await self._load_ids(session, kind, missing)

    def remember(self, kind: KindSpec, row: Any) -> None:
        value = getattr(row, kind.natural_key)
        target = Target(row.id, row.owner, getattr(row, "parent_id", None),
                        frozenset(getattr(row, "shared_with", None) or ()))  # fmt: skip
        if value is not None:
            self.rows[kind.name][_key(kind, row.owner, value)] = row
            if kind.natural_key_global:
                self.by_key[kind.name][value] = target
        self.by_id[kind.name][row.id] = target

    def learn(
        self, kind: KindSpec, owner: str, values: dict[str, Any], entry_id: uuid.UUID
    ) -> None:
        """An entry created by this write: later lines may refer to it."""
        target = Target(entry_id, owner, values.get("parent_id"),
                        frozenset(values.get("shared_with") or ()))  # fmt: skip
        value = values.get(kind.natural_key)
        if value is not None and kind.natural_key_global:
            self.by_key[kind.name][value] = target
        self.by_id[kind.name][entry_id] = target

    def existing(self, kind: KindSpec, owner: str, value: Any) -> Any:
        if kind.natural_key_global:
            return self.rows[kind.name].get(value)
        return self.rows[kind.name].get((owner, value))

    def resolve(
        self, kind: KindSpec, document: EntryIn, values: dict[str, Any], entry_id: uuid.UUID | None
    ) -> list[FieldError]:
        """Fill the reference ids of `values`; the errors name the fields that are wrong."""
        errors = []
        for ref in kind.references:
            try:
                values[ref.id_field] = self._resolve_one(kind, ref, document, entry_id)
            except _RefError as error:
                errors.append(FieldError((error.field,), str(error), "reference_error"))
        return errors

    def _resolve_one(
        self, kind: KindSpec, ref: Reference, document: EntryIn, entry_id: uuid.UUID | None
    ) -> uuid.UUID | None:
        target_kind = KINDS[ref.target]
        by_id: uuid.UUID | None = getattr(document, ref.id_field)
        by_key = getattr(document, ref.key_field)
        found: Target | None = None
        if by_key is not None:
            found = self.by_key[ref.target].get(by_key)
            if found is None:
                raise _RefError(ref.key_field, f"no {ref.target} entry has "
                                f"{target_kind.natural_key} {by_key!r}")  # fmt: skip
            if by_id is not None and by_id != found.id:
                raise _RefError(ref.id_field, f"names another entry than {ref.key_field}")
        elif by_id is not None:
            found = self.by_id[ref.target].get(by_id)
            if found is None:
                raise _RefError(ref.id_field, f"no {ref.target} entry {by_id}")
        elif ref.required:
            raise _RefError(ref.id_field, f"is required (or {ref.key_field})")
        if found is None:
            return None
        field_name = ref.key_field if by_key is not None else ref.id_field
        if not found.serves(document.owner):
            if "shared_with" in target_kind.fields:
                raise _RefError(field_name, f"names a party of {found.owner}, which does not "
                                f"serve {document.owner} (its owner may add {document.owner} "
                                "to its shared_with)")  # fmt: skip
            raise _RefError(field_name, f"names an entry of {found.owner}; "
                            f"it must belong to {document.owner}")  # fmt: skip
        if (
            ref.target == kind.name
            and entry_id is not None
            and self._is_ancestor(kind.name, entry_id, found)
        ):
            raise _RefError(field_name, "would make the entry its own ancestor")
        return found.id

    def lane_errors(self, kind: KindSpec, document: EntryIn, entry_id: uuid.UUID | None
                    ) -> list[FieldError]:  # fmt: skip
        """What a routing party's write would take from other owners: a certificate that
        belongs to another owner's party, or the service of an owner whose entries still
        name it. The party's certificates are then its owner's, for the rest of the write."""
        if kind.name != PARTIES:
            return []
        errors = []
        name = getattr(document, "name", "")
        for n, certificate in enumerate(getattr(document, "certificates", ())):
            held = self.holders[certificate.sha256]
            other = next((h for h in held if h.owner != document.owner), None)
            if other is not None:
                errors.append(FieldError(("certificates", n, "pem"), f"is the certificate of "
                              f"{other.owner}'s routing party {other.name}; a certificate "
                              "belongs to one owner's parties", "lane_error"))  # fmt: skip
            held.append(Holder(document.owner, name, entry_id))
        if entry_id is not None:
            serves = {document.owner, *getattr(document, "shared_with", ())}
            left = [r for r in self.foreign_referrers.get(entry_id, ()) if r[2] not in serves]
            if left:
                named = ", ".join(f"{k} {key} ({owner})" for k, key, owner in left[:10])
                more = f" and {len(left) - 10} more" if len(left) > 10 else ""
                errors.append(FieldError(("shared_with",), f"leaves out owners whose entries "
                              f"name this party: {named}{more}; they must name another party "
                              "first", "lane_error"))  # fmt: skip
        return errors

    def _is_ancestor(self, kind: str, entry_id: uuid.UUID, start: Target) -> bool:
        node: Target | None = start
        seen: set[uuid.UUID] = set()
        while node is not None and node.id not in seen:
            if node.id == entry_id:
                return True
            seen.add(node.id)
            node = self.by_id[kind].get(node.parent_id) if node.parent_id else None
        return False


class _RefError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _chunks(values: Iterable[Any]) -> list[list[Any]]:
    items = list(values)
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


async def _rows_by_natural_key(
    session: AsyncSession, kind: KindSpec, keys: set[Any], global_only: bool = False
) -> list[Any]:
    model = kind.model
    column = getattr(model, kind.natural_key)
    out: list[Any] = []
    if kind.natural_key_global:
        for chunk in _chunks(keys):
            out += (await session.scalars(select(model).where(column.in_(chunk)))).all()
        return out
    if global_only:
        return out
    by_owner: dict[str, list[Any]] = defaultdict(list)
    for owner, value in keys:
        by_owner[owner].append(value)
    for owner, values in by_owner.items():
        for chunk in _chunks(values):
            query = select(model).where(model.owner == owner, column.in_(chunk))
            out += (await session.scalars(query)).all()
    return out
