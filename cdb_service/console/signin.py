"""Sign-in with OpenID Connect: authorization code + PKCE through the configured issuer,
with authlib's client.

Who a person is comes from the ID token (signature, issuer, audience = the console's
client id, nonce, expiry); what they may do comes from the access token, validated
exactly as the API validates one (`TokenValidator`), and turned into a `Principal` by
the same `policy.principal_from_claims`: one rule for roles, whichever door is used.

The access token's expiry ends the session's right to write (`sessions.writes_lapsed`);
`renew` redeems the provider's refresh token for a new access token, and the roles are
read again from it: a right withdrawn at the provider is gone at the next renewal.
"""

from __future__ import annotations

import dataclasses
import hmac
import time
import warnings
from collections import OrderedDict
from typing import Any

import httpx
from authlib.common.security import generate_token

from cdb_service.console.i18n import N_, gettext
from cdb_service.security.policy import Principal, principal_from_claims
from cdb_service.security.tokens import TokenRejected, TokenValidator
from cdb_service.settings import Settings

DISCOVERY_TTL_S = 300.0


class SignInFailed(Exception):
    """The sign-in cannot complete; the message is safe to show to the person. It is the
    catalogue's key (English, marked with `N_`) with its values apart, so that the sign-in
    page says it in the person's language (`said`); the values (a provider's own words,
    a network error) stay as they came."""

    def __init__(self, message: str, **values: str) -> None:
        super().__init__(message.format(**values))
        self.message, self.values = message, values

    def said(self) -> str:
        """The reason in the request's language."""
        return gettext(self.message).format(**{k: gettext(v) for k, v in self.values.items()})


@dataclasses.dataclass
class OidcSignIn:
    settings: Settings
    validator: TokenValidator
    _metadata: dict[str, Any] | None = None
    _fetched_at: float = 0.0

    def _verify(self) -> str | bool:
        ca = self.settings.oidc_ca_file
        return str(ca) if ca else True

    async def metadata(self) -> dict[str, Any]:
        """The issuer's discovery document (cached for a few minutes)."""
        if self._metadata is None or time.monotonic() - self._fetched_at > DISCOVERY_TTL_S:
            url = self.settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                async with httpx.AsyncClient(verify=self._verify(), timeout=5.0) as http:
                    answer = await http.get(url)
                    answer.raise_for_status()
                    self._metadata = dict(answer.json())
            except (httpx.HTTPError, ValueError) as error:
                raise SignInFailed(
                    N_("the identity provider did not answer ({error})"), error=str(error)
                ) from None
            self._fetched_at = time.monotonic()
        return self._metadata

    def _client(self, redirect_uri: str | None) -> Any:
        # Imported when first needed, its notice about a successor of httpx silenced: it
        # would otherwise be printed by every command of the CLI, which imports the app.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from authlib.integrations.httpx_client import AsyncOAuth2Client

        return AsyncOAuth2Client(
            client_id=self.settings.console_client_id,
            client_secret=self.settings.console_client_secret or None,
            token_endpoint_auth_method=(
                "client_secret_basic" if self.settings.console_client_secret else "none"
            ),
            scope=self.settings.console_scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            verify=self._verify(),
            timeout=10.0,
        )

    def _extra(self) -> dict[str, str]:
        resource = self.settings.console_resource
        return {"resource": resource} if resource else {}

    async def begin(self, redirect_uri: str) -> tuple[str, dict[str, Any]]:
        """Where to send the browser, and what to keep until it comes back."""
        endpoint = (await self.metadata()).get("authorization_endpoint")
        if not endpoint:
            raise SignInFailed(N_("the identity provider offers no authorization endpoint"))
        verifier, nonce = generate_token(64), generate_token(32)
        async with self._client(redirect_uri) as client:
            url, state = client.create_authorization_url(
                endpoint, code_verifier=verifier, nonce=nonce, **self._extra()
            )
        pending = {"state": state, "verifier": verifier, "nonce": nonce,
                   "redirect_uri": redirect_uri}  # fmt: skip
        return url, pending

    async def finish(
        self, pending: dict[str, Any], code: str, state: str
    ) -> tuple[dict[str, Any], str | None]:
        """Redeem the code; the session's data (who, roles and until when they hold, the
        ID token for sign-out) and the refresh token, if the provider gave one."""
        if not hmac.compare_digest(state, str(pending["state"])):
            raise SignInFailed(N_("the sign-in answer does not belong to this sign-in (state)"))
        metadata = await self.metadata()
        try:
            async with self._client(str(pending["redirect_uri"])) as client:
                token = await client.fetch_token(
                    metadata["token_endpoint"], grant_type="authorization_code", code=code,
                    code_verifier=pending["verifier"], **self._extra(),
                )  # fmt: skip
        except Exception as error:  # authlib raises its own and httpx's errors
            raise SignInFailed(
                N_("the identity provider refused the code ({error})"), error=str(error)
            ) from None
        try:
            identity = await self._identity(str(token.get("id_token") or ""), pending)
            access = await self.validator.validate(str(token.get("access_token") or ""))
        except TokenRejected as error:
            # The validator's reason is the API's (English); the two of its own are translated.
            raise SignInFailed(
                N_("the identity provider's tokens were not accepted: {why}"), why=str(error)
            ) from None
        person = identity.get("name") or identity.get("preferred_username") or identity["sub"]
        data = {
            "sub": str(identity["sub"]),
            "person": str(person)[:200],
            "id_token": token.get("id_token"),
            "end_session": metadata.get("end_session_endpoint"),
        }
        return data | self._rights(access), str(token.get("refresh_token") or "") or None

    def _rights(self, access: dict[str, Any]) -> dict[str, Any]:
        """What a session keeps of an access token: the role claims, and until when they
        hold (the token's `exp`; the validator has refused a token without one)."""
        return {
            "claims": {k: access[k] for k in self._role_claims() if k in access},
            "access_expires_at": float(access["exp"]),
        }

    async def renew(
        self, data: dict[str, Any], refresh_token: str
    ) -> tuple[dict[str, Any], str] | None:
        """A new access token for this session (`SessionStore.renew`): its data with the
        roles read again, and the refresh token to keep; None if the provider refuses
        (the grant was revoked, the person removed) or sends a token this API refuses.
        An unreachable provider raises SignInFailed."""
        metadata = await self.metadata()
        try:
            async with self._client(None) as client:
                token = await client.refresh_token(
                    metadata["token_endpoint"], refresh_token=refresh_token, **self._extra()
                )
        except httpx.HTTPError as error:
            raise SignInFailed(
                N_("the identity provider did not answer ({error})"), error=str(error)
            ) from None
        except Exception:  # authlib's OAuthError: invalid_grant and the like
            return None
        try:
            access = await self.validator.validate(str(token.get("access_token") or ""))
        except TokenRejected:
            return None
        if str(access.get("sub") or data["sub"]) != data["sub"]:
            return None  # another person's token: never
        kept = str(token.get("refresh_token") or "") or refresh_token
        return data | self._rights(access), kept

    def _role_claims(self) -> tuple[str, ...]:
        return ("sub", "client_id", self.settings.scope_claim, self.settings.owner_claim)

    async def _identity(self, id_token: str, pending: dict[str, Any]) -> dict[str, Any]:
        if not id_token:
            raise TokenRejected(N_("the identity provider sent no ID token"))
        # The API's validator with the console's client id as audience: same keys, same rules.
        checker = dataclasses.replace(
            self.validator, audience=self.settings.console_client_id, _cache=OrderedDict()
        )
        claims = await checker.validate(id_token)
        if not hmac.compare_digest(str(claims.get("nonce") or ""), str(pending["nonce"])):
            raise TokenRejected(N_("the ID token does not belong to this sign-in (nonce)"))
        return claims

    def principal(self, data: dict[str, Any]) -> Principal:
        """The signed-in person as the policy sees every caller."""
        claims = dict(data["claims"]) | {"sub": data["sub"]}
        return principal_from_claims(
            claims, None, self.settings.owner_claim, self.settings.scope_claim, data["person"]
        )
