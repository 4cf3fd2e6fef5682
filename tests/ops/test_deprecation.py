"""A retired API version announced from settings: Deprecation, Sunset, a Link to the successor."""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime

import pytest
from pydantic import ValidationError

from cdb_service.services import Services
from cdb_service.settings import ApiDeprecation, Settings
from tests.support.api import build

DEPRECATED = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
SUNSET = dt.datetime(2028, 1, 31, 23, 59, 59, tzinfo=dt.UTC)


async def test_every_answer_under_a_retired_version_announces_it(
    settings: Settings, services: Services
) -> None:
    notes = "https://cdb.example/api/v2-notes"
    announcement = ApiDeprecation(deprecated_at=DEPRECATED, sunset_at=SUNSET,
                                  successor="/api/v2/", info=notes)  # fmt: skip
    retired = settings.model_copy(update={"api_deprecations": {"/api/v1": announcement}})
    async with build(retired).running() as api, api.client("reader") as c:
        listed = await c.get("/api/v1/authorities")
        missing = await c.get("/api/v1/authorities/00000000-0000-0000-0000-000000000000")
        health = await c.get("/health/live")
    for response in (listed, missing):
        # RFC 9745: the moment it was deprecated, as a Structured Field Date
        assert response.headers["deprecation"] == f"@{int(DEPRECATED.timestamp())}"
        # RFC 8594: an HTTP-date
        assert parsedate_to_datetime(response.headers["sunset"]) == SUNSET
        assert response.headers["sunset"] == "Mon, 31 Jan 2028 23:59:59 GMT"
        link = response.headers["link"]
        assert '</api/v2/>; rel="successor-version"' in link
        assert '<https://cdb.example/api/v2-notes>; rel="deprecation"' in link
    assert listed.status_code == 200 and missing.status_code == 404
    # outside the retired prefix: nothing announced
    assert "deprecation" not in health.headers and "sunset" not in health.headers


async def test_nothing_is_announced_by_default(api: object) -> None:
    async with api.client("reader") as c:  # type: ignore[attr-defined]
        response = await c.get("/api/v1/authorities")
    assert response.status_code == 200
    assert "deprecation" not in response.headers and "sunset" not in response.headers


def test_the_settings_keep_the_twelve_months_promise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CDB_API_DEPRECATIONS",
        '{"/api/v1": {"deprecated_at": "2027-01-01T00:00:00Z",'
        ' "sunset_at": "2028-01-31T23:59:59Z", "successor": "/api/v2/"}}',
    )
    assert Settings().api_deprecations["/api/v1"].sunset_at == SUNSET
    with pytest.raises(ValidationError, match="12 months"):
        ApiDeprecation(deprecated_at=DEPRECATED, sunset_at=DEPRECATED + dt.timedelta(days=180),
                       successor="/api/v2/")  # fmt: skip
    monkeypatch.setenv(
        "CDB_API_DEPRECATIONS",
        '{"v1": {"deprecated_at": "2027-01-01T00:00:00Z",'
        ' "sunset_at": "2028-01-31T23:59:59Z", "successor": "/api/v2/"}}',
    )
    with pytest.raises(ValidationError, match="prefix"):
        Settings()
