"""What every console page shares: the owner it is about, its context, how an entry is
named, and the pages that answer a refusal or an ended session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.exceptions import NotFoundException
from litestar.response import Redirect

from cdb_service.console.i18n import current, gettext, localised, ngettext
from cdb_service.console.web import (
    NotSignedIn,
    User,
    WritesLapsed,
    page,
    sign_in_url,
    signed_in,
)
from cdb_service.kernel import codes
from cdb_service.kernel.owners import asked_owner
from cdb_service.kernel.problems import Problem
from cdb_service.registry.formats.files import natural_keys
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.kinds.spec import KindSpec
from cdb_service.registry.store.reads import EntryReads


def kind_of(name: str) -> KindSpec:
    spec = KINDS.get(name)
    if spec is None:
        raise NotFoundException(f"no kind {name!r}")
    return spec


def owner_of(user: User, asked: str | None) -> str | None:
    """The owner a page is about: an administrator's own; an operator's choice."""
    mine = user.principal.administers
    if user.principal.is_operator:
        # Operators also own the Commission's records (incidents, its maintenance).
        try:
            return asked_owner(asked or "", commission=True)
        except ValueError:
            return mine
    return mine


# An operator's choice of owner, remembered for the next visit (a choice, not a secret).
OWNER_COOKIE = "__Host-cdb-console-owner"


def chosen_owner(request: Request[Any, Any, Any], user: User, asked: str | None) -> str | None:
    """The owner a page is about: asked in the query, or the operator's last choice."""
    return owner_of(user, asked or request.cookies.get(OWNER_COOKIE))


def owner_cookie(owner: str) -> Cookie:
    return Cookie(key=OWNER_COOKIE, value=owner, path="/", secure=True, httponly=True,
                  samesite="strict", max_age=400 * 24 * 3600)  # fmt: skip


def context_of(user: User, owner: str | None, **more: Any) -> dict[str, Any]:
    owners = {**localised("owners", codes.OWNERS), codes.COMMISSION: gettext("European Commission")}
    return {"user": user, "owner": owner, "owners": owners, **more}


async def with_registered_owners(context: dict[str, Any], reads: EntryReads) -> dict[str, Any]:
    """The context with the registered third countries among the owners offered (the
    home page's picker, the upload form's owner list)."""
    registered = localised("owners", (await reads.owners()).names())
    context["owners"] = registered | context["owners"]
    return context


def label_of(spec: KindSpec, document: dict[str, Any]) -> str:
    if spec.name == "jurisdiction-criteria":
        count = len(document.get("geo") or [])
        places = ngettext("{count} place", "{count} places", count).format(count=count)
        return (f"{document.get('ref') or ''} {document.get('instrument')}, "
                f"{document.get('competence')}: {places}").strip()  # fmt: skip
    names = document.get("names")
    if isinstance(names, dict) and names:
        # The name in the page's language, else English, else the first given.
        first = names.get(current().language) or names.get("en") or next(iter(names.values()))
        return f"{document.get(spec.natural_key) or ''} {first}".strip()
    return str(document.get(spec.natural_key) or document.get("name") or document["id"])


async def key_of(reads: EntryReads, spec: KindSpec, document: dict[str, Any]) -> Any:
    return await natural_keys(reads, {spec.name: [document]})


def problem_page(request: Request[Any, Any, Any], problem: Problem) -> Response[str]:
    user = request.scope.get("console_user")
    titles = {403: gettext("Not allowed"), 404: gettext("Not found"),
              409: gettext("Conflict"), 422: gettext("Not accepted")}  # fmt: skip
    return page("error.html", {"user": user, "owner": None, "problem": problem,
                               "heading": titles.get(problem.status, gettext(problem.title))},
                status_code=problem.status, headers=problem.headers)  # fmt: skip


def to_sign_in(request: Request[Any, Any, Any], _: NotSignedIn) -> Response[Any]:
    if request.method == "GET":
        query = f"?{request.url.query}" if request.url.query else ""
        return Redirect(sign_in_url(request.url.path + query))
    return page(
        "sign-in.html", {"user": None, "next": "/console/", "expired": True}, status_code=401
    )


def to_sign_in_again(request: Request[Any, Any, Any], _: WritesLapsed) -> Response[Any]:
    """A change sent after the provider's access token ran out: refused, nothing changed;
    the person signs in again and comes back to the page the change was sent from."""
    back = request.url.path.removesuffix("/revert")
    return page("sign-in.html", {"user": None, "next": safe_next(back), "lapsed": True},
                status_code=401)  # fmt: skip


async def current_user(request: Request[Any, Any, Any]) -> User:
    user = await signed_in(request)
    request.scope["console_user"] = user  # type: ignore[typeddict-unknown-key]
    return user


def safe_next(value: str | None) -> str:
    """Only a console path: never a redirect to another site."""
    if value and value.startswith("/console/") and not value.startswith("//"):
        return value
    return "/console/"


# Every console controller answers a refusal with a page, and an ended session with
# the sign-in page.
HANDLERS: dict[int | type[Exception], Callable[[Request[Any, Any, Any], Any], Response[Any]]] = {
    Problem: problem_page,
    NotSignedIn: to_sign_in,
    WritesLapsed: to_sign_in_again,
}
