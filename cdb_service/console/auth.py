"""Signing in (OpenID Connect, authorization code + PKCE) and out of the console."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import Redirect

from cdb_service.console import i18n
from cdb_service.console.deps import ConsoleParts
from cdb_service.console.pages import HANDLERS, current_user, safe_next
from cdb_service.console.signin import SignInFailed
from cdb_service.console.web import (
    SIGN_IN_COOKIE,
    checked_form,
    page,
    session_cookie,
    sign_in_cookie,
)
from cdb_service.settings import Profile, Settings


def public_base(request: Request[Any, Any, Any], settings: Settings) -> str:
    """The service's address as browsers reach it: CDB_PUBLIC_URL, never the request's
    Host (behind a proxy that is the proxy's idea of it, or the client's); only the dev
    profile, without the setting, answers to the address it was called at."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    if settings.profile is not Profile.DEV:
        raise SignInFailed("the console's address is not configured (CDB_PUBLIC_URL)")
    return str(request.base_url).rstrip("/")


class ConsoleAuth(Controller):
    path = "/console"
    include_in_schema = False
    exception_handlers = HANDLERS
    before_request = staticmethod(i18n.speak)  # the language the page is answered in

    @get("/sign-in")
    async def sign_in_page(
        self, next_path: str | None = Parameter(query="next", default=None)
    ) -> Response[str]:
        return page("sign-in.html", {"user": None, "next": safe_next(next_path)})

    @get("/auth/start")
    async def start(
        self,
        request: Request[Any, Any, Any],
        console: NamedDependency[ConsoleParts],
        next_path: str | None = Parameter(query="next", default=None),
    ) -> Response[Any]:
        # Each start stores a pending sign-in: counted like a refused request of its
        # address, so that a flood of starts is answered 429 and grows no table.
        limits, source = console.gate.limits, console.gate.source_address(request.scope)
        if limits is not None:
            limits.before_authentication(source or "unknown", None)
            limits.after_refusal(source or "unknown")
        try:
            redirect_uri = public_base(request, console.settings) + "/console/auth/callback"
            url, pending = await console.signin.begin(redirect_uri)
        except SignInFailed as error:
            return page("sign-in.html", {"user": None, "next": "/console/", "failed": str(error)},
                        status_code=502)  # fmt: skip
        pending["next"] = safe_next(next_path)
        started = await console.store.begin_sign_in(pending)
        return Redirect(url, status_code=303, cookies=[sign_in_cookie(started.token, 600)])

    @get("/auth/callback")
    async def callback(
        self,
        request: Request[Any, Any, Any],
        console: NamedDependency[ConsoleParts],
        code: str = "",
        answer_state: str = Parameter(query="state", default=""),
        error: str = "",
        error_description: str = "",
    ) -> Response[str]:
        token = request.cookies.get(SIGN_IN_COOKIE, "")
        pending = await console.store.take_sign_in(token) if token else None
        gone = sign_in_cookie("", 0)
        failed = None
        if error:
            failed = f"the identity provider said: {error} {error_description}".strip()
        elif pending is None:
            failed = "this sign-in has expired or was already used: start again"
        if failed is None and pending is not None:
            try:
                data, refresh_token = await console.signin.finish(pending, code, answer_state)
            except SignInFailed as why:
                failed = str(why)
        if failed is not None or pending is None:
            return page("sign-in.html", {"user": None, "next": "/console/", "failed": failed},
                        status_code=400, cookies=[gone])  # fmt: skip
        session = await console.store.open(data, refresh_token)
        cookie = session_cookie(session.token, console.settings.console_absolute_timeout_s)
        # A page, not a redirect: the SameSite=Strict cookie is sent on the next navigation,
        # which starts here, on this site (after a redirect chain begun by the provider's
        # site, a browser would hold it back).
        context = {"user": None, "next": pending["next"], "person": data["person"]}
        return page("signed-in.html", context, cookies=[gone, cookie])

    @post("/sign-out", status_code=200)
    async def sign_out(self, request: Request[Any, Any, Any],
                       console: NamedDependency[ConsoleParts]) -> Response[Any]:  # fmt: skip
        user = await current_user(request)
        await checked_form(request, user, writes=False)  # signing out is always possible
        await console.store.close(user.session.token)
        gone = session_cookie("", 0)
        end = user.session.data.get("end_session")
        if end and (console.settings.public_url or console.settings.profile is Profile.DEV):
            back = public_base(request, console.settings) + "/console/signed-out"
            query = urlencode({"id_token_hint": user.session.data.get("id_token") or "",
                               "post_logout_redirect_uri": back,
                               "client_id": console.settings.console_client_id})  # fmt: skip
            # A page that moves on by itself, not a redirect: the CSP's form-action would
            # stop a form's redirect to the provider's origin.
            return page("signed-out.html", {"user": None, "provider_url": f"{end}?{query}"},
                        cookies=[gone])  # fmt: skip
        return Redirect("/console/signed-out", status_code=303, cookies=[gone])

    @get("/signed-out")
    async def signed_out(self) -> Response[str]:
        return page("signed-out.html", {"user": None})

    @get("/language", status_code=303)
    async def language(
        self,
        to: str = "",
        next_path: str | None = Parameter(query="next", default=None),
    ) -> Response[Any]:
        """The switch in every page's header: the language chosen is remembered (a cookie,
        like an operator's owner), and the person is back on the page it was chosen on.
        A link, not a form: it changes no data, and works signed out too."""
        cookies = [i18n.language_cookie(to)] if to in i18n.available() else []
        return Redirect(safe_next(next_path), status_code=303, cookies=cookies)

    # --- home ----------------------------------------------------------------------
