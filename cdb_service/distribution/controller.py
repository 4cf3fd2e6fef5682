"""`GET /api/v1/extract`, `GET /api/v1/changes` and the signing keys' JWKS."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import Parameter, PathParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service import metrics
from cdb_service.db import personal
from cdb_service.db.revisions import MAX_REVISION
from cdb_service.distribution import feed
from cdb_service.distribution import gazetteer as published
from cdb_service.distribution.answers import (
    ExtractLine,
    FeedPage,
    GazetteerLine,
    GazetteerManifest,
    Jwks,
)
from cdb_service.distribution.extracts import ExtractRequest, kinds_from, stream_extract
from cdb_service.kernel import codes
from cdb_service.kernel.owners import Owners
from cdb_service.kernel.problems import FieldError, bad_parameters, invalid
from cdb_service.lookup.follower import IndexFollower
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.reads import EntryReads
from cdb_service.security import audit
from cdb_service.security.audit import Who
from cdb_service.security.consultations import Viewer
from cdb_service.security.policy import Principal
from cdb_service.security.signing_keys import SigningKeys
from cdb_service.settings import Settings
from cdb_service.web.ceilings import Ceilings
from cdb_service.web.consistency import MIN_REVISION_DOC, require_revision
from cdb_service.web.docs import answer, problem_answers, problems
from cdb_service.web.draining import Drain
from cdb_service.web.negotiation import NDJSON, json_only, ndjson_only
from cdb_service.web.streamed_gzip import OWN_GZIP, gzip_stream

FEED_PARAMETERS = frozenset({"since", "limit", "cursor", "kind", "owner", "wait", "min_revision"})
CHANGES_DOC = (
    "`since=R`: the entry versions after revision R in revision order, at most `limit` "
    "per page. `next` is the revision to pass as `since` for the next page: every "
    "revision up to it has been given whole (with `kind`/`owner`, every version of it "
    "that matches). A revision larger than `limit` is split: the page then ends inside "
    "it, `cursor` is set and `next` stays at the revision before it; ask again with "
    "`since=<next>&cursor=<cursor>` for the rest. A follower that applies revisions "
    "atomically holds the changes of revisions after `next` until a page's `next` "
    "reaches them; it never sees half a revision as whole and never gets a version twice "
    "(a restart that forgets the cursor fetches the held part again, from `next`). "
    "`more`: another page is already waiting. `wait=N` holds the request up to N seconds "
    "until something newer commits. `kind` (repeatable) and `owner` filter; other "
    "parameters are refused (400). 410: R is older than the feed keeps — take a fresh "
    "extract."
)


def _known_parameters(request: Request[Any, Any, Any], known: frozenset[str]) -> None:
    """Refuse what the route does not take, as the list endpoints do: a misspelt filter
    must not silently widen the answer."""
    errors = [
        FieldError(("query", name), f"unknown parameter; parameters: {', '.join(sorted(known))}")
        for name in request.query_params
        if name not in known
    ]
    if errors:
        raise bad_parameters(errors)


def _owner(value: str, owners: Owners) -> str:
    """A member state, EJ or a registered third country (`kernel/owners.py`)."""
    code = codes.code_of(value)
    if not owners.is_owner(code):
        text = codes.unknown_code(code, "owners", owners.names(), codes.GREECE_HINT)
        raise invalid([FieldError(("query", "owner"), text)])
    return code


class ExtractController(Controller):
    tags = ["extract"]  # noqa: RUF012

    @get(
        "/extract",
        summary="The registry as signed NDJSON from one snapshot",
        description="First line: the snapshot (revision, kinds, owner); then one line per "
        "entry; last line: count, SHA-256 of every byte before it and a JWS (ES256, key "
        "in /.well-known/jwks.json). `revision=R` rebuilds a past snapshot. Gzip on request.",
        responses=problems(400, 406, 422, 429, 503)
        | answer(ExtractLine, "NDJSON: one line per `ExtractLine`", media_type=NDJSON),
        media_type=NDJSON,
        guards=[ndjson_only],
        opt={OWN_GZIP: True},
    )
    async def extract(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[EntryReads],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        signing: NamedDependency[SigningKeys],
        principal: NamedDependency[Principal],
        viewer: NamedDependency[Viewer],
        who: NamedDependency[Who],
        ceilings: NamedDependency[Ceilings],
        settings: NamedDependency[Settings],
        kinds: list[str] | None = Parameter(default=None, description="default: every kind"),
        owner: str | None = Parameter(default=None, description="only this owner's entries"),
        revision: int | None = Parameter(
            default=None,
            ge=0,
            le=MAX_REVISION,
            description="the snapshot as it was at this registry revision (default: the head)",
        ),
        min_revision: int | None = Parameter(
            default=None, ge=0, le=MAX_REVISION, description=MIN_REVISION_DOC
        ),
    ) -> Stream:
        unknown = [k for k in kinds or () if k not in KINDS]
        if unknown:
            raise invalid(
                [FieldError(("query", "kinds"), f"unknown kind(s): {', '.join(unknown)}")]
            )
        # The snapshot is the database's, shared by every worker: R at most its head is there.
        await require_revision(min_revision, reads.head, settings.min_revision_wait_s,
                               settings.retry_after_s)  # fmt: skip
        head = await reads.head()
        if revision is not None and revision > head:
            raise invalid([FieldError(("query", "revision"), f"is after the head revision {head}")])
        target = (
            f"kinds={','.join(kinds or ['*'])} owner={owner or '*'} revision={revision or head}"
        )
        chosen_owner = codes.code_of(owner) if owner else None
        spec = ExtractRequest(kinds_from(kinds), chosen_owner, revision, viewer)
        client = principal.client_key
        body = ceilings.extracts.held_while(
            client, _counted(stream_extract(sessions, signing, spec))
        )
        await audit.record(sessions, who, "extract", "ok", target)
        return gzip_stream(request, body, NDJSON, {"Cache-Control": "no-store"})

    @get(
        "/changes",
        summary="Entry versions after a revision, in pages of at most `limit`, long polling",
        description=CHANGES_DOC,
        responses=problems(400, 406, 410, 422, 429, 503) | answer(FeedPage),
        guards=[json_only],
    )
    async def changes(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        lookup: NamedDependency[IndexFollower],
        reads: NamedDependency[EntryReads],
        principal: NamedDependency[Principal],
        viewer: NamedDependency[Viewer],
        ceilings: NamedDependency[Ceilings],
        drain: NamedDependency[Drain],
        since: int = Parameter(
            ge=0,
            le=MAX_REVISION,
            description="the last revision the client has: the answer holds the versions after it",
        ),
        limit: int = Parameter(
            default=1000,
            ge=1,
            le=10_000,
            description="the most entry versions on this page (a revision may span pages)",
        ),
        cursor: str | None = Parameter(
            default=None,
            description="the previous page's `cursor`, with `since` = its `next`: the rest "
            "of a revision that did not fit in it",
        ),
        kind: list[str] | None = Parameter(
            default=None, description="only these kinds (repeat the parameter for several)"
        ),
        owner: str | None = Parameter(default=None, description="only this owner's entries"),
        wait: int = Parameter(
            default=0,
            ge=0,
            le=feed.MAX_WAIT_S,
            description="long poll: seconds to wait for a revision after `since` before "
            "answering an empty page",
        ),
        min_revision: int | None = Parameter(
            default=None, ge=0, le=MAX_REVISION, description=MIN_REVISION_DOC
        ),
    ) -> dict[str, Any]:
        _known_parameters(request, FEED_PARAMETERS)
        unknown = [k for k in kind or () if k not in KINDS]
        if unknown:
            message = f"unknown kind(s): {', '.join(unknown)}; kinds: {', '.join(KINDS)}"
            raise invalid([FieldError(("query", "kind"), message)])
        after_seq = feed.decode_cursor(cursor, since) if cursor is not None else None
        query = feed.FeedQuery(since, limit, after_seq, kind or None,
                               _owner(owner, await reads.owners())
                               if owner is not None else None)  # fmt: skip
        await require_revision(min_revision, reads.head, settings.min_revision_wait_s,
                               settings.retry_after_s)  # fmt: skip
        retention = dt.timedelta(days=settings.changes_retention_days)
        if wait:
            client = principal.client_key
            with metrics.IN_FLIGHT.labels("long_poll").track_inprogress():
                async with ceilings.long_polls.slot(client):
                    await feed.wait_for_newer(lookup, sessions, since, wait, drain)
        page = await feed.changes_page(sessions, query, retention)
        if viewer.sees_named_persons:  # their private fields resolved (`db.personal`)
            shown = await personal.unseal_in(sessions, [c["document"] for c in page["changes"]])
            for change, document in zip(page["changes"], shown, strict=True):
                change["document"] = document
        for change in page["changes"]:
            private = KINDS[change["kind"]].private_fields
            change["document"] = viewer.visible(change["kind"], private, change["document"],
                                                "changes", change.get("version"))  # fmt: skip
        return page


async def _counted(lines: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """An extract is in flight while it streams, not while its handler runs."""
    with metrics.IN_FLIGHT.labels("extract").track_inprogress():
        async for line in lines:
            yield line


class GazetteerController(Controller):
    path = "/gazetteer"
    tags = ["extract"]  # noqa: RUF012

    @get(
        "/",
        summary="Which gazetteer the service resolves with: every country's load and digest",
        description="`identity` names the whole (the change feed announces it on every "
        "page, and it is part of every resolve ETag); per country the digest of its "
        "places, when and from what they were loaded.",
        responses=problems(406, 503) | answer(GazetteerManifest),
        guards=[json_only],
    )
    async def manifest(
        self, sessions: NamedDependency[async_sessionmaker[AsyncSession]]
    ) -> dict[str, Any]:
        return await published.manifest(sessions)

    @get(
        "/{country:str}",
        summary="One country's gazetteer as a signed extract (NDJSON)",
        description="First line: the country, its digest and load; then one line per "
        "place (postal code, LAU, NUTS 3, LAU name); last line: count, SHA-256 of every "
        "byte before it and a JWS, as in `/extract`.",
        responses=problems(406, 422, 429, 503)
        | answer(GazetteerLine, "NDJSON: one line per `GazetteerLine`", media_type=NDJSON),
        media_type=NDJSON,
        guards=[ndjson_only],
        opt={OWN_GZIP: True},
    )
    async def country(
        self,
        request: Request[Any, Any, Any],
        country: Annotated[str, PathParameter(description="an EU country code (Greece is EL)")],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        signing: NamedDependency[SigningKeys],
        principal: NamedDependency[Principal],
        ceilings: NamedDependency[Ceilings],
    ) -> Stream:
        cc = codes.code_of(country)
        if cc not in codes.COUNTRIES:
            raise invalid([FieldError(("path", "country"),
                                      codes.unknown_code(country, "countries", codes.COUNTRIES,
                                                         codes.GREECE_HINT))])  # fmt: skip
        client = principal.client_key
        body = ceilings.extracts.held_while(
            client, _counted(published.stream_country(sessions, signing, cc))
        )
        return gzip_stream(request, body, NDJSON, {"Cache-Control": "no-store"})


class JwksController(Controller):
    path = "/.well-known"
    tags = ["extract"]  # noqa: RUF012

    @get(
        "/jwks.json",
        summary="Public keys that sign extracts, routing tables, packages and receipts "
        "(current and still-listed retired; each with its certificate in x5c)",
        # Public (outside the gate): only the perimeter's refusals besides the keys.
        responses=answer(Jwks) | problem_answers(400, 414),
    )
    async def jwks(self, signing: NamedDependency[SigningKeys]) -> dict[str, Any]:
        return signing.jwks()
