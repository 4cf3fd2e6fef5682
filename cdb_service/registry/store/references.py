"""What a write needs to know about other entries, loaded in a few queries per batch.

For every document of a write (one entry or a national batch of thousands) the
service needs: the current entry with the same natural key, and the entries its
references name (by id or by natural key). `EntryIndex.load` fetches the targets
(id, owner, parent, sharing: not whole rows) in bulk up front, and learns the
entries the batch itself creates as it goes, so applying a batch costs no query
per line; the current rows of the entries being written come a part at a time
(`EntryIndex.load_rows`), so that a batch re-importing 50,000 entries never holds
50,000 rows.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cdb_service.kernel.owners import DEFAULT, Owners
from cdb_service.kernel.problems import FieldError
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.schemas import EntryIn
from cdb_service.registry.kinds.spec import KindSpec, Reference
from cdb_service.registry.store.natural_keys import chunks, rows_by_natural_key
from cdb_service.registry.store.participation import owners_in

PARTIES = "routing-parties"


@dataclass(frozen=True, slots=True)
class Named:
    """What one entry of a write names, read off its validated document: its own natural
    key and the entries its references name. The index is loaded from these, so a batch
    of 50,000 entries need not hold 50,000 validated documents while it is checked."""

    kind: KindSpec
    owner: str
    key: Any  # its natural key; None when an owner-scoped `ref` is not given
    ref_keys: tuple[Any, ...]  # by `kind.references`: the natural key it names, or None
    ref_ids: tuple[uuid.UUID | None, ...]  # by `kind.references`: the id it names, or None
    certificates: tuple[str, ...] = ()  # a routing party's certificates (sha256)

    @classmethod
    def of(cls, kind: KindSpec, document: EntryIn) -> Named:
        refs = kind.references
        return cls(
            kind,
            document.owner,
            getattr(document, kind.natural_key),
            _shared(tuple(getattr(document, r.key_field) for r in refs)),
            _shared(tuple(getattr(document, r.id_field) for r in refs)),
            tuple(c.sha256 for c in document.certificates)  # type: ignore[attr-defined]
            if "certificates" in kind.schema.model_fields
            else (),
        )

    def names(self, ref: Reference) -> Any:
        """The natural key this entry names through `ref` (None if it names none by key)."""
        return self.ref_keys[self.kind.references.index(ref)]


_NOTHING: dict[int, tuple[None, ...]] = {}


def _shared(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Most entries name nothing through most references: one tuple of Nones serves them all."""
    if any(v is not None for v in values):
        return values
    return _NOTHING.setdefault(len(values), values)


@dataclass(frozen=True, slots=True)
class Target:
    id: uuid.UUID
    owner: str
    parent_id: uuid.UUID | None = None
    # Owners whose entries may refer to it: its own, and those a routing party shares with.
    shared_with: frozenset[str] = frozenset()

    def serves(self, owner: str) -> bool:
        return owner == self.owner or owner in self.shared_with


@dataclass(frozen=True, slots=True)
class Holder:
    """A routing party holding a certificate (see `EntryIndex.lane_errors`)."""

    owner: str
    name: str
    id: uuid.UUID | None
    confirmed: bool = False  # an operator confirmed that this party holds it too


def _key(kind: KindSpec, owner: str, value: Any) -> Any:
    return value if kind.natural_key_global else (owner, value)


_NO_OWNERS: frozenset[str] = frozenset()


def _owners(values: Iterable[str] | None) -> frozenset[str]:
    """A target's `shared_with`: most have none, and an empty frozenset is 216 bytes."""
    return frozenset(values) if values else _NO_OWNERS


def _target_columns(kind: KindSpec) -> list[Any]:
    """What a target needs of an entry's row: not the row (documents, names, addresses)."""
    table: Any = kind.model.__table__
    names = ("id", "owner", kind.natural_key, "parent_id", "shared_with")
    return [table.c[n] for n in dict.fromkeys(names) if n in table.c]


@dataclass
class EntryIndex:
    """What a write needs of other entries: targets of every entry it names or refers to,
    and the current rows of the entries it writes, `ROWS_AT_ONCE` at a time."""

    # kind -> natural key -> current row (of the entries being written: see `load_rows`)
    rows: dict[str, dict[Any, Any]] = field(default_factory=lambda: defaultdict(dict))
    # kind -> natural key value -> target facts (for references by natural key)
    by_key: dict[str, dict[Any, Target]] = field(default_factory=lambda: defaultdict(dict))
    # kind -> id -> target facts (for references by id)
    by_id: dict[str, dict[uuid.UUID, Target]] = field(default_factory=lambda: defaultdict(dict))
    # certificate sha256 -> the routing parties holding it (loaded when a write names any)
    holders: dict[str, list[Holder]] = field(default_factory=lambda: defaultdict(list))
    # Written by an operator: what only operators may set is theirs (`grant_errors`).
    operator: bool = False
    # The owners and what each takes part in (`registry/store/participation.py`).
    owners: Owners = DEFAULT

    @classmethod
    async def load(
        cls,
        session: AsyncSession,
        named: Sequence[Named],
        *,
        rows: bool = True,
        operator: bool = False,
    ) -> EntryIndex:
        """The targets the entries name (themselves included), with their current rows
        unless `rows` is False: a batch reads those a part at a time (`load_rows`)."""
        index = cls(operator=operator, owners=await owners_in(session))
        keys: dict[str, set[Any]] = defaultdict(set)
        ref_keys: dict[str, set[Any]] = defaultdict(set)
        ref_ids: dict[str, set[uuid.UUID]] = defaultdict(set)
        parties: list[Named] = []
        for entry in named:
            kind = entry.kind
            if entry.key is not None and kind.natural_key_global:
                keys[kind.name].add(entry.key)
            for ref, key, ident in zip(kind.references, entry.ref_keys, entry.ref_ids,
                                       strict=True):  # fmt: skip
                if key is not None:
                    ref_keys[ref.target].add(key)
                if ident is not None:
                    ref_ids[ref.target].add(ident)
            if kind.name == PARTIES:
                parties.append(entry)
        for name, wanted in keys.items():
            await index._load_keys(session, KINDS[name], wanted)
        for name, wanted in ref_keys.items():
            await index._load_keys(session, KINDS[name], wanted - keys[name])
        for name, ids in ref_ids.items():
            await index._load_ids(session, KINDS[name], ids)
        await index._load_ancestors(session)
        if parties:
            await index._load_party_lanes(session, parties)
        if rows:
            await index.load_rows(session, named)
        return index

    async def load_rows(self, session: AsyncSession, named: Iterable[Named],
                        columns: Callable[[KindSpec], Sequence[Any]] | None = None,
                        ) -> None:  # fmt: skip
        """The current rows of these entries, in place of those loaded before: a batch of
        50,000 entries holds the rows of the part it is applying, not 50,000 of them.
        With `columns` (a kind's columns to read), only those of each row (`Row`s)."""
        self.rows = defaultdict(dict)
        self.add_rows(await self.current_rows(session, named, columns))

    async def current_rows(self, session: AsyncSession, named: Iterable[Named],
                           columns: Callable[[KindSpec], Sequence[Any]] | None = None,
                           ) -> list[tuple[KindSpec, Any]]:  # fmt: skip
        """The current rows of these entries (whole, or `columns` of each), by kind."""
        keys: dict[str, set[Any]] = defaultdict(set)
        for entry in named:
            if entry.key is not None:
                keys[entry.kind.name].add(_key(entry.kind, entry.owner, entry.key))
        out: list[tuple[KindSpec, Any]] = []
        for name, wanted in keys.items():
            kind = KINDS[name]
            chosen = columns(kind) if columns is not None else ()
            out += [(kind, row) for row in await rows_by_natural_key(session, kind, wanted,
                                                                      chosen)]  # fmt: skip
        return out

    def add_rows(self, rows: Iterable[tuple[KindSpec, Any]]) -> None:
        """Current rows found otherwise (`current_rows`), beside those loaded."""
        for kind, row in rows:
            self.rows[kind.name][_key(kind, row.owner, getattr(row, kind.natural_key))] = row

    async def _load_party_lanes(self, session: AsyncSession, parties: Sequence[Named]) -> None:
        """Who holds the certificates the write names: the routing-party table is small
        (one row per access point), so it is read whole."""
        wanted = {sha256 for p in parties for sha256 in p.certificates}
        model: Any = KINDS[PARTIES].model
        rows = (await session.execute(select(model.id, model.owner, model.name,
                                             model.certificates))).all()  # fmt: skip
        for entry_id, owner, name, certificates in rows:
            for certificate in certificates or ():
                if certificate.get("sha256") in wanted:
                    self.holders[certificate["sha256"]].append(
                        Holder(owner, name, entry_id, bool(certificate.get("operator_confirmed")))
                    )

    async def _load_keys(self, session: AsyncSession, kind: KindSpec, keys: set[Any]) -> None:
        column = getattr(kind.model, kind.natural_key)
        for chunk in chunks(keys):
            query = select(*_target_columns(kind)).where(column.in_(chunk))
            for row in await session.execute(query):
                self.remember(kind, row)

    async def _load_ids(
        self, session: AsyncSession, kind: KindSpec, ids: Iterable[uuid.UUID]
    ) -> None:
        for chunk in chunks(ids):
            query = select(*_target_columns(kind)).where(kind.model.id.in_(chunk))
            for row in await session.execute(query):
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
        """A current entry as a target (`row`: its `_target_columns`, or the whole row)."""
        value = getattr(row, kind.natural_key)
        target = Target(row.id, row.owner, getattr(row, "parent_id", None),
                        _owners(getattr(row, "shared_with", None)))  # fmt: skip
        if value is not None and kind.natural_key_global:
            self.by_key[kind.name][value] = target
        self.by_id[kind.name][row.id] = target

    def learn(
        self, kind: KindSpec, owner: str, values: dict[str, Any], entry_id: uuid.UUID
    ) -> None:
        """An entry created by this write: later lines may refer to it."""
        target = Target(entry_id, owner, values.get("parent_id"),
                        _owners(values.get("shared_with")))  # fmt: skip
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
        belongs to another owner's party, unless it names no state and an operator
        confirmed it for this party. The party's certificates are then its owner's, for the
        rest of the write. (Leaving an owner out of `shared_with` takes nothing: that
        owner's entries that name the party are unroutable until they name another, and
        the quality report says so.)"""
        if kind.name != PARTIES:
            return []
        errors = []
        name = getattr(document, "name", "")
        for n, certificate in enumerate(getattr(document, "certificates", ())):
            held = self.holders[certificate.sha256]
            others = [h for h in held if h.owner != document.owner]
            # One owner's, unless it names no state and an operator confirmed each other
            # owner's holding of it (here, or on the others' parties).
            shared = certificate.names_no_state and (
                certificate.operator_confirmed or all(h.confirmed for h in others)
            )
            if others and not shared:
                other = others[0]
                confirm = ("; it names no state (no C=): an operator may confirm that this "
                           "party holds it too (operator_confirmed)"
                           if certificate.names_no_state else "")  # fmt: skip
                errors.append(
                    FieldError(
                        ("certificates", n, "pem"),
                        "is the certificate "
                        f"of {other.owner}'s routing party {other.name}; a certificate "
                        f"belongs to one owner's parties{confirm}",
                        "lane_error",
                    )
                )
            held.append(Holder(document.owner, name, entry_id, certificate.operator_confirmed))
        return errors

    def grant_errors(self, kind: KindSpec, document: EntryIn, row: Any) -> list[FieldError]:
        """Operators' exceptions (`operator_confirmed` on a party id or a certificate) are
        set and removed by operators only: anyone else keeps those of the current entry."""
        if kind.name != PARTIES or self.operator:
            return []
        errors = []
        for name, key in (("identifiers", ("party_id", "party_id_type")),
                          ("certificates", ("sha256",))):  # fmt: skip
            current = getattr(row, name, None) or ()
            before = {tuple(item.get(k) for k in key)
                      for item in current if item.get("operator_confirmed")}  # fmt: skip
            for n, item in enumerate(getattr(document, name, ())):
                ident = tuple(getattr(item, k) for k in key)
                if item.operator_confirmed and ident not in before:
                    errors.append(FieldError((name, n, "operator_confirmed"), "is set by "
                                  "operators only", "operator_only"))  # fmt: skip
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
