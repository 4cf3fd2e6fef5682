"""A kind's declaration is checked when it is made, and making it changes nothing else.

The schema drops what the server sets (a client may send back what it read); the
schema declares that list and the `KindSpec` names the same fields: a kind whose two
lists disagree is refused at import, not found later as a client value silently kept.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.maintenance_windows.schemas import MaintenanceWindowIn


def test_a_schema_that_does_not_drop_what_the_server_sets_is_refused() -> None:
    windows = KINDS["maintenance-windows"]

    class Forgetful(MaintenanceWindowIn):
        server_set: ClassVar[frozenset[str]] = frozenset({"announced_at"})

    with pytest.raises(TypeError, match=r"Forgetful\.server_set must be"):
        dataclasses.replace(windows, schema=Forgetful)


def test_declaring_a_kind_leaves_its_schema_as_it_was() -> None:
    windows = KINDS["maintenance-windows"]
    before = MaintenanceWindowIn.server_set
    with pytest.raises(TypeError):  # the derived fields left out of the SPEC only
        dataclasses.replace(windows, derived=())
    assert MaintenanceWindowIn.server_set == before


def test_what_the_server_sets_is_dropped_from_a_client_s_document() -> None:
    windows = KINDS["maintenance-windows"]
    sent = {
        "owner": "DE", "component": "cdb", "reason": "upgrade",
        "starts_at": "2031-03-03T08:00:00Z", "ends_at": "2031-03-03T09:00:00Z",
        "announced_at": "2020-01-01T00:00:00Z", "notice_met": False,
    }  # fmt: skip
    document = windows.schema.model_validate(sent)
    assert "announced_at" not in document.model_fields_set
    assert "notice_met" not in document.model_dump()
