"""Every kind the console lists has a title: a kind added without one showed an empty
link in every page's navigation (axe: link-name)."""

from cdb_service.console.web import TITLES
from cdb_service.registry.kinds import KINDS


def test_every_kind_has_a_console_title() -> None:
    assert set(TITLES) == set(KINDS)
    assert all(title.strip() for title in TITLES.values())
