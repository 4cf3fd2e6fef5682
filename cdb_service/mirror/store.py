"""The replica's local state: its head, whose database it is, and writing to it.

Every write goes through the replica writer (`cdb_service/db/replica.py`), which
takes the registry lock as the service's own writer does; nothing here touches
the registry tables directly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db import replica
from cdb_service.db import revisions as rev
from cdb_service.db.revisions import Revision
from cdb_service.distribution.extracts import ExtractVerifier, Verdict
from cdb_service.logging import get_logger
from cdb_service.mirror.config import ACTOR_PREFIX
from cdb_service.mirror.errors import Diverged, ExtractRefused, ForeignDatabase
from cdb_service.registry.kinds import APPLY_ORDER, KINDS

log = get_logger("cdb.mirror")


@dataclass(frozen=True)
class Loaded:
    revision: int
    entries: int
    detail: str


def _refused(verdict: Verdict) -> ExtractRefused:
    where = f" (line {verdict.line})" if verdict.line else ""
    return ExtractRefused(f"the extract does not verify{where}: {verdict.detail}")


@dataclass
class ReplicaStore:
    sessions: async_sessionmaker[AsyncSession]
    actor: str

    async def local_state(self) -> tuple[int, str | None]:
        """The mirror's head revision and the actor of its newest revision."""
        async with rev.read_snapshot(self.sessions) as session:
            head = await rev.head_revision(session)
            actor = await session.scalar(
                select(Revision.actor).order_by(Revision.revision.desc()).limit(1)
            )
        return head, actor

    async def needs_extract(self) -> bool:
        """True for an empty database or another source's mirror; refuses anything else's."""
        head, actor = await self.local_state()
        if actor is not None and not actor.startswith(ACTOR_PREFIX):
            raise ForeignDatabase(
                f"the database holds revisions written by {actor!r}: it is a registry of its "
                "own, not a mirror; refusing to change it"
            )
        if actor is not None and actor != self.actor:
            log.warning("mirror of another source; re-extracting", was=actor, now=self.actor)
            return True
        return head == 0 and actor is None

    async def load_extract(
        self, lines: AsyncIterator[bytes], keys: Callable[[], Awaitable[KeySet]]
    ) -> Loaded:
        """Verify and load a streamed extract in one transaction; refused means unchanged.

        Lines are checked as they arrive (chain), each entry is handed to the replica
        writer, and the trailer (digest, count, signature against `keys()`, asked for
        once the last line is in) is checked before the transaction commits. One line
        is held back at a time: the last one is the trailer.
        """
        verifier = ExtractVerifier()
        first = await anext(lines, None)
        if first is None:
            raise ExtractRefused("the extract is empty")
        failed = verifier.line(first)
        if failed is not None:
            raise _refused(failed)
        header = _header(first)
        revision = int(header["revision"])
        try:
            async with replica.load_extract(
                self.sessions, self.actor, revision, [KINDS[name] for name in APPLY_ORDER]
            ) as load:
                held: bytes | None = None
                async for raw in lines:
                    if held is not None:
                        await self._entry(verifier, held, load)
                    held = raw
                if held is None:
                    raise ExtractRefused("the extract has no trailer (truncated?)")
                verdict = verifier.trailer(held, await keys())
                if not verdict.ok:
                    raise _refused(verdict)
        except (IntegrityError, DataError) as error:
            raise ExtractRefused(f"the extract does not fit the schema: {error.orig}") from error
        return Loaded(revision, load.entries, verdict.detail)

    async def _entry(
        self, verifier: ExtractVerifier, raw: bytes, load: replica.ExtractLoad
    ) -> None:
        failed = verifier.line(raw)
        if failed is not None:
            raise _refused(failed)
        number = verifier.lines
        try:
            entry = json.loads(raw)
            document = entry["document"]
            if entry.get("type") != "entry" or entry["kind"] not in KINDS:
                raise ValueError("not an entry of a known kind")
            if (document["version"], document["revision"]) != (entry["version"], entry["revision"]):
                raise ValueError("the line and its document disagree")
            await load.add(entry["kind"], document, len(raw))
        except (ValueError, KeyError, TypeError, Diverged) as error:
            raise ExtractRefused(f"line {number}: {error}") from error

    async def apply_revision(self, head: int, revision: int, changes: list[dict[str, Any]]) -> None:
        """One source revision in one transaction, the head moved to it in the same one."""
        await replica.apply_revision(self.sessions, self.actor, head, revision, changes, KINDS)


def _header(line: bytes) -> dict[str, Any]:
    """The snapshot line, which must announce the whole registry as this version knows it."""
    try:
        header: dict[str, Any] = json.loads(line)
        revision = int(header["revision"])
    except (ValueError, KeyError, TypeError) as error:
        raise ExtractRefused(f"line 1 is not a snapshot line: {error}") from error
    kinds = set(header.get("kinds") or ())
    if header.get("type") != "snapshot" or header.get("owner") or kinds != set(KINDS):
        raise ExtractRefused(
            "the extract is not of the whole registry as this version knows it (owner "
            f"{header.get('owner')!r}, missing {sorted(set(KINDS) - kinds)}, "
            f"unknown {sorted(kinds - set(KINDS))})"
        )
    if revision < 0:
        raise ExtractRefused(f"line 1: revision {revision}")
    header["revision"] = revision
    return header
