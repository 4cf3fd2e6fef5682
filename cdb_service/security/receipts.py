"""Signed receipts: what a member state keeps as proof of what the registry accepted
(Annex I 5.1(c), non-repudiation).

Every write's answer (an entry created, replaced, changed, reverted or deleted; an
import; a certificate rotation) carries `CDB-Receipt`: a compact JWS signed with the
registry's signing keys (ES256; the JWKS at `/.well-known/jwks.json`, as for extracts),
so it verifies offline, years later, with the key set saved beside it
(`cdb-service verify-receipt`).

One mechanism for every write path (`ReceiptMiddleware`, on the API): it hashes the
request body as it streams in, and when an answer starts with a 2xx status and the
`CDB-Revision` header that every write's answer carries, it adds the receipt of that
revision. The receipt is made from the revision itself, read back after the commit:
whatever path wrote it, it names exactly the entry versions that revision holds. A
refused write has no revision header, hence no receipt. Its payload:

- `revision`, `accepted_at` (the revision's commit time) and `actor`;
- `request_sha256`: the digest of the request body as the registry received it (empty
  for a delete), so the sender's own file proves what it sent;
- `entries_count` and `entries_sha256`: the digest of the revision's entries, one line
  `[kind, id, version, operation]` per entry in write order (compact JSON, newline
  after each), which anyone can recompute from the feed;
- `entries`: those lines themselves, when there are at most `LISTED` (a receipt must fit
  in a header that proxies pass on).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import KeySet
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db import revisions as rev
from cdb_service.logging import get_logger
from cdb_service.security.gate import who_of
from cdb_service.security.signing_keys import SigningKeys, header_of, verify
from cdb_service.web.consistency import REVISION_HEADER
from cdb_service.web.perimeter import SAFE_METHODS

log = get_logger("cdb.receipts")
RECEIPT_HEADER = "CDB-Receipt"
RECEIPT_TYPE = "cdb-receipt+jws"
LISTED = 10


def entry_lines(rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
    """The revision's entries as a receipt names them: [kind, id, version, operation]."""
    return [[str(kind), str(entry_id), int(version), str(operation)]
            for kind, entry_id, version, operation in rows]  # fmt: skip


def _encoded(line: Sequence[Any]) -> bytes:
    """One entry line as `entries_sha256` covers it: compact JSON and a newline."""
    return json.dumps(list(line), separators=(",", ":")).encode() + b"\n"


def entries_digest(lines: Iterable[Sequence[Any]]) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(_encoded(line))
    return digest.hexdigest()


@dataclass
class Receipts:
    keys: SigningKeys
    sessions: async_sessionmaker[AsyncSession]

    async def issue(self, revision: int, actor: str, request_sha256: str) -> str:
        # Streamed and digested as read: a 50,000-entry import's receipt holds ten lines.
        digest, count, listed = hashlib.sha256(), 0, []
        async with self.sessions() as session:
            async for line in rev.stream_written_in(session, revision):
                entry = entry_lines([line])[0]
                digest.update(_encoded(entry))
                count += 1
                if count <= LISTED:
                    listed.append(entry)
            committed = await session.scalar(
                select(rev.Revision.committed_at).where(rev.Revision.revision == revision)
            )
        accepted = committed or dt.datetime.now(dt.UTC)
        payload: dict[str, Any] = {
            "revision": revision,
            "accepted_at": accepted.isoformat(),
            "actor": actor,
            "request_sha256": request_sha256,
            "entries_count": count,
            "entries_sha256": digest.hexdigest(),
        }
        if count <= LISTED:
            payload["entries"] = listed
        return self.keys.sign(payload, typ=RECEIPT_TYPE)


class ReceiptMiddleware:
    """Adds `CDB-Receipt` to every successful write's answer (see the module's text)."""

    def __init__(self, app: ASGIApp, receipts_of: Callable[[Scope], Receipts]) -> None:
        self.app = app
        self.receipts_of = receipts_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        body = hashlib.sha256()  # as it streams in: an import is never held whole

        async def hashed() -> Any:  # the message `receive` gave, whatever its type
            message = await receive()
            if message["type"] == "http.request":
                body.update(message.get("body", b""))
            return message

        async def signed(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                headers = list(message.get("headers", []))
                name = REVISION_HEADER.lower().encode()
                revision = next((v for k, v in headers if k.lower() == name), None)
                if revision is not None and revision.isdigit():
                    receipt = await self._issue(scope, int(revision), body.hexdigest())
                    if receipt is not None:
                        headers.append((RECEIPT_HEADER.lower().encode(), receipt.encode()))
                        message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, hashed, signed)

    async def _issue(self, scope: Scope, revision: int, request_sha256: str) -> str | None:
        """The receipt, or None when it cannot be made now (the database failed between
        the commit and the read-back): the write stands, and its answer must still say
        so; a missing receipt is logged, never turned into an error for a done write."""
        try:
            return await self.receipts_of(scope).issue(revision, who_of(scope).subject,
                                                       request_sha256)  # fmt: skip
        except Exception as error:  # any database or signing failure: see above
            log.warning("receipt not issued", revision=revision, error=repr(error)[:200])
            return None


class ReceiptInvalid(ValueError):
    pass


def verify_receipt(token: str, key_set: KeySet) -> dict[str, Any]:
    """The payload of a receipt, if one of the listed keys made it; otherwise
    `ReceiptInvalid` with the reason in words."""
    try:
        header = header_of(token)
    except (ValueError, IndexError, UnicodeDecodeError):
        raise ReceiptInvalid("not a compact JWS (three base64url parts)") from None
    if header.get("typ") != RECEIPT_TYPE:
        raise ReceiptInvalid(f"not a CDB receipt (typ {header.get('typ')!r})")
    try:
        payload = verify(token, key_set)
    except Exception as error:  # joserfc raises several kinds for a bad signature
        raise ReceiptInvalid(
            f"the signature does not verify with the given keys (kid {header.get('kid')!r}: "
            f"{type(error).__name__})"
        ) from None
    listed = payload.get("entries")
    if listed is not None and entries_digest(listed) != payload.get("entries_sha256"):
        raise ReceiptInvalid("the listed entries do not match entries_sha256")
    return payload
