"""`GET /api/v1/code-lists[/{name}]`: the vocabularies entries are validated against.

Most ship with the code (`kernel/codes.py`). Two are the registry's own, read at the
head revision and answered with it (`revision`): `owners` (the member states, EJ and
the third countries operators registered) and `participation` (which owner takes part
in which instrument; `kernel/owners.py`, kind `owners`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import PathParameter

from cdb_service.kernel.codes import CODE_FLAGS, CODE_LISTS
from cdb_service.kernel.problems import NOT_FOUND
from cdb_service.registry.http.answers import CodeList, CodeListNames, Participation
from cdb_service.registry.store.reads import EntryReads
from cdb_service.web.docs import answer, problems
from cdb_service.web.negotiation import json_only

PARTICIPATION = "participation"
OWNERS = "owners"


class CodeListController(Controller):
    path = "/code-lists"
    tags = ["code lists"]  # noqa: RUF012
    guards = [json_only]  # noqa: RUF012

    @get("/", summary="Names of the code lists", responses=problems(406) | answer(CodeListNames))
    async def names(self) -> dict[str, Any]:
        return {"items": sorted([*CODE_LISTS, PARTICIPATION])}

    @get(
        "/participation",
        summary="Which owner takes part in which instrument",
        description="Every owner (member states, EJ, registered third countries) and the "
        "instruments it takes part in, at the registry's head `revision`. Seeded from the "
        "law (Ireland and Denmark are not bound by the EIO; Denmark not by Regulation (EU) "
        "2018/1727: recitals 12–13 of Implementing Regulation (EU) 2025/2447), kept by "
        "operators as entries of kind `owners` (`/api/v1/owners`, with history and feed). "
        "Criteria for an instrument their owner does not take part in are refused; a "
        "look-up answers `not-participating`.",
        responses=problems(406) | answer(Participation),
    )
    async def participation(self, reads: NamedDependency[EntryReads]) -> dict[str, Any]:
        owners = await reads.owners()
        return {"name": PARTICIPATION, "revision": owners.revision,
                "items": owners.participation()}  # fmt: skip

    @get(
        "/{name:str}",
        summary="One code list: code and English label",
        description="Instruments also say `eurojust_recipient`: whether Eurojust itself "
        "receives under that instrument (only then may its criteria name member states' "
        "places). `owners` lists the third countries operators registered too.",
        responses=problems(404, 406) | answer(CodeList),
    )
    async def one(
        self,
        name: Annotated[str, PathParameter(description="a code list's name, from `/code-lists`")],
        reads: NamedDependency[EntryReads],
    ) -> dict[str, Any]:
        static = CODE_LISTS.get(name)
        if static is None:
            raise NOT_FOUND(f"no code list {name!r}; see /api/v1/code-lists")
        values: Mapping[str, str] = (await reads.owners()).names() if name == OWNERS else static
        flags: Mapping[str, frozenset[str]] = CODE_FLAGS.get(name, {})
        items = [
            {"code": c, "label": label} | {flag: c in codes for flag, codes in flags.items()}
            for c, label in values.items()
        ]
        return {"name": name, "items": items}
