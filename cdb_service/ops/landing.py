"""`GET /`: what this service is and where to go next, for a person or a program.

A browser gets a page; `Accept: application/json` gets the same facts as JSON. No
credentials are needed and nothing in it is personal: the version, the registry
revision the lookup index serves, and links.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency

from cdb_service import __version__
from cdb_service.lookup.follower import IndexFollower
from cdb_service.settings import Settings
from cdb_service.web.negotiation import preferred
from cdb_service.web.pages import html_page

JSON, HTML = "application/json", "text/html"


@dataclass(frozen=True)
class Link:
    title: str
    href: str
    about: str


def links(settings: Settings) -> list[Link]:
    found = [
        Link("API documentation", "/schema", "every route, its parameters and its answers"),
        Link("Administrators' console", "/console/",
             "sign in to keep your state's entries complete, exact and current"),
        Link("OpenAPI document", "/schema/openapi.json",
             "the contract, for generating clients (also committed as openapi.yaml)"),
        Link("Readiness", "/health/ready",
             "whether this instance serves current data (database, lookup index, gazetteer)"),
        Link("Liveness", "/health/live", "whether the process answers"),
        Link("Extract-signing keys", "/.well-known/jwks.json",
             "the public keys that sign extracts, for verifying them"),
    ]  # fmt: skip
    if settings.status_page_url:
        found.insert(3, Link("Status page", settings.status_page_url,
                             "availability against the 99 % yearly target, incidents, "
                             "maintenance"))  # fmt: skip
    return found


class LandingController(Controller):
    path = "/"
    include_in_schema = False

    @get("/", summary="What this service is, and links to its documentation and health")
    async def landing(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        lookup: NamedDependency[IndexFollower],
    ) -> Response[Any]:
        index = lookup.index
        info: dict[str, Any] = {
            "service": "cdb-service",
            "title": "Competent-authorities Database (CDB) of JUDEX",
            "version": __version__,
            "revision": index.revision if index is not None else None,
            "profile": settings.profile.value,
            "links": [asdict(link) for link in links(settings)],
        }
        if preferred(request.scope, (HTML, JSON)) == JSON:
            return Response(info, media_type=JSON, headers={"Cache-Control": "no-cache"})
        return html_page("landing.html", {"info": info})
