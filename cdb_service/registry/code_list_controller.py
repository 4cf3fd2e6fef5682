"""`GET /api/v1/code-lists[/{name}]`: the vocabularies entries are validated against."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get
from litestar.params import FromPath

from cdb_service.kernel.codes import CODE_LISTS
from cdb_service.kernel.problems import Problem


class CodeListController(Controller):
    path = "/code-lists"
    tags = ["code lists"]  # noqa: RUF012

    @get("/", summary="Names of the code lists")
    async def names(self) -> dict[str, Any]:
        return {"items": sorted(CODE_LISTS)}

    @get("/{name:str}", summary="One code list: code and English label")
    async def one(self, name: FromPath[str]) -> dict[str, Any]:
        values = CODE_LISTS.get(name)
        if values is None:
            raise Problem(
                404, "Not found", f"no code list {name!r}; see /api/v1/code-lists", "not-found"
            )
        return {"name": name, "items": [{"code": c, "label": label} for c, label in values.items()]}
