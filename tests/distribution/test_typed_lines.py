"""The extract's NDJSON lines and the feed's pages are what openapi.yaml says they are:
each line validates as one of `ExtractLine`'s types (header, an entry of its kind,
trailer), each feed page as `FeedPage` (the contract's models, `distribution/answers.py`)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from cdb_service.distribution.answers import ExtractLine, FeedPage
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.services import Services
from tests.support import factories
from tests.support.api import Api


async def test_extract_lines_and_feed_pages_match_the_contract(
    api: Api, services: Services
) -> None:
    async def create(kind: str, body: dict[str, Any]) -> None:
        await services.writes.create(KINDS[kind], validate(KINDS[kind], body), "test")

    await create("routing-parties", factories.routing_party())
    await create("authorities", factories.authority(routing_party_name="de-ap"))
    await create("jurisdiction-criteria", factories.criterion(ref="c", authority_code="DE:COURT-1"))
    lines_of = TypeAdapter(ExtractLine)
    async with api.client("reader") as c:
        extract = await c.get("/api/v1/extract")
        feed = await c.get("/api/v1/changes", params={"since": 0, "limit": 2})
    assert extract.status_code == 200 and feed.status_code == 200
    lines = [json.loads(line) for line in extract.text.splitlines()]
    parsed = [lines_of.validate_python(line) for line in lines]
    assert [p.type for p in parsed] == ["snapshot", "entry", "entry", "entry", "trailer"]
    assert {p.kind for p in parsed if p.type == "entry"} == {
        "routing-parties", "authorities", "jurisdiction-criteria"
    }  # fmt: skip
    page = FeedPage.model_validate(feed.json())
    assert len(page.changes) == 2 and page.more
