"""Read your writes across workers: `min_revision=R` holds a read until R is visible.

A write's answer names its revision (in the document, and `CDB-Revision` on every
write). A client that reads through another worker passes it back as `min_revision`;
the read waits, bounded by `Settings.min_revision_wait_s`, until what serves it
(the database for entries, this worker's lookup index for `/resolve` and the feed)
has reached R, and otherwise answers 503 with `Retry-After` rather than an older
state than the client has already seen.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cdb_service.kernel.problems import FieldError, Problem, invalid

REVISION_HEADER = "CDB-Revision"
MIN_REVISION_DOC = (
    "wait (bounded) until this answer reflects at least revision R, e.g. the revision "
    "of your own write; 503 with Retry-After when it cannot in time"
)


def not_reached(revision: int, retry_after: int) -> Problem:
    return Problem(
        503, "Service unavailable",
        f"this server has not reached revision {revision} yet; try again in {retry_after} s",
        "revision-not-reached",
        extra={"min_revision": revision, "retry_after_s": retry_after},
        headers={"Retry-After": str(retry_after)},
    )  # fmt: skip


async def require_revision(
    min_revision: int | None,
    reached: Callable[[int, float], Awaitable[bool]],
    wait_s: float,
    retry_after: int,
    head: Callable[[], Awaitable[int]],
) -> None:
    """Return once `reached(R, wait_s)` says yes; raise the 503 problem otherwise.

    A revision after the database's head has been written by no one (a client learns R
    only from a committed write): that is the client's mistake, 422 at once, not a wait
    and a 503."""
    if min_revision is None:
        return
    latest = await head()
    if min_revision > latest:
        reason = f"is after the head revision {latest}: no write has made it"
        raise invalid([FieldError(("query", "min_revision"), reason)])
    if not await reached(min_revision, wait_s):
        raise not_reached(min_revision, retry_after)
