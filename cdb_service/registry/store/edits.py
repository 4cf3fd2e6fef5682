"""Partial edits, reverts and diffs of one entry: the API's controller and the console both
ask here, so that a merge patch, a revert or a diff means one thing wherever it is made.

The caller decides which version it expects (an `If-Match` header, a form's hidden
version) and writes the result with `EntryWrites.update`, which checks that version
again under the registry lock.
"""

from __future__ import annotations

import uuid
from typing import Any

from cdb_service.db.personal import ERASED
from cdb_service.kernel.json_documents import field_changes, json_patch, merge_patch
from cdb_service.kernel.problems import FieldError, invalid, not_found
from cdb_service.registry.kinds.schemas import EntryIn
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.registry.store.reads import EntryReads
from cdb_service.registry.store.validation import validate
from cdb_service.security import policy
from cdb_service.security.consultations import Viewer
from cdb_service.security.policy import Principal

# What every write changes: left out of diffs, which show what an administrator changed.
BOOKKEEPING = frozenset({"version", "revision", "created_at", "updated_at"})


async def current(reads: EntryReads, spec: KindSpec, entry_id: uuid.UUID) -> dict[str, Any]:
    document = await reads.get(spec, entry_id)
    if document is None:
        raise not_found(spec.name, entry_id)
    return document


def as_input(spec: KindSpec, document: dict[str, Any], changed: set[str] | None = None
             ) -> dict[str, Any]:  # fmt: skip
    """A stored document as the body of a write: references by id, unless the change names
    the reference by its natural key instead (then the old id would contradict it)."""
    data = dict(document)
    for name in spec.private_fields:  # an erased person is no value to write back
        if data.get(name) == ERASED:
            data[name] = None
    for ref in spec.references:
        if changed is not None and ref.key_field in changed and ref.id_field not in changed:
            data.pop(ref.id_field, None)
    return data


def patched(spec: KindSpec, current: dict[str, Any], body: dict[str, Any],
            principal: Principal) -> EntryIn:  # fmt: skip
    """RFC 7396: `current` with `body` merged in, validated whole; the caller may write
    entries of the owner before and after the change."""
    policy.require_write(principal, current["owner"])
    data = validate(spec, merge_patch(as_input(spec, current, set(body)), body))
    policy.require_write(principal, data.owner, current["owner"])
    return data


async def version_document(
    reads: EntryReads,
    spec: KindSpec,
    entry_id: uuid.UUID,
    version: int | None,
    revision: int | None,
    name: str,
) -> dict[str, Any]:
    """One version of an entry, named by its number or by a registry revision."""
    versions = [v for v in await reads.history(entry_id) if v["kind"] == spec.name]
    if not versions:
        raise not_found(spec.name, entry_id)
    if version is not None:
        found = next((v for v in versions if v["version"] == version), None)
        what = f"version {version}"
    elif revision is not None:
        found = next((v for v in versions if v["revision"] <= revision), None)
        what = f"revision {revision}"
    else:
        found, what = versions[0], "the current version"
    if found is None or found["operation"] == "delete":
        raise invalid([FieldError(("query", name), f"{spec.name} entry {entry_id} has no "
                                  f"document at {what}")])  # fmt: skip
    return dict(found["document"])


async def reverted(reads: EntryReads, spec: KindSpec, entry_id: uuid.UUID,
                   version: int | None, revision: int | None) -> EntryIn:  # fmt: skip
    """The document of an earlier version, as a write that makes it current again."""
    old = await version_document(reads, spec, entry_id, version, revision, "version")
    return validate(spec, as_input(spec, old))


def difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Two versions' documents as an RFC 6902 patch and field by field, bookkeeping aside."""
    strip = {k: v for k, v in before.items() if k not in BOOKKEEPING}
    then = {k: v for k, v in after.items() if k not in BOOKKEEPING}
    return {
        "from": {"version": before["version"], "revision": before["revision"]},
        "to": {"version": after["version"], "revision": after["revision"]},
        "patch": json_patch(strip, then),
        "fields": field_changes(strip, then),
    }


async def diff(reads: EntryReads, spec: KindSpec, entry_id: uuid.UUID, viewer: Viewer,
               from_version: int | None, to_version: int | None,
               from_revision: int | None = None, to_revision: int | None = None
               ) -> dict[str, Any]:  # fmt: skip
    """What changed between two versions, as this caller may see them. A diff shows a
    named person only where it changed: then the reading of both versions is recorded."""
    if from_version is None and from_revision is None:
        raise invalid([FieldError(("query", "from"), "give from or from_revision")])
    before = await version_document(reads, spec, entry_id, from_version, from_revision, "from")
    after = await version_document(reads, spec, entry_id, to_version, to_revision, "to")
    if any(before.get(name) != after.get(name) for name in spec.private_fields):
        before, after = (viewer.visible(spec.name, spec.private_fields, d, "diff")
                         for d in (before, after))  # fmt: skip
    else:  # nothing private in the diff, for anyone
        before, after = (policy.redact(d, spec.private_fields) for d in (before, after))
    return difference(before, after)
