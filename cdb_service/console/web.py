"""The console's HTTP plumbing: its templates, the session cookie, CSRF, and who is asking.

Cookies: the session's is `__Host-` (Secure, Path=/, no Domain), HttpOnly and
SameSite=Strict; the pending sign-in's is SameSite=Lax, because it must come back with
the identity provider's redirect, which is a navigation from another site. Every form
that changes something carries the session's CSRF token, compared in constant time.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response
from litestar.datastructures import Cookie

from cdb_service.console import i18n
from cdb_service.console.deps import ConsoleParts, console_of
from cdb_service.console.sessions import Session
from cdb_service.kernel.page_headers import PAGE_HEADERS
from cdb_service.kernel.problems import CSRF, FORBIDDEN
from cdb_service.kernel.resources import packaged
from cdb_service.registry.kinds import KINDS
from cdb_service.security.consultations import Viewer
from cdb_service.security.deps import consultations_of
from cdb_service.security.policy import Principal

SESSION_COOKIE = "__Host-cdb-console"
SIGN_IN_COOKIE = "__Host-cdb-console-sign-in"
BRUSSELS = ZoneInfo("Europe/Brussels")
# Console pages are never stored by a browser or a proxy: they show who is signed in.
HEADERS = PAGE_HEADERS | {"Cache-Control": "no-store"}
N_ = i18n.N_
# Each kind's title, in English: translated where it is shown (`title_of`).
TITLES = {
    "authorities": N_("Authorities"), "national-correspondents": N_("National correspondents"),
    "national-members": N_("National members"),
    "jurisdiction-criteria": N_("Jurisdiction criteria"),
    "routing-parties": N_("Routing parties"), "maintenance-windows": N_("Maintenance windows"),
    "incidents": N_("Incidents"), "owners": N_("Owners and participation"),
}  # fmt: skip


def title_of(kind: str) -> str:
    """A kind's title in the request's language."""
    return i18n.gettext(TITLES[kind]) if kind in TITLES else kind


class NotSignedIn(Exception):
    """No live session: the person is sent to the sign-in page."""


class WritesLapsed(Exception):
    """A live session whose access token has expired and could not be renewed: it may
    read, but a change needs a fresh sign-in (nothing is changed)."""


def shown(value: Any) -> str:
    """A value as a clerk reads it: text as is, lists and objects as JSON with accents."""
    if value is None:
        return i18n.gettext("(none)")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def changed_rows(fields: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    """A diff's changed fields, objects opened member by member (`address.street`), so that
    the one changed line is not lost in a whole address."""
    rows: list[tuple[str, Any, Any]] = []

    def walk(path: str, before: Any, after: Any) -> None:
        if isinstance(before, dict) and isinstance(after, dict):
            for key in [*before, *(k for k in after if k not in before)]:
                if before.get(key) != after.get(key):
                    walk(f"{path}.{key}", before.get(key), after.get(key))
        else:
            rows.append((path, before, after))

    for change in fields:
        walk(str(change["field"]), change["from"], change["to"])
    return rows


@cache
def _environment(language: str) -> Environment:
    """The templates, speaking `language` (one environment a language: jinja's i18n
    extension installs one catalogue into an environment)."""
    own, shared = (
        packaged("cdb_service.console", "templates"),
        packaged("cdb_service.web", "templates"),
    )
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(own), FileSystemLoader(shared)]),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # `{% trans %}` blocks are one line in the catalogue, however the template wraps them.
    env.policies["ext.i18n.trimmed"] = True
    catalogue = i18n.translations(language)
    env.install_gettext_translations(catalogue, newstyle=True)  # type: ignore[attr-defined]
    # Text made elsewhere (the API's sentences, a code): the catalogue's, where it has it.
    env.globals["say"] = env.filters["say"] = i18n.sayer(catalogue)
    env.filters["when"] = i18n.when
    env.filters["number"] = i18n.number
    env.filters["shown"] = shown
    env.globals["changed_rows"] = changed_rows
    env.globals["titles"] = {kind: catalogue.gettext(title) for kind, title in TITLES.items()}
    env.globals["kinds"] = list(KINDS)
    env.globals["languages"] = dict(i18n.language_names(language))
    env.globals["interface_languages"] = i18n.names_of_languages()
    return env


def page(template: str, context: Mapping[str, Any], status_code: int = 200,
         cookies: list[Cookie] | None = None,
         headers: Mapping[str, str] | None = None) -> Response[str]:  # fmt: skip
    speech = i18n.current()
    body = _environment(speech.language).get_template(template).render(speech=speech, **context)
    return Response(body, status_code=status_code, media_type="text/html",
                    headers={**(headers or {}), **HEADERS}, cookies=cookies or [])  # fmt: skip


def session_cookie(value: str, max_age: int) -> Cookie:
    return Cookie(key=SESSION_COOKIE, value=value, path="/", secure=True, httponly=True,
                  samesite="strict", max_age=max_age)  # fmt: skip


def sign_in_cookie(value: str, max_age: int) -> Cookie:
    return Cookie(key=SIGN_IN_COOKIE, value=value, path="/", secure=True, httponly=True,
                  samesite="lax", max_age=max_age)  # fmt: skip


@dataclass(frozen=True)
class User:
    principal: Principal
    session: Session

    @property
    def csrf(self) -> str:
        return self.session.csrf

    @property
    def name(self) -> str:
        return self.principal.person or self.principal.subject


def _require_certificate(request: Request[Any, Any, Any], console: ConsoleParts) -> None:
    if not console.settings.console_require_client_certificate:
        return
    try:
        certificate = console.gate.certificate(request.scope)
        if certificate is not None:
            console.gate.verifier.verify(certificate)
            return
    except Exception:  # a rejected certificate is refused like a missing one
        pass
    raise FORBIDDEN(
        i18n.gettext(
            "this console needs your client certificate: install it in your browser and "
            "reload the page"
        )
    )


async def signed_in(request: Request[Any, Any, Any]) -> User:
    """The person behind this request, or NotSignedIn."""
    console = console_of(request.scope)
    _require_certificate(request, console)
    token = request.cookies.get(SESSION_COOKIE)
    session = await console.store.find(token) if token else None
    if session is not None and not session.may_write and session.renewable:
        session = await console.store.renew(session.token, console.signin.renew)
    if session is None:
        raise NotSignedIn()
    principal = console.signin.principal(session.data)
    # Refusals on the way are audited with the person's name (see app.audit_refusals).
    request.scope["user"] = principal
    return User(principal, session)


async def checked_form(
    request: Request[Any, Any, Any], user: User, *, writes: bool = True
) -> dict[str, Any]:
    """The posted form, if it carries this session's CSRF token (a 403 otherwise) and,
    for a change, the session may still write (`WritesLapsed` otherwise)."""
    form = await request.form()
    token = str(form.get("csrf") or "")
    if not hmac.compare_digest(token.encode(), user.csrf.encode()):
        raise CSRF(
            i18n.gettext(
                "the form was not sent from this console page (its security token is "
                "missing or old): open the page again and resend"
            )
        )
    if writes and not user.session.may_write:
        raise WritesLapsed()
    return {k: v for k, v in form.multi_items() if k != "csrf"} | {}


def who(request: Request[Any, Any, Any], user: User) -> Any:
    console = console_of(request.scope)
    state = request.scope.get("state", {})
    return user.principal.who(state.get("request_id"), console.gate.source_address(request.scope))


def viewer(request: Request[Any, Any, Any], user: User) -> Viewer:
    """Who reads on a console page: named persons redacted, or their reading recorded."""
    return Viewer(user.principal, who(request, user), consultations_of(request.scope))


def sign_in_url(path: str) -> str:
    return "/console/sign-in?next=" + quote(path, safe="/")
