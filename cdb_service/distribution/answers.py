"""The shapes of the feed page and of the extracts' NDJSON lines, for the OpenAPI document.

An extract is NDJSON, which OpenAPI cannot describe line by line: its media type
carries the schema of one line (`oneOf` the line types, told apart by `type`), and
the operation's description says the order (header, entries, trailer).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal, Union

from pydantic import Field, create_model

from cdb_service.registry.http.answers import Answer, document_model, version_model
from cdb_service.registry.kinds import KINDS

CHAIN = "this line's link in the hash chain over the lines before it"

# One version model per kind, each with its `kind` as a constant: exactly one matches.
Change: Any = Union[tuple(version_model(kind) for kind in KINDS)]  # noqa: UP007


class FeedPage(Answer):
    """Entry versions after `since`, in revision order; follow with `since=next`."""

    since: int
    head: int = Field(description="the registry's head revision when the page was read")
    next: int = Field(description="pass as `since` for the next page")
    cursor: str | None = Field(description="the rest of revision `next + 1` (with since=next)")
    more: bool
    changes: list[Change]  # type: ignore[valid-type]
    gazetteer: str = Field(description="the gazetteer's identity (a load moves it)")


class ExtractHeader(Answer):
    type: Literal["snapshot"]
    revision: int
    generated_at: dt.datetime
    kinds: list[str]
    owner: str | None
    chain: str = Field(description=CHAIN)


def _extract_entry(kind: str) -> Any:
    """An entry line of one kind: its `kind` a constant, its document the kind's own."""
    title = "".join(part.title() for part in kind.split("-"))
    entry: Any = Literal["entry"]
    return create_model(
        f"Extract{title}Line",
        __base__=Answer,
        type=(entry, ...),
        kind=(Literal[kind], ...),  # type: ignore[valid-type,arg-type]
        id=(uuid.UUID, ...),
        version=(int, ...),
        revision=(int, ...),
        document=(document_model(kind), ...),
        chain=(str, Field(description=CHAIN)),
    )


ExtractEntry: Any = Union[tuple(_extract_entry(kind) for kind in KINDS)]  # noqa: UP007


class ExtractTrailer(Answer):
    type: Literal["trailer"]
    count: int = Field(description="how many entry lines came before")
    sha256: str = Field(description="SHA-256 of every byte before this line")
    jws: str = Field(description="compact JWS over count, sha256 and revision (ES256)")


class GazetteerHeader(Answer):
    type: Literal["gazetteer"]
    revision: None
    country: str
    digest: str | None
    loaded_at: dt.datetime | None
    source: str | None
    generated_at: dt.datetime
    chain: str = Field(description=CHAIN)


class GazetteerPlace(Answer):
    type: Literal["place"]
    postal_code: str
    lau: str | None
    nuts3: str
    lau_name: str | None
    chain: str = Field(description=CHAIN)


ExtractLine: Any = Union[ExtractHeader, ExtractEntry, ExtractTrailer]  # noqa: UP007
GazetteerLine = GazetteerHeader | GazetteerPlace | ExtractTrailer


class Jwks(Answer):
    """RFC 7517 JWK set: the keys that sign extracts and routing tables."""

    keys: list[dict[str, Any]]


class GazetteerCountry(Answer):
    country: str
    digest: str
    loaded_at: dt.datetime
    place_count: int
    source: str | None


class GazetteerManifest(Answer):
    identity: str = Field(description="names the whole gazetteer (feed pages, resolve ETags)")
    countries: list[GazetteerCountry]
