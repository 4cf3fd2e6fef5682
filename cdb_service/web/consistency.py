"""Read your writes across workers: `min_revision=R` holds a read until R is visible.

A write's answer names its revision (in the document, and `CDB-Revision` on every
write). A client that reads through another worker passes it back as `min_revision`;
a read from the database (entries, the feed, extracts), which every worker shares,
sees R at once; a read from this worker's lookup index (`/resolve`) waits, bounded by
`Settings.min_revision_wait_s`, until the index has applied R, and otherwise answers
503 with `Retry-After` rather than an older state than the client has already seen.
An R after the database's head was never written: 422.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cdb_service.kernel.problems import REVISION_NOT_REACHED, FieldError, Problem, invalid

REVISION_HEADER = "CDB-Revision"
MIN_REVISION_DOC = (
    "wait (bounded) until this answer reflects at least revision R, e.g. the revision "
    "of your own write; 503 with Retry-After when it cannot in time"
)


def not_reached(revision: int, retry_after: int) -> Problem:
    return REVISION_NOT_REACHED(
        f"this server has not reached revision {revision} yet; try again in {retry_after} s",
        extra={"min_revision": revision, "retry_after_s": retry_after},
        headers={"Retry-After": str(retry_after)},
    )  # fmt: skip


async def require_revision(
    min_revision: int | None,
    head: Callable[[], Awaitable[int]],
    wait_s: float,
    retry_after: int,
    reached: Callable[[int, float], Awaitable[bool]] | None = None,
) -> None:
    """Return once what serves the read has reached `min_revision`; else a problem.

    `head` is the database's head revision. A revision after it has been written by no
    one (a client learns R only from a committed write): the client's mistake, 422 at
    once. Reads from the database, which every worker shares, need nothing more. A read
    served by something that follows the database (this worker's lookup index) names
    it as `reached(R, wait_s)`, which waits, bounded; if it runs out, 503."""
    if min_revision is None:
        return
    latest = await head()
    if min_revision > latest:
        reason = f"is after the head revision {latest}: no write has made it"
        raise invalid([FieldError(("query", "min_revision"), reason)])
    if reached is not None and not await reached(min_revision, wait_s):
        raise not_reached(min_revision, retry_after)


@dataclass(frozen=True)
class ReadYourWrites:
    """`min_revision` for reads that something following the database serves (a worker's
    lookup index), built once at start-up: where the head comes from and how long to wait.

    The service checks a revision against its database's head; a mirror cannot tell a
    revision its source never wrote from one it has not received yet, so its `head`
    says "any" and a revision it lacks is waited for and answered 503 (see `mirror/`).
    """

    head: Callable[[], Awaitable[int]]
    wait_s: float
    retry_after_s: int

    async def require(
        self, min_revision: int | None, reached: Callable[[int, float], Awaitable[bool]]
    ) -> None:
        await require_revision(min_revision, self.head, self.wait_s, self.retry_after_s, reached)
