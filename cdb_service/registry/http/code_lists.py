"""`GET /api/v1/code-lists[/{name}]`: the vocabularies entries are validated against."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from litestar import Controller, get
from litestar.params import PathParameter

from cdb_service.kernel.codes import CODE_FLAGS, CODE_LISTS
from cdb_service.kernel.problems import NOT_FOUND
from cdb_service.registry.http.answers import CodeList, CodeListNames
from cdb_service.web.docs import answer, problems
from cdb_service.web.negotiation import json_only


class CodeListController(Controller):
    path = "/code-lists"
    tags = ["code lists"]  # noqa: RUF012
    guards = [json_only]  # noqa: RUF012

    @get("/", summary="Names of the code lists", responses=problems(406) | answer(CodeListNames))
    async def names(self) -> dict[str, Any]:
        return {"items": sorted(CODE_LISTS)}

    @get(
        "/{name:str}",
        summary="One code list: code and English label",
        description="Instruments also say `eurojust_recipient`: whether Eurojust itself "
        "receives under that instrument (only then may its criteria name member states' "
        "places).",
        responses=problems(404, 406) | answer(CodeList),
    )
    async def one(
        self,
        name: Annotated[str, PathParameter(description="a code list's name, from `/code-lists`")],
    ) -> dict[str, Any]:
        values = CODE_LISTS.get(name)
        if values is None:
            raise NOT_FOUND(f"no code list {name!r}; see /api/v1/code-lists")
        flags: Mapping[str, frozenset[str]] = CODE_FLAGS.get(name, {})
        items = [
            {"code": c, "label": label} | {flag: c in codes for flag, codes in flags.items()}
            for c, label in values.items()
        ]
        return {"name": name, "items": items}
