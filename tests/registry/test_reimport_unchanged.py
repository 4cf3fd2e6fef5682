"""The same batch imported again: every entry unchanged, no revision, found without
validating each line a second time; and a line that only looks the same (its entry was
changed since, or what it names was) takes the whole path and is answered as before."""

from __future__ import annotations

import json
from typing import Any

from cdb_service.registry.formats.ndjson import apply_parsed, export_lines, parse_lines
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store import batch_items
from cdb_service.registry.store.validation import validate
from cdb_service.services import Services
from tests.support import factories

AUTH = KINDS["authorities"]
CRITERIA = KINDS["jurisdiction-criteria"]


def _lines(count: int) -> list[str]:
    entries: list[tuple[str, dict[str, Any]]] = [
        ("authorities", factories.authority(code=f"DE:R{n:03d}")) for n in range(count)
    ]
    entries += [("jurisdiction-criteria", factories.criterion(authority_code=f"DE:R{n:03d}",
                                                              ref=f"crit-{n}"))
                for n in range(count)]  # fmt: skip
    return list(export_lines(entries))


async def _import(services: Services, lines: list[str]) -> Any:
    return await apply_parsed(services.batches, parse_lines(lines, "DE"), "importer", "DE")


async def test_the_same_batch_again_is_unchanged_without_a_second_validation(
    services: Services, monkeypatch: Any
) -> None:
    lines = _lines(30)
    first = await _import(services, lines)
    assert first.revision == 1 and first.counts()["created"] == 60
    validated_again = 0
    document = batch_items.BatchItem.document

    def counted(self: batch_items.BatchItem) -> Any:
        nonlocal validated_again
        validated_again += 1
        return document(self)

    monkeypatch.setattr(batch_items.BatchItem, "document", counted)
    again = await _import(services, lines)
    assert again.revision is None
    assert again.counts() == {"created": 0, "updated": 0, "deleted": 0, "unchanged": 60}
    assert validated_again == 0
    assert await services.reads.head() == 1
    # A dry run of it in replace mode says the same and deletes nothing.
    dry = await apply_parsed(services.batches, parse_lines(lines, "DE"), "importer", "DE",
                             mode="replace", dry_run=True)  # fmt: skip
    assert dry.counts() == {"created": 0, "updated": 0, "deleted": 0, "unchanged": 60}


async def test_an_entry_changed_since_is_updated_back_by_its_old_line(services: Services) -> None:
    lines = _lines(3)
    await _import(services, lines)
    row = await services.reads.documents([AUTH], "DE")
    target = next(doc for _, doc in row if doc["code"] == "DE:R001")
    changed = factories.authority(code="DE:R001", names={"de": "Umbenannt"})
    await services.writes.update(AUTH, _uuid(target["id"]), validate(AUTH, changed), "editor")
    again = await _import(services, lines)
    assert again.counts() == {"created": 0, "updated": 1, "deleted": 0, "unchanged": 5}
    assert again.revision == 3
    docs = {doc["code"]: doc for _, doc in await services.reads.documents([AUTH], "DE")}
    assert docs["DE:R001"]["names"] == factories.authority()["names"]
    # And now that the batch wrote it again, the next time it is unchanged.
    assert (await _import(services, lines)).counts()["unchanged"] == 6


async def test_a_line_naming_an_entry_that_changed_its_code_is_refused_as_before(
    services: Services,
) -> None:
    lines = _lines(2)
    await _import(services, lines)
    docs = {doc["code"]: doc for _, doc in await services.reads.documents([AUTH], "DE")}
    renamed = factories.authority(code="DE:RENAMED")
    await services.writes.update(AUTH, _uuid(docs["DE:R000"]["id"]), validate(AUTH, renamed), "e")
    # The criterion's line is the same bytes as before, but the code it names is gone.
    criterion_lines = [line for line in lines if json.loads(line)["kind"] == CRITERIA.name]
    from cdb_service.kernel.problems import Problem

    try:
        await _import(services, criterion_lines)
    except Problem as problem:
        assert problem.status == 422
        assert any("DE:R000" in error.msg for error in problem.errors), problem.errors
    else:
        raise AssertionError("a reference to a code no entry has was accepted as unchanged")


def _uuid(text: str) -> Any:
    import uuid

    return uuid.UUID(text)
