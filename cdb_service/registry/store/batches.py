"""National batches: entries keyed by natural key, applied as one revision or not at all.

Used by `POST /import`, `cdb-service import` and the seeder. A dry run does all of
the work and rolls back, so its diff is exactly what the real run would do.
What a batch holds and answers (`BatchItem`, `BatchResult`) is in `batch_items.py`.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db.revisions import RevisionWriter
from cdb_service.db.revisions.writer import SOURCE_DIGEST
from cdb_service.kernel import codes
from cdb_service.kernel.problems import MAX_FIELD_ERRORS, FieldError, Problem, conflict, invalid
from cdb_service.registry.kinds import APPLY_ORDER, KINDS
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.registry.store.batch_items import (
    BatchItem,
    BatchResult,
    Change,
    DiffRow,
    parents_first,
)
from cdb_service.registry.store.participation import CRITERIA
from cdb_service.registry.store.references import PARTIES, EntryIndex
from cdb_service.registry.store.unique_claims import UniqueClaims
from cdb_service.registry.store.unit_of_work import UnitOfWork
from cdb_service.registry.store.writes import SEARCH_TEXT, column_values, delete_block
from cdb_service.security.audit import Who, as_who

MAX_ERRORS = MAX_FIELD_ERRORS  # listed in a refusal; every problem is counted


# Current rows read at a time while applying: the memory of a re-import is that of
# this many rows, not of every entry the batch names.
ROWS_AT_ONCE = 1000


class Batches:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def apply(
        self,
        items: Sequence[BatchItem],
        who: Who | str,
        *,
        replace_owner: str | None = None,
        dry_run: bool = False,
        summary: str = "batch",
        prior_errors: Sequence[FieldError] = (),
        unlisted_errors: int = 0,
        broken: Collection[tuple[str, Any]] = (),
        complete: bool = True,
    ) -> BatchResult:
        """Apply entries keyed by natural key as one revision, or nothing at all.

        Unchanged entries write nothing; if every entry is unchanged there is no
        revision. With `replace_owner`, that owner's entries of the batch's kinds
        that the batch does not name are deleted in the same revision.

        Every problem is found in one pass: `prior_errors` are those of lines that did
        not parse, `unlisted_errors` how many more there were (counted, not kept); the
        rest of the batch is still checked, and nothing is written;
        `broken` names the (kind, natural key) of those lines, so that references to
        them are not reported a second time as references to nothing. `complete` False
        (some line's entry is unknown) still checks the replace-mode deletions, so that
        their conflicts come in the same answer, but says that an unread line may name
        the entry; such a batch is refused whatever the checks find.
        """
        diff: list[DiffRow] = []
        errors: list[FieldError] = list(prior_errors)
        broken = set(broken)
        # A batch with an unread line is refused: its replace-mode deletions are unsure.
        commit = not dry_run and not errors and complete
        # Bulk mode: no created row is read back before `write_pending`.
        async with UnitOfWork(self.sessions, who, summary, commit=commit, bulk=True) as writer:
            ordered = parents_first(sorted(items, key=lambda i: APPLY_ORDER.index(i.kind.name)))
            with writer.session.no_autoflush:
                index = await EntryIndex.load(
                    writer.session, [i.named for i in ordered], rows=False,
                    operator=as_who(who).operator,
                )  # fmt: skip
                seen: dict[tuple[str, Any], BatchItem] = {}
                applied: list[tuple[BatchItem, uuid.UUID | None]] = []
                claims = UniqueClaims()
                for start in range(0, len(ordered), ROWS_AT_ONCE):
                    part = ordered[start : start + ROWS_AT_ONCE]
                    await _load_part(writer.session, index, part)
                    for item in part:
                        try:
                            row, values = await _apply_one(writer, index, item, seen)
                        except Problem as problem:
                            errors.extend(_located(problem, item, broken))
                            continue
                        diff.append(row)
                        applied.append((item, row.id))
                        claims.add(item, row.id, values)
                errors += claims.errors
                errors += await claims.held_elsewhere(writer.session, {i for _, i in applied})
            # The checks below query the entry tables: what the batch created is in them.
            await writer.write_pending()
            if replace_owner:
                kept = _Kept(
                    ids={(row.kind, row.id) for row in diff},
                    keys={(i.kind.name, i.key) for i in items if i.key is not None} | broken,
                    where={(i.kind.name, e): i.location for i, e in applied if i.location},
                    unsure=not complete,
                )
                kinds = {item.kind.name for item in items}
                for kind_name in reversed(APPLY_ORDER):
                    if kind_name in kinds:
                        gone, conflicts = await _delete_unnamed(
                            writer, KINDS[kind_name], replace_owner, kept
                        )
                        diff += gone
                        errors += conflicts
            if errors or unlisted_errors:
                errors.sort(key=_in_file_order)
                total = len(errors) + unlisted_errors
                more = f" (the first {MAX_ERRORS} are listed)" if total > MAX_ERRORS else ""
                refusal = invalid(
                    errors[:MAX_ERRORS],
                    f"{total} problem(s) in the batch; nothing was written{more}",
                )
                refusal.extra["errors_total"] = total
                raise refusal
        revision = writer.revision if writer.written and not dry_run else None
        return BatchResult(revision, diff)


@dataclass
class _Kept:
    """What a replace-mode batch names: its entries stay (matched, or broken lines)."""

    ids: set[tuple[str, uuid.UUID | None]]
    keys: set[tuple[str, Any]]
    # Where each entry is in the file: its line, or its sheet and row.
    where: dict[tuple[str, uuid.UUID | None], tuple[str | int, ...]]
    # Some lines could not be read: any of them may name an entry deemed unnamed.
    unsure: bool = False

    def unless(self) -> str:
        return " — unless a line that could not be read names it" if self.unsure else ""


def _in_file_order(error: FieldError) -> tuple[int, int, str]:
    """Errors by where they are in the file: line (or row) numbers first, the rest after."""
    numbers = [p for p in error.loc if isinstance(p, int)]
    return (0 if numbers else 1, numbers[0] if numbers else 0, str(error.loc))


def _located(problem: Problem, item: BatchItem, broken: set[tuple[str, Any]]) -> list[FieldError]:
    """The problem's errors at the item's line, naming its entry; references to entries of
    lines that did not parse are dropped (those lines are reported already)."""
    out = []
    for error in _with_prefix(problem, ()):
        if error.type == "reference_error" and error.loc:
            ref = next((r for r in item.kind.references if r.key_field == error.loc[0]), None)
            if ref and (ref.target, item.named.names(ref)) in broken:
                continue
        out.append(FieldError((*item.location, *error.loc), error.msg, error.type, item.label))
    return out


async def _apply_one(
    writer: RevisionWriter,
    index: EntryIndex,
    item: BatchItem,
    seen: dict[tuple[str, Any], BatchItem],
) -> tuple[DiffRow, dict[str, Any]]:
    """The item written (or found unchanged): its diff row and its column values."""
    kind, key = item.kind, item.key
    if key is None:
        row = await _row_by_id(writer, item)
        marker: tuple[str, Any] = (kind.name, ("id", row.id))
    else:
        marker = (kind.name, key if kind.natural_key_global else (item.owner, key))
        row = index.existing(kind, item.owner, key)
    first = seen.setdefault(marker, item)
    if first is not item:
        again = key if key is not None else item.entry_id
        where = " ".join(map(str, first.location))
        raise invalid([FieldError((kind.natural_key,), f"repeats the key {again!r} of {where}")])
    if row is not None and row.owner != item.owner:
        raise conflict(
            f"{kind.natural_key} {key!r} belongs to an entry of {row.owner}",
            errors=[{"loc": [kind.natural_key], "msg": "already used by another owner"}],
        )
    key = key if key is not None else str(row.id)
    if row is not None and _same_source(index, item, row):
        return DiffRow(kind.name, key, Change.UNCHANGED, row.id, (), item.line), {}
    if isinstance(row, Row):  # only its digest was read (`_load_part`): now all of it
        row = await writer.session.get_one(kind.model, row.id)
    values = column_values(writer, index, kind, item.document(), row)
    if row is None:
        values[SOURCE_DIGEST] = item.digest
        written = await writer.create(kind, item.owner, values, None)
        index.learn(kind, item.owner, values, written.entry_id)
        return DiffRow(kind.name, key, Change.CREATED, written.entry_id, (), item.line), values
    # The search text is derived from the other fields: on its own it is not a change.
    changed = tuple(n for n, v in values.items() if n not in SEARCH_TEXT and getattr(row, n) != v)
    if not changed:
        return DiffRow(kind.name, key, Change.UNCHANGED, row.id, (), item.line), values
    values[SOURCE_DIGEST] = item.digest
    await writer.update(kind, row, values)
    return DiffRow(kind.name, key, Change.UPDATED, row.id, changed, item.line), values


def _digest_columns(kind: KindSpec) -> list[Any]:
    """What `_same_source` reads of a current row (and what finds the row again)."""
    model: Any = kind.model
    names = ["id", "owner", kind.natural_key, SOURCE_DIGEST]
    names += [ref.id_field for ref in kind.references]
    names += ["instrument"] if kind.name == CRITERIA else []
    return [getattr(model, name) for name in dict.fromkeys(names)]


async def _load_part(session: AsyncSession, index: EntryIndex, part: Sequence[BatchItem]) -> None:
    """The current rows of a part of the batch: first their digests, then, whole, only the
    rows of the items whose line is not the one the row was written from (a re-import
    of unchanged entries reads a few columns of each, not its documents)."""
    slim = await index.current_rows(session, [i.named for i in part], _digest_columns)
    index.rows = defaultdict(dict)
    index.add_rows(slim)
    same = [i for i in part if (row := _current(index, i)) is not None
            and _same_source(index, i, row)]  # fmt: skip
    kept = [(i.kind, _current(index, i)) for i in same]
    ids = {id(i) for i in same}
    await index.load_rows(session, [i.named for i in part if id(i) not in ids])
    index.add_rows(kept)


def _current(index: EntryIndex, item: BatchItem) -> Any:
    return None if item.key is None else index.existing(item.kind, item.owner, item.key)


def _same_source(index: EntryIndex, item: BatchItem, row: Any) -> bool:
    """The row was last written from this very line (its digest), and what the line's
    references and owner name still stand as they did then: the entry is unchanged,
    known without validating the line again or building its column values.

    Routing parties always take the whole path: their checks (certificates held by other
    owners' parties, operators' confirmations, party ids named twice) look at the whole
    document and at the rest of the batch.
    """
    kind, named = item.kind, item.named
    if row.source_sha256 != item.digest or kind.name == PARTIES:
        return False
    owners = index.owners
    if named.owner != codes.COMMISSION and (
        not owners.is_owner(named.owner)
        or (kind.name == CRITERIA and not owners.takes_part(named.owner, row.instrument))
    ):
        return False  # reported by the whole path
    for ref, key, given in zip(kind.references, named.ref_keys, named.ref_ids, strict=True):
        current = getattr(row, ref.id_field)
        if key is not None:
            found = index.by_key[ref.target].get(key)
            if found is None or found.id != current or not found.serves(named.owner):
                return False
            if given is not None and given != current:
                return False
        elif given is not None:
            found = index.by_id[ref.target].get(given)
            if found is None or given != current or not found.serves(named.owner):
                return False
        elif current is not None:
            return False
    return True


async def _row_by_id(writer: RevisionWriter, item: BatchItem) -> Any:
    """The entry an exported line without a natural key names by its id."""
    kind = item.kind
    if item.entry_id is None:
        raise invalid([FieldError((kind.natural_key,), "is required to match entries in a "
                                  "batch (or the id of an exported entry)")])  # fmt: skip
    row = await writer.session.get(kind.model, item.entry_id)
    if row is None or row.owner != item.owner:
        raise invalid([FieldError(("id",), f"no current {kind.name} entry of "
                                  f"{item.owner} has this id; give the entry a "
                                  f"{kind.natural_key} to create it")])  # fmt: skip
    return row


async def _delete_unnamed(
    writer: RevisionWriter, kind: KindSpec, owner: str, kept: _Kept
) -> tuple[list[DiffRow], list[FieldError]]:
    """Delete the owner's entries the batch no longer names; a remaining referrer is an
    error naming it (and its line, when the batch has it), not a bare integrity error."""
    # Ids and keys first: only the rows that go are read whole.
    model: Any = kind.model
    current = await writer.session.execute(
        select(model.id, getattr(model, kind.natural_key))
        .where(model.owner == owner)
        .order_by(model.id)
    )
    out: list[DiffRow] = []
    errors: list[FieldError] = []
    for entry_id, key in current.all():
        if (kind.name, entry_id) in kept.ids or (key is not None and (kind.name, key) in kept.keys):
            continue
        block = await delete_block(writer.session, kind, entry_id)
        if block.never is not None:
            name = f"{kind.name} {key or entry_id}"
            errors.append(FieldError(("entries", kind.name, str(key or entry_id)),
                                     f"is not in the batch, and {block.never}"
                                     + kept.unless(), "replace_conflict", name))  # fmt: skip
            continue
        if block.referrers:
            for other, referrer in block.referrers:
                other_key = getattr(referrer, other.natural_key) or referrer.id
                loc = kept.where.get((other.name, referrer.id), ("entries", other.name,
                                                                 str(other_key)))  # fmt: skip
                errors.append(FieldError(
                    loc,
                    f"refers to {kind.name} {key or entry_id}, which replace mode would delete "
                    "(the batch no longer names it): keep it in the batch or change this entry"
                    + kept.unless(),
                    "replace_conflict",
                    f"{other.name} {other_key} ({referrer.owner})",
                ))  # fmt: skip
            continue
        await writer.delete(kind, await writer.session.get_one(model, entry_id))
        out.append(DiffRow(kind.name, key, Change.DELETED, entry_id))
    return out, errors


def _with_prefix(problem: Problem, prefix: tuple[str | int, ...]) -> list[FieldError]:
    if problem.errors:
        return [FieldError((*prefix, *e.loc), e.msg, e.type) for e in problem.errors]
    return [FieldError(prefix, problem.detail, problem.slug)]
