"""`/schema`: the API documentation, rendered by Swagger UI from the installed
`swagger-ui-py` package and served by this service.

Litestar's own render plugins load their JavaScript from a public CDN, which a closed
government network cannot reach (a blank page). This plugin serves a page of ours;
its script (`/assets/api-docs.js`, ours too) starts Swagger UI from
`/assets/swagger-ui/…`, the files of the installed wheel, never copied here.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.openapi.plugins import OpenAPIRenderPlugin

from cdb_service.web.pages import render_template


class OfflineApiDocs(OpenAPIRenderPlugin):
    def __init__(self) -> None:
        super().__init__(path="/")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        info = openapi_schema.get("info", {})
        return render_template("api-docs.html", {
            "title": info.get("title", "API"), "version": info.get("version", ""),
            "spec_url": self.get_openapi_json_route(request),
        }).encode()  # fmt: skip
