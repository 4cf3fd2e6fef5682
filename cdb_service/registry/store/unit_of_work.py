"""The unit of work of every registry write: one revision, its audit event, errors as problems.

`UnitOfWork` wraps `db.revisions.write_revision`: a write that commits carries its
audit event in the same transaction; one that is refused is audited in a
transaction of its own. Database-level refusals (a stale version, a broken
reference, a duplicate) come out as the problem a client can act on.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db import revisions as rev
from cdb_service.db.faults import DatabaseFault, classify
from cdb_service.db.revisions import RevisionWriter, StaleVersionError
from cdb_service.kernel.problems import Problem, conflict, stale
from cdb_service.security import audit
from cdb_service.security.audit import Who, as_who


class UnitOfWork:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        who: Who | str,
        summary: str,
        *,
        commit: bool = True,
        bulk: bool = False,
    ) -> None:
        self.sessions, self.who, self.summary = sessions, as_who(who), summary
        self._cm = rev.write_revision(
            sessions,
            self.who.subject,
            summary,
            commit=commit,
            before_commit=self._audit,
            bulk=bulk,
        )

    async def _audit(self, writer: RevisionWriter) -> None:
        targets = sorted({f"{kind}/{entry_id}" for kind, entry_id, _ in writer.written})
        await audit.append(
            writer.session, self.who, self.summary, "ok",
            targets[0] if len(targets) == 1 else f"{len(targets)} entries",
            {"revision": writer.revision, "changes": len(writer.written)},
        )  # fmt: skip

    async def __aenter__(self) -> RevisionWriter:
        try:
            self._writer = await self._cm.__aenter__()
        except Exception as error:
            _raise_fault(error, maybe_applied=False)
            raise
        return self._writer

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        try:
            await self._exit(exc_type, exc, tb)
        except Problem:
            raise
        except Exception as error:
            # Only a fault met during COMMIT leaves the outcome open; before it, the
            # transaction was rolled back (or died with its connection): not applied.
            _raise_fault(error, maybe_applied=self._writer.committing)
            raise
        if exc is not None and not isinstance(exc, Problem):
            _raise_fault(exc, maybe_applied=False)
        return False

    async def _exit(self, exc_type: Any, exc: Any, tb: Any) -> None:
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

    async def _refused(self, problem: Problem) -> None:
        await audit.record(self.sessions, self.who, self.summary, f"rejected-{problem.status}",
                           None, {"detail": problem.detail[:500]})  # fmt: skip


def _raise_fault(error: BaseException, *, maybe_applied: bool) -> None:
    """Re-raise a database fault as `DatabaseFault` (HTTP 503); anything else passes."""
    if isinstance(error, DatabaseFault):
        raise error
    fault = classify(error)
    if fault is not None:
        raise DatabaseFault(fault, maybe_applied=maybe_applied) from error


def _integrity_detail(error: IntegrityError) -> str:
    text = str(error.orig).lower()
    if "foreign key" in text:
        return "the change breaks a reference: another entry still refers to this one"
    if "unique" in text or "duplicate" in text:
        return "the change would duplicate a unique value (a code, name, ref or party id)"
    return "the change conflicts with the registry's integrity rules"
