"""The registry's service layer: every write and read of every kind goes through here.

Controllers, the importer, the seeder and the CLI call these methods; each write
is one revision (see `cdb_service.db.revisions`), validated whole before it
commits, so a write is either complete or absent.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db import documents
from cdb_service.db import revisions as rev
from cdb_service.db.documents import document_of
from cdb_service.db.revisions import EntryModel, RevisionWriter, StaleVersionError, WrittenVersion
from cdb_service.kernel.problems import FieldError, Problem, conflict, invalid, not_found, stale
from cdb_service.registry import idempotency as idempotency_keys
from cdb_service.registry.filters import Filter
from cdb_service.registry.idempotency import IdempotentRequest
from cdb_service.registry.kinds import APPLY_ORDER, KINDS
from cdb_service.registry.references import EntryIndex
from cdb_service.registry.schemas import EntryIn
from cdb_service.registry.spec import KindSpec
from cdb_service.security import audit
from cdb_service.security.audit import Who, as_who

MAX_PAGE = 1000
AS_OF_CHUNK = 500


def validate(kind: KindSpec, data: Any, loc_prefix: tuple[str | int, ...] = ()) -> EntryIn:
    """Validate a client document; a 422 problem naming every wrong field otherwise."""
    try:
        return kind.schema.model_validate(data)
    except ValidationError as error:
        raise invalid(field_errors(error, loc_prefix)) from None


def field_errors(error: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[FieldError]:
    out = []
    for e in error.errors(include_url=False):
        msg = e["msg"].removeprefix("Value error, ")
        out.append(FieldError((*prefix, *e["loc"]), msg, e["type"]))
    return out


class Change(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    UNCHANGED = "unchanged"


@dataclass
class BatchItem:
    kind: KindSpec
    document: EntryIn
    line: int | None = None


@dataclass
class DiffRow:
    kind: str
    key: Any
    change: Change
    id: uuid.UUID | None
    fields: list[str] = field(default_factory=list)
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        row = {"kind": self.kind, "key": self.key, "change": self.change.value}
        return row | {"id": str(self.id) if self.id else None, "fields": self.fields}


@dataclass
class BatchResult:
    revision: int | None
    diff: list[DiffRow]

    def counts(self) -> dict[str, int]:
        totals = dict.fromkeys((c.value for c in Change), 0)
        for row in self.diff:
            totals[row.change.value] += 1
        return totals


@dataclass
class Created:
    document: dict[str, Any]
    replayed: bool


@dataclass
class Page:
    items: list[dict[str, Any]]
    revision: int
    next: uuid.UUID | None


class RegistryService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    # --- writes -----------------------------------------------------------------------

    async def create(
        self,
        kind: KindSpec,
        document: EntryIn,
        who: Who | str,
        entry_id: uuid.UUID | None = None,
        idempotency: IdempotentRequest | None = None,
    ) -> Created:
        """Create an entry; with an idempotency key, a repeat returns the first result."""
        try:
            async with self._writing(who, f"create {kind.name}") as writer:
                if idempotency is not None:
                    stored = await idempotency_keys.claim(writer.session, idempotency)
                    if stored is not None:
                        raise idempotency_keys.Replay(stored)
                values = await self._prepare(writer, kind, document, None)
                written = await writer.create(kind, document.owner, values, entry_id)
                if idempotency is not None:
                    idempotency_keys.remember(
                        writer.session, idempotency, kind.name, written.document
                    )
        except idempotency_keys.Replay as replay:
            if replay.request_hash != idempotency.request_hash:  # type: ignore[union-attr]
                raise invalid(
                    [
                        FieldError(
                            ("header", "Idempotency-Key"),
                            "was already used for a different request",
                        )
                    ]
                ) from None
            return Created(replay.document, replayed=True)
        return Created(written.document, replayed=False)

    async def update(
        self,
        kind: KindSpec,
        entry_id: uuid.UUID,
        document: EntryIn,
        who: Who | str,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        async with self._writing(who, f"update {kind.name}") as writer:
            row = await self._current(writer.session, kind, entry_id)
            values = await self._prepare(writer, kind, document, row)
            written = await writer.update(kind, row, values, expected_version)
        return written.document

    async def delete(
        self,
        kind: KindSpec,
        entry_id: uuid.UUID,
        who: Who | str,
        expected_version: int | None = None,
        *,
        cascade: bool = False,
    ) -> dict[str, Any]:
        """Delete (tombstone) an entry; referrers block it, unless `cascade` (owner's own)."""
        async with self._writing(who, f"delete {kind.name}") as writer:
            row = await self._current(writer.session, kind, entry_id)
            if expected_version is not None and expected_version != row.version:
                raise StaleVersionError(expected_version, row.version)
            written = await self._delete_with_referrers(writer, kind, row, cascade)
        return written.document

    async def _delete_with_referrers(
        self, writer: RevisionWriter, kind: KindSpec, row: Any, cascade: bool
    ) -> WrittenVersion:
        _deletable(kind)
        referrers = await _referrers(writer.session, kind, row.id)
        if referrers:
            foreign = [(k, r) for k, r in referrers if r.owner != row.owner]
            if not cascade or foreign:
                listed = [
                    {
                        "kind": k.name,
                        "id": str(r.id),
                        "key": getattr(r, k.natural_key),
                        "owner": r.owner,
                    }
                    for k, r in referrers
                ]
                why = "other owners' entries refer to it" if cascade else "entries refer to it"
                raise conflict(
                    f"cannot delete this {kind.name} entry: {len(listed)} {why}"
                    + ("" if cascade else " (cascade=true deletes the owner's own referrers)"),
                    referrers=listed,
                )
            for referrer_kind, referrer in referrers:
                await self._delete_with_referrers(writer, referrer_kind, referrer, cascade)
        return await writer.delete(kind, row)

    async def apply_batch(
        self,
        items: Sequence[BatchItem],
        who: Who | str,
        *,
        replace_owner: str | None = None,
        dry_run: bool = False,
        summary: str = "batch",
    ) -> BatchResult:
        """Apply entries keyed by natural key as one revision, or nothing at all.

        Unchanged entries write nothing; if every entry is unchanged there is no
        revision. With `replace_owner`, that owner's entries of the batch's kinds
        that the batch does not name are deleted in the same revision. A dry run
        does all of it and rolls back, so its diff is what the real run does.
        """
        diff: list[DiffRow] = []
        errors: list[FieldError] = []
        async with self._writing(who, summary, commit=not dry_run) as writer:
            ordered = _parents_first(sorted(items, key=lambda i: APPLY_ORDER.index(i.kind.name)))
            with writer.session.no_autoflush:
                index = await EntryIndex.load(
                    writer.session, [(i.kind, i.document) for i in ordered]
                )
                seen: dict[tuple[str, Any], int | None] = {}
                for item in ordered:
                    prefix: tuple[str | int, ...] = ("line", item.line) if item.line else ()
                    try:
                        diff.append(await self._apply_one(writer, index, item, seen))
                    except Problem as problem:
                        errors.extend(_with_prefix(problem, prefix))
            if replace_owner and not errors:
                named = {(row.kind, row.id) for row in diff}
                kinds = {item.kind.name for item in items}
                for kind_name in reversed(APPLY_ORDER):
                    if kind_name in kinds:
                        diff += await self._delete_unnamed(
                            writer, KINDS[kind_name], replace_owner, named
                        )
            if errors:
                raise invalid(errors, f"{len(errors)} problem(s) in the batch; nothing was written")
        revision = writer.revision if writer.written and not dry_run else None
        return BatchResult(revision, diff)

    async def _apply_one(
        self,
        writer: RevisionWriter,
        index: EntryIndex,
        item: BatchItem,
        seen: dict[tuple[str, Any], int | None],
    ) -> DiffRow:
        kind, document = item.kind, item.document
        key = getattr(document, kind.natural_key)
        if key is None:
            raise invalid(
                [FieldError((kind.natural_key,), "is required to match entries in a batch")]
            )
        marker = (kind.name, key if kind.natural_key_global else (document.owner, key))
        if marker in seen:
            raise invalid(
                [FieldError((kind.natural_key,), f"repeats line {seen[marker]}'s key {key!r}")]
            )
        seen[marker] = item.line
        row = index.existing(kind, document.owner, key)
        if row is not None and row.owner != document.owner:
            raise conflict(
                f"{kind.natural_key} {key!r} belongs to an entry of {row.owner}",
                errors=[{"loc": [kind.natural_key], "msg": "already used by another owner"}],
            )
        values = self._values(writer, index, kind, document, row)
        if row is None:
            written = await writer.create(kind, document.owner, values, None)
            index.learn(kind, document.owner, values, written.entry_id)
            return DiffRow(kind.name, key, Change.CREATED, written.entry_id, [], item.line)
        changed = [name for name, value in values.items() if getattr(row, name) != value]
        if not changed:
            return DiffRow(kind.name, key, Change.UNCHANGED, row.id, [], item.line)
        await writer.update(kind, row, values)
        return DiffRow(kind.name, key, Change.UPDATED, row.id, changed, item.line)

    async def _delete_unnamed(
        self,
        writer: RevisionWriter,
        kind: KindSpec,
        owner: str,
        named: set[tuple[str, uuid.UUID | None]],
    ) -> list[DiffRow]:
        rows = (
            await writer.session.scalars(
                select(kind.model).where(kind.model.owner == owner).order_by(kind.model.id)
            )
        ).all()
        out = []
        for row in rows:
            if (kind.name, row.id) not in named:
                _deletable(kind)
                key = getattr(row, kind.natural_key)
                await writer.delete(kind, row)
                out.append(DiffRow(kind.name, key, Change.DELETED, row.id))
        return out

    def _writing(self, who: Who | str, summary: str, *, commit: bool = True) -> _Writing:
        return _Writing(self.sessions, as_who(who), summary, commit)

    async def _current(self, session: AsyncSession, kind: KindSpec, entry_id: uuid.UUID) -> Any:
        row = await session.get(kind.model, entry_id)
        if row is None:
            raise not_found(kind.name, entry_id)
        return row

    async def _prepare(
        self, writer: RevisionWriter, kind: KindSpec, document: EntryIn, row: EntryModel | None
    ) -> dict[str, Any]:
        """Column values for one entry written on its own (create or replace)."""
        index = await EntryIndex.load(writer.session, [(kind, document)])
        key = getattr(document, kind.natural_key)
        other = index.existing(kind, document.owner, key) if key is not None else None
        if other is not None and (row is None or other.id != row.id):
            raise conflict(
                f"another {kind.name} entry already has {kind.natural_key} {key!r}",
                errors=[{"loc": [kind.natural_key], "msg": "already exists", "type": "duplicate"}],
            )
        return self._values(writer, index, kind, document, row)

    def _values(
        self,
        writer: RevisionWriter,
        index: EntryIndex,
        kind: KindSpec,
        document: EntryIn,
        row: EntryModel | None,
    ) -> dict[str, Any]:
        """Column values: references resolved, the owner kept, server fields set on create."""
        values = kind.column_values(document)
        errors = index.resolve(kind, document, values, row.id if row is not None else None)
        if row is not None and row.owner != document.owner:
            moved = f"an entry of {row.owner} cannot move to another owner"
            errors.insert(0, FieldError(("owner",), moved))
        if errors:
            raise invalid(errors)
        if row is None:
            values |= {name: writer.now for name in kind.server_fields}
        if kind.derive is not None:
            current = None if row is None else {n: getattr(row, n) for n in kind.fields}
            values |= kind.derive(values, current)
        return values

    async def rotate_certificate(
        self, old_sha256: str, new_pem: str, principal: Any, who: Who | str
    ) -> dict[str, Any]:
        """Swap one certificate for its renewal in every routing party that uses it."""
        from cdb_service.security import policy

        kind = KINDS["routing-parties"]
        async with self._writing(who, "rotate certificate") as writer:
            rows: Sequence[Any] = (
                await writer.session.scalars(select(kind.model).order_by(kind.model.id))
            ).all()
            using = [r for r in rows if any(c.get("sha256") == old_sha256 for c in r.certificates)]
            if not using:
                raise not_found("routing-parties", f"using a certificate with SHA-256 {old_sha256}")
            for row in using:
                policy.require_write(principal, row.owner)
            index = await EntryIndex.load(writer.session, [])
            for row in using:
                document = document_of(kind, row)
                document["certificates"] = [
                    {"use": c["use"], "pem": new_pem if c.get("sha256") == old_sha256 else c["pem"]}
                    for c in document["certificates"]
                ]
                values = self._values(writer, index, kind, validate(kind, document), row)
                await writer.update(kind, row, values)
        return {"revision": writer.revision, "routing_parties": [str(r.id) for r in using]}

    async def documents(
        self, kinds: Iterable[KindSpec], owner: str | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Every current entry of these kinds (of one owner), in the order a batch applies them."""
        out: list[tuple[str, dict[str, Any]]] = []
        for kind in sorted(kinds, key=lambda k: APPLY_ORDER.index(k.name)):
            after = None
            while True:
                filters = {"owner": owner} if owner else {}
                page = await self.collection(kind, filters=filters, after=after, limit=MAX_PAGE)
                out += [(kind.name, d) for d in page.items]
                if page.next is None:
                    break
                after = page.next
        return out

    # --- reads ------------------------------------------------------------------------

    async def head(self) -> int:
        async with rev.read_snapshot(self.sessions) as session:
            return await rev.head_revision(session)

    async def get(
        self, kind: KindSpec, entry_id: uuid.UUID, revision: int | None = None
    ) -> dict[str, Any] | None:
        async with rev.read_snapshot(self.sessions) as session:
            if revision is not None:
                version = await rev.version_as_of(session, entry_id, revision)
                if version is None or version.kind != kind.name:
                    return None
                return dict(version.document)
            row = await session.get(kind.model, entry_id)
            return document_of(kind, row) if row is not None else None

    async def collection(
        self,
        kind: KindSpec,
        *,
        filters: Mapping[str, Any] | None = None,
        valid_at: dt.date | None = None,
        revision: int | None = None,
        after: uuid.UUID | None = None,
        limit: int = 100,
    ) -> Page:
        """One page of a kind, in id order: current state, or as it stood at `revision`."""
        limit = max(1, min(limit, MAX_PAGE))
        wanted = [(kind.all_filters[name], value) for name, value in (filters or {}).items()]
        async with rev.read_snapshot(self.sessions) as session:
            head = await rev.head_revision(session)
            if revision is not None:
                docs = await _documents_as_of(
                    session, kind, revision, wanted, valid_at, after, limit
                )
                read_at = revision
            else:
                model = kind.model
                query = select(model).order_by(model.id).limit(limit + 1)
                for flt, value in wanted:
                    query = query.where(flt.clause(model, value))
                if valid_at is not None:
                    query = query.where(rev.valid_on(model, valid_at))
                if after is not None:
                    query = query.where(model.id > after)
                docs = [document_of(kind, r) for r in (await session.scalars(query)).all()]
                read_at = head
        more = len(docs) > limit
        docs = docs[:limit]
        return Page(docs, read_at, uuid.UUID(docs[-1]["id"]) if more else None)

    async def history(self, entry_id: uuid.UUID) -> list[dict[str, Any]]:
        async with rev.read_snapshot(self.sessions) as session:
            return [_version_dict(v) for v in await rev.history(session, entry_id)]

    async def changes(
        self, since: int, limit: int = 1000, kinds: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        async with rev.read_snapshot(self.sessions) as session:
            return [_version_dict(v) for v in await rev.changes_after(session, since, limit, kinds)]


async def _documents_as_of(
    session: AsyncSession,
    kind: KindSpec,
    revision: int,
    wanted: list[tuple[Filter, Any]],
    valid_at: dt.date | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Past documents through the same filters, read in chunks until a page is full."""
    owner = next((v for f, v in wanted if f.name == "owner"), None)
    docs: list[dict[str, Any]] = []
    while len(docs) <= limit:
        chunk = await rev.collection_as_of(
            session, kind.name, revision, owner=owner, valid_at=valid_at, after=after,
            limit=AS_OF_CHUNK,
        )  # fmt: skip
        docs += [
            dict(v.document) for v in chunk if all(f.accepts(v.document, x) for f, x in wanted)
        ]
        if len(chunk) < AS_OF_CHUNK:
            break
        after = chunk[-1].entry_id
    return docs


def _version_dict(version: rev.EntryVersion) -> dict[str, Any]:
    return {
        "revision": version.revision,
        "kind": version.kind,
        "id": str(version.entry_id),
        "version": version.version,
        "operation": version.operation,
        "recorded_at": documents.to_json_value(version.recorded_at),
        "actor": version.actor,
        "document": version.document,
    }


def _deletable(kind: KindSpec) -> None:
    if kind.never_deleted is not None:
        raise conflict(kind.never_deleted)


async def _referrers(
    session: AsyncSession, kind: KindSpec, entry_id: uuid.UUID
) -> list[tuple[KindSpec, Any]]:
    """Every current entry whose reference fields name this one."""
    found: list[tuple[KindSpec, Any]] = []
    for other in KINDS.values():
        for ref in other.references:
            if ref.target == kind.name:
                column = getattr(other.model, ref.id_field)
                rows = (await session.scalars(select(other.model).where(column == entry_id))).all()
                found += [(other, r) for r in rows if r.id != entry_id]
    return found


def _parents_first(items: list[BatchItem]) -> list[BatchItem]:
    """Within a kind that references itself (authority parents), parents come first."""
    out: list[BatchItem] = []
    waiting = {(i.kind.name, getattr(i.document, "code", None)) for i in items}
    pending = list(items)
    while pending:
        rest = []
        for item in pending:
            parent = getattr(item.document, "parent_code", None)
            if parent is None or (item.kind.name, parent) not in waiting:
                out.append(item)
                waiting.discard((item.kind.name, getattr(item.document, "code", None)))
            else:
                rest.append(item)
        if len(rest) == len(pending):  # a cycle: let reference resolution report it
            return out + rest
        pending = rest
    return out


def _with_prefix(problem: Problem, prefix: tuple[str | int, ...]) -> list[FieldError]:
    if problem.errors:
        return [FieldError((*prefix, *e.loc), e.msg, e.type) for e in problem.errors]
    return [FieldError(prefix, problem.detail, problem.slug)]


class _Writing:
    """`write_revision` with the audit event and the service's error translation around it.

    A write that commits carries its audit event in the same transaction; one that
    is refused is audited in a transaction of its own.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        who: Who,
        summary: str,
        commit: bool,
    ) -> None:
        self.sessions, self.who, self.summary = sessions, who, summary
        self._cm = rev.write_revision(
            sessions, who.subject, summary, commit=commit, before_commit=self._audit
        )

    async def _audit(self, writer: RevisionWriter) -> None:
        targets = sorted({f"{kind}/{entry_id}" for kind, entry_id, _ in writer.written})
        await audit.append(
            writer.session, self.who, self.summary, "ok",
            targets[0] if len(targets) == 1 else f"{len(targets)} entries",
            {"revision": writer.revision, "changes": len(writer.written)},
        )  # fmt: skip

    async def __aenter__(self) -> RevisionWriter:
        return await self._cm.__aenter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        try:
            try:
                await self._cm.__aexit__(exc_type, exc, tb)
            except StaleVersionError as error:
                raise stale(error.expected, error.actual) from None
            except IntegrityError as error:
                raise conflict(_integrity_detail(error)) from None
            if isinstance(exc, StaleVersionError):
                raise stale(exc.expected, exc.actual) from None
            if isinstance(exc, IntegrityError):
                raise conflict(_integrity_detail(exc)) from None
        except Problem as problem:
            await self._refused(problem)
            raise
        if isinstance(exc, Problem):
            await self._refused(exc)
        return False

    async def _refused(self, problem: Problem) -> None:
        await audit.record(self.sessions, self.who, self.summary, f"rejected-{problem.status}",
                           None, {"detail": problem.detail[:500]})  # fmt: skip


def _integrity_detail(error: IntegrityError) -> str:
    text = str(error.orig).lower()
    if "foreign key" in text:
        return "the change breaks a reference: another entry still refers to this one"
    if "unique" in text or "duplicate" in text:
        return "the change would duplicate a unique value (a code, name, ref or party id)"
    return "the change conflicts with the registry's integrity rules"
