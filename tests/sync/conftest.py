"""The served registry every agent test of a module shares (SQLite; the end-to-end
rollover test has its own on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sync.served import Registry, serving


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with serving(tmp_path_factory.mktemp("registry")) as served:
        yield served
