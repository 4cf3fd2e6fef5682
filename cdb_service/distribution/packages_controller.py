"""`GET /api/v1/packages/{party}` and `/next`: the configuration package an access point
imports (`distribution/packages.py`), now, on a date, or the next one ahead."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema
from litestar.params import Parameter
from litestar.response.base import ASGIResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.distribution import package_reads, packages, stores
from cdb_service.distribution.packages import Content, Scope
from cdb_service.kernel import codes
from cdb_service.kernel.calendar import BRUSSELS
from cdb_service.kernel.problems import NOT_FOUND, FieldError, invalid
from cdb_service.security.signing_keys import SigningKeys
from cdb_service.web.conditional import none_match, not_modified
from cdb_service.web.docs import operation, problems

ZIP = "application/zip"
ZIP_FORM = Schema(
    type=OpenAPIType.STRING,
    format=OpenAPIFormat.BINARY,
    description="a ZIP: pmode.xml, truststore.jks/.p12, connectorstore.jks/.p12, "
    "manifest.json and manifest.jws (a detached JWS over manifest.json)",
)
PASSWORD_DOC = (
    "the password of the stores (default `changeit`, as Java's; 6 to "
    f"{stores.MAX_PASSWORD} characters). Never stored or logged. A JKS password protects "
    "the file's integrity only: the certificates in it are public and readable without it"
)
AT_DOC = (
    "the package as it will be at this moment: a date (YYYY-MM-DD, from its start on the "
    "Brussels clock) or an ISO 8601 date-time with an offset; default: now"
)
SCOPE_DOCS = {
    "owner": "carry only this owner's parties (and the party itself); default: the parties "
    "the party exchanges messages with (those offering a service it offers)",
    "whole_network": "carry every routing party, as the CMT's download",
}


def _moment(value: str | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            moment = dt.datetime.combine(day, dt.time(), BRUSSELS)
        else:
            moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise invalid([FieldError(("query", "at"), "not a date (YYYY-MM-DD) or an ISO 8601 "
                                  "date-time")]) from None  # fmt: skip
    if not 2000 <= moment.year <= 2199:
        raise invalid([FieldError(("query", "at"), "outside the years 2000 to 2199")])
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=BRUSSELS)
    return moment.astimezone(dt.UTC)


def _password(value: str) -> str:
    # The value is never echoed: a problem names the rule it breaks, not what was sent.
    if not 6 <= len(value) <= stores.MAX_PASSWORD:
        raise invalid([FieldError(("query", "store_password"),
                                  f"must be 6 to {stores.MAX_PASSWORD} characters")])  # fmt: skip
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise invalid([FieldError(("query", "store_password"), "holds a control character")])
    return value


def _scope(party: str, owner: str | None, whole_network: bool) -> Scope:
    if owner is not None and whole_network:
        raise invalid([FieldError(("query", "owner"),
                                  "owner and whole_network=true exclude each other")])  # fmt: skip
    if owner is not None:
        try:
            owner = codes.owner_code(owner)
        except ValueError as error:
            raise invalid([FieldError(("query", "owner"), str(error))]) from None
    return Scope(party, owner, whole_network)


def etag(made: Content) -> str:
    """Weak: the same content comes in new bytes each time (PKCS#12 salts, the manifest's
    generated_at). The store password is not part of it."""
    return f'W/"{made.digest}"'


def _answer(
    request: Request[Any, Any, Any], made: Content, signing: SigningKeys, password: str
) -> ASGIResponse:
    tag = etag(made)
    if none_match(request.scope, tag):
        return not_modified(tag)
    package = packages.write(made, signing, password, dt.datetime.now(dt.UTC))
    day = made.effective_from.date().isoformat() if made.effective_from else "initial"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", made.scope.party)  # a header-safe file name
    headers = {
        "ETag": tag,
        "Cache-Control": "no-store",  # the stores are sealed with the caller's password
        "Content-Disposition": f'attachment; filename="{stem}-{day}.zip"',
        "CDB-Package-Digest": package.digest,
    }
    return ASGIResponse(body=package.body, media_type=ZIP, headers=headers)


RESPONSES = {
    200: ResponseSpec(
        data_container=bytes,
        media_type=ZIP,
        description="the package (ZIP)",
        generate_examples=False,
    ),
    304: ResponseSpec(data_container=None, description="unchanged since the ETag"),
}


class PackagesController(Controller):
    path = "/packages"
    tags = ["packages"]  # noqa: RUF012

    @get(
        "/{party:str}",
        summary="A routing party's configuration package (PMode, truststores, signed manifest)",
        description=(
            "What an access point imports, as the CMT's download: a ZIP with the Domibus "
            "PMode whose own party is `party` (valid against Domibus's domibus-pmode.xsd), "
            "the gateway truststore and the connectorstore as JKS and PKCS#12, "
            "`manifest.json` (party, owner, revision, effective_from, every file's SHA-256, "
            "the certificates with their windows and aliases) and `manifest.jws`, a "
            "detached JWS over it made with the keys of `/.well-known/jwks.json`. A "
            "certificate is in the stores from its accept_from until its accept_until; the "
            "one in use has the party's name as alias. The weak `ETag` names the content "
            "(`CDB-Package-Digest`); `If-None-Match` → 304."
        ),
        responses={**RESPONSES, **problems(404, 422)},
        operation_class=operation(forms={ZIP: ZIP_FORM}),
    )
    async def package(
        self,
        request: Request[Any, Any, Any],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        signing: NamedDependency[SigningKeys],
        party: str = Parameter(description="the routing party's name (its Domibus party)"),
        at: str | None = Parameter(default=None, description=AT_DOC),
        owner: str | None = Parameter(default=None, description=SCOPE_DOCS["owner"]),
        whole_network: bool = Parameter(default=False, description=SCOPE_DOCS["whole_network"]),
        store_password: str = Parameter(default="changeit", description=PASSWORD_DOC),
    ) -> ASGIResponse:
        password = _password(store_password)
        scope = _scope(party, owner, whole_network)
        moment = _moment(at)
        made = await _built_async(scope, package_reads.at(sessions, scope, moment))
        return _answer(request, made, signing, password)

    @get(
        "/{party:str}/next",
        summary="The next configuration package of a routing party (effective_from ahead)",
        description=(
            "The first package after now whose content differs from the one in force (a "
            "certificate accepted, used or dropped; a party's validity beginning or "
            "ending), with its `effective_from`, so an agent fetches ahead and switches "
            "on time. 404 when the registry knows of no change ahead."
        ),
        responses={**RESPONSES, **problems(404, 422)},
        operation_class=operation(forms={ZIP: ZIP_FORM}),
    )
    async def next_package(
        self,
        request: Request[Any, Any, Any],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        signing: NamedDependency[SigningKeys],
        party: str = Parameter(description="the routing party's name (its Domibus party)"),
        owner: str | None = Parameter(default=None, description=SCOPE_DOCS["owner"]),
        whole_network: bool = Parameter(default=False, description=SCOPE_DOCS["whole_network"]),
        store_password: str = Parameter(default="changeit", description=PASSWORD_DOC),
    ) -> ASGIResponse:
        password = _password(store_password)
        scope = _scope(party, owner, whole_network)
        now = dt.datetime.now(dt.UTC)
        made = await _built_async(scope, package_reads.following(sessions, scope, now))
        if made is None:
            raise NOT_FOUND(f"no change ahead for {party!r}: the current package stays in force")
        return _answer(request, made, signing, password)


async def _built_async(scope: Scope, reading: Any) -> Any:
    try:
        return await reading
    except packages.NoSuchParty:
        raise NOT_FOUND(f"{scope.party!r} is not a routing party valid then") from None
    except packages.Inexpressible as why:
        reason = f"{scope.party!r} cannot be expressed as a valid PMode: {why}; its owner "
        raise invalid([FieldError(("path", "party"), reason + "must correct it")]) from None
