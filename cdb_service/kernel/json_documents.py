"""JSON documents edited and compared: Merge Patch (RFC 7396) and JSON Patch (RFC 6902) diffs.

Pure functions on plain JSON values. The registry uses them for `PATCH /{kind}/{id}`
(apply a merge patch to the current document), for the console's edits (the merge
patch between the document a form was opened with and the one it sends), and for the
diff between two versions of an entry (a JSON Patch that turns one into the other, plus a
field-by-field form).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 section 2: objects merge member by member, `null` removes, the rest replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = merge_patch(out.get(name), value)
    return out


def _pointer(path: tuple[str | int, ...]) -> str:
    """RFC 6901: `~` and `/` escaped in each reference token."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def json_patch(before: Any, after: Any, path: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    """An RFC 6902 patch that turns `before` into `after`.

    Objects are compared member by member; lists of equal length item by item (so that
    one changed geo key is one operation); lists of different length are replaced whole,
    which keeps the patch correct without a sequence alignment.
    """
    if before == after and type(before) is type(after):
        return []
    if isinstance(before, dict) and isinstance(after, dict):
        ops: list[dict[str, Any]] = []
        for name in before:
            if name not in after:
                ops.append({"op": "remove", "path": _pointer((*path, name))})
        for name, value in after.items():
            if name not in before:
                ops.append({"op": "add", "path": _pointer((*path, name)), "value": value})
            else:
                ops += json_patch(before[name], value, (*path, name))
        return ops
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        ops = []
        for i, (old, new) in enumerate(zip(before, after, strict=True)):
            ops += json_patch(old, new, (*path, i))
        return ops
    return [{"op": "replace", "path": _pointer(path), "value": after}]


def field_changes(
    before: dict[str, Any], after: dict[str, Any], ignore: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """Top-level fields whose values differ, each with its value before and after."""
    names = [n for n in before if n not in ignore]
    names += [n for n in after if n not in before and n not in ignore]
    return [
        {"field": n, "from": before.get(n), "to": after.get(n)}
        for n in names
        if before.get(n) != after.get(n)
    ]


def merge_patch_between(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7396, the other way: the merge patch that turns `before` into `after` (a
    removed member is null; lists are replaced whole)."""
    patch: dict[str, Any] = {}
    for key in [*before, *(k for k in after if k not in before)]:
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            patch[key] = merge_patch_between(old, new)
        else:
            patch[key] = new
    return patch
