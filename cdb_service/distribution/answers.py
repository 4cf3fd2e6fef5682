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

    since: int = Field(description="as asked: the versions are after this revision")
    head: int = Field(description="the registry's head revision when the page was read")
    next: int = Field(description="pass as `since` for the next page")
    cursor: str | None = Field(description="the rest of revision `next + 1` (with since=next)")
    more: bool = Field(description="whether versions after `next` already wait (ask again at once)")
    changes: list[Change] = Field(description="the entry versions, in revision order")  # type: ignore[valid-type]
    gazetteer: str = Field(description="the gazetteer's identity (a load moves it)")


class ExtractHeader(Answer):
    type: Literal["snapshot"] = Field(description="the first line's type")
    revision: int = Field(description="the revision of the snapshot")
    generated_at: dt.datetime = Field(description="when the extract was made")
    kinds: list[str] = Field(description="the kinds it holds")
    owner: str | None = Field(description="the owner it is limited to (null: every owner)")
    chain: str = Field(description=CHAIN)


def _extract_entry(kind: str) -> Any:
    """An entry line of one kind: its `kind` a constant, its document the kind's own."""
    title = "".join(part.title() for part in kind.split("-"))
    entry: Any = Literal["entry"]
    return create_model(
        f"Extract{title}Line",
        __base__=Answer,
        type=(entry, Field(description="an entry line")),
        kind=(Literal[kind], Field(description="the entry's kind")),  # type: ignore[valid-type,arg-type]
        id=(uuid.UUID, Field(description="the entry's id")),
        version=(int, Field(description="the entry's version")),
        revision=(int, Field(description="the registry revision of that version")),
        document=(document_model(kind), Field(description="the entry as of the snapshot")),
        chain=(str, Field(description=CHAIN)),
    )


ExtractEntry: Any = Union[tuple(_extract_entry(kind) for kind in KINDS)]  # noqa: UP007


class ExtractTrailer(Answer):
    type: Literal["trailer"] = Field(description="the last line's type")
    count: int = Field(description="how many entry lines came before")
    sha256: str = Field(description="SHA-256 of every byte before this line")
    jws: str = Field(description="compact JWS over count, sha256 and revision (ES256)")


class GazetteerHeader(Answer):
    type: Literal["gazetteer"] = Field(description="the first line's type")
    revision: None = Field(
        description="always null: the gazetteer is not versioned by registry revisions"
    )
    country: str = Field(description="the country")
    digest: str | None = Field(description="the digest of its places (null: never loaded)")
    loaded_at: dt.datetime | None = Field(description="when they were loaded")
    source: str | None = Field(description="what they were loaded from")
    generated_at: dt.datetime = Field(description="when the extract was made")
    chain: str = Field(description=CHAIN)


class GazetteerPlace(Answer):
    type: Literal["place"] = Field(description="a place line")
    postal_code: str = Field(description="the postal code")
    lau: str | None = Field(description="its local administrative unit")
    nuts3: str = Field(description="the NUTS 3 region it lies in")
    lau_name: str | None = Field(description="the LAU's name")
    chain: str = Field(description=CHAIN)


ExtractLine: Any = Union[ExtractHeader, ExtractEntry, ExtractTrailer]  # noqa: UP007
GazetteerLine = GazetteerHeader | GazetteerPlace | ExtractTrailer


class Jwks(Answer):
    """RFC 7517 JWK set: the keys that sign extracts, routing tables, configuration
    packages and receipts."""

    keys: list[dict[str, Any]] = Field(
        description="the public keys (RFC 7517), each with its certificate chain (x5c)"
    )


class GazetteerCountry(Answer):
    country: str = Field(description="the country")
    digest: str = Field(description="the digest of its places")
    loaded_at: dt.datetime = Field(description="when they were loaded")
    place_count: int = Field(description="how many places")
    source: str | None = Field(description="what they were loaded from")


class GazetteerManifest(Answer):
    identity: str = Field(description="names the whole gazetteer (feed pages, resolve ETags)")
    countries: list[GazetteerCountry] = Field(description="one item per loaded country")
