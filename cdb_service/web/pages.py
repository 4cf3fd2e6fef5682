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

from cdb_service.web.docs import problems

_HERE = Path(__file__).parent
ASSETS = _HERE / "assets"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_ASSET_TYPES = {".css": "text/css", ".svg": "image/svg+xml"}


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def html_page(template: str, context: dict[str, Any], status_code: int = 200) -> Response[str]:
    body = _environment().get_template(template).render(**context)
    return Response(body, status_code=status_code, media_type="text/html",
                    headers=PAGE_HEADERS)  # fmt: skip


def _asset(name: str) -> Response[bytes]:
    path = ASSETS / name
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
