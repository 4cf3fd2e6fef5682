"""HTML pages of the service: one template environment, one stylesheet, one set of headers.

Pages are rendered on the server from `web/templates/` (Jinja2, autoescaped) and load
nothing but this service's own `/assets/`: the CDB runs in closed networks, and the
Content-Security-Policy forbids inline script and every other origin.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Controller, Response, get
from litestar.exceptions import NotFoundException

from cdb_service.kernel.page_headers import PAGE_HEADERS
from cdb_service.kernel.resources import packaged
from cdb_service.web.docs import problems

ASSETS = packaged("cdb_service.web", "assets")
# For any other HTML the service answers (the API documentation): its own scripts and
# data, never inline code, never another origin.
SCRIPTED_PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_ASSET_TYPES = {".css": "text/css", ".svg": "image/svg+xml", ".js": "text/javascript",
                ".png": "image/png"}  # fmt: skip
# Of the installed Swagger UI, only what /schema loads.
_SWAGGER_UI = frozenset({"swagger-ui-bundle.js", "swagger-ui.css"})


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(packaged("cdb_service.web", "templates")),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_template(template: str, context: dict[str, Any]) -> str:
    return _environment().get_template(template).render(**context)


def html_page(template: str, context: dict[str, Any], status_code: int = 200) -> Response[str]:
    return Response(render_template(template, context), status_code=status_code,
                    media_type="text/html", headers=PAGE_HEADERS)  # fmt: skip


def _asset(name: str, folder: Path = ASSETS) -> Response[bytes]:
    path = folder / name
    kind = _ASSET_TYPES.get(path.suffix)
    if kind is None or path.name != name or not path.is_file():
        raise NotFoundException(f"no asset {name!r}")
    headers = {"Cache-Control": "public, max-age=3600"} | PAGE_HEADERS
    return Response(path.read_bytes(), media_type=kind, headers=headers)


class AssetController(Controller):
    """The stylesheet and icon the pages use, from the installed package."""

    path = "/"
    include_in_schema = False

    @get("/favicon.ico")
    async def favicon(self) -> Response[bytes]:
        """Browsers ask for it on every page, the JSON ones included."""
        return _asset("icon.svg")

    @get("/assets/{name:str}", responses=problems(404))
    async def asset(self, name: str) -> Response[bytes]:
        return _asset(name)

    @get("/assets/swagger-ui/{name:str}", responses=problems(404))
    async def swagger_ui(self, name: str) -> Response[bytes]:
        """The API documentation's renderer, from the installed swagger-ui-py wheel."""

        if name not in _SWAGGER_UI:
            raise NotFoundException(f"no asset {name!r}")
        return _asset(name, packaged("swagger_ui", "static"))
