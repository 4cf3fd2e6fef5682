"""The refusals a newcomer meets first each say what is wrong and what to do.

One row per mistake, sent through the whole app (gate, guards, validation) as the dev
profile's clients. Each row asserts the status, that `detail` names the cause (and,
where one exists, the fix), and that a refusal of access is audited with the same
words as its reason.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from sqlalchemy import select

from cdb_service.security.audit import AuditEvent
from cdb_service.security.dev import DevPki, mint_token, token_for
from cdb_service.security.x509 import certificate_facts
from tests.support import factories

AUTHORITIES = "/api/v1/authorities"
RESOLVE = "/api/v1/resolve?country=DE&competence=execute&postal_code=10115"


@dataclass(frozen=True)
class Row:
    name: str
    send: Callable[[Any], Awaitable[Any]]
    status: int
    says: tuple[str, ...]  # every fragment must be in `detail`
    audited: bool


def _other_issuer_token(api: Any) -> str:
    s = api.settings
    return token_for(api.pki, "reader", "https://localhost:9999/dev-issuer", s.oidc_audience,
                     s.owner_claim)  # fmt: skip


def _token(api: Any, **changes: Any) -> str:
    s = api.settings
    pki: DevPki = api.pki
    cert = x509.load_pem_x509_certificate(pki.client_cert("reader").read_bytes())
    claims: dict[str, Any] = {
        "issuer": s.oidc_issuer, "audience": s.oidc_audience, "client": "reader",
        "scope": "cdb.read", "owner": None, "owner_claim": s.owner_claim,
        "thumbprint": certificate_facts(cert).x5t_s256,
    }  # fmt: skip
    return mint_token(pki.signing_keys(), **(claims | changes))


async def _as(api: Any, name: str | None, method: str, url: str, token: str | None = None,
              **kwargs: Any) -> Any:  # fmt: skip
    async with api.client(name, token=token) as client:
        return await client.request(method, url, **kwargs)


ROWS = [
    Row("token from another issuer (the service runs on another port)",
        lambda api: _as(api, "reader", "GET", AUTHORITIES, _other_issuer_token(api)),
        401, ("issued by 'https://localhost:9999/dev-issuer'",
              "accepts tokens issued by 'https://localhost:8443/dev-issuer'",
              "cdb-service dev-token"), True),
    Row("token for another audience",
        lambda api: _as(api, "reader", "GET", AUTHORITIES, _token(api, audience="other-api")),
        401, ("audience 'other-api'", "this service's audience is 'cdb-api'"), True),
    Row("expired token",
        lambda api: _as(api, "reader", "GET", AUTHORITIES, _token(api, lifetime_s=-600)),
        401, ("expired at", "s ago", "dev-token"), True),
    Row("token bound to another client's certificate",
        lambda api: _as(api, "reader", "GET", AUTHORITIES, api.token("admin-fr")),
        401, ("bound to another client certificate", "CN=reader",
              "present the certificate the token was issued for"), True),
    Row("no client certificate",
        lambda api: _as(api, None, "GET", AUTHORITIES,
                        headers={"Authorization": f"Bearer {api.token('reader')}"}),
        401, ("client certificate is required", "--cert"), True),
    Row("no token",
        lambda api: _as(api, "reader", "GET", AUTHORITIES, headers={"Authorization": ""}),
        401, ("bearer access token is required", "Authorization: Bearer"), True),
    Row("not a JWT",
        lambda api: _as(api, "reader", "GET", AUTHORITIES, "not-a-token"),
        401, ("not a JWT",), True),
    Row("a reader writing",
        lambda api: _as(api, "reader", "POST", AUTHORITIES,
                        json=factories.authority("DE", "DE:NEWCOMER-1")),
        403, ("needs the scope cdb.write", "'reader' has cdb.read", "a reader may only read"),
        True),
    Row("an administrator writing another owner's entry",
        lambda api: _as(api, "admin-fr", "POST", AUTHORITIES,
                        json=factories.authority("DE", "DE:NEWCOMER-1")),
        403, ("an administrator of FR cannot change entries of DE",), True),
    Row("an empty body",
        lambda api: _as(api, "admin-de", "POST", AUTHORITIES,
                        headers={"Content-Type": "application/json"}),
        422, ("the request body is empty",), False),
    Row("an unknown code in a body",
        lambda api: _as(api, "admin-de", "POST", AUTHORITIES,
                        json=factories.authority("DE", "DE:NEWCOMER-1") | {"kind": "tribunal"}),
        422, ("'tribunal' is not in the code list 'authority-kinds'", "allowed: ",
              "court"), False),
    Row("an unknown code in a query",
        lambda api: _as(api, "reader", "GET", RESOLVE + "&instrument=eaw2"),
        422, ("'eaw2' is not in the code list 'instruments'", "allowed: ", "eaw, eio"), False),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
async def test_each_refusal_names_its_cause_and_the_fix(api: Any, services: Any, row: Row) -> None:
    answer = await row.send(api)
    assert answer.status_code == row.status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    detail = answer.json()["detail"]
    for fragment in row.says:
        assert fragment in detail, f"{fragment!r} not in {detail!r}"
    async with services.sessions() as session:
        reasons = [
            (event.detail or {}).get("reason")
            for event in (await session.scalars(select(AuditEvent))).all()
            if event.outcome.startswith("denied-")
        ]
    if row.audited:
        assert reasons == [detail], "the audit event's reason is not the words the client got"
    else:
        assert reasons == []


async def test_a_refused_token_detail_never_echoes_a_huge_claim(api: Any) -> None:
    """The issuer a token names is quoted in the refusal, cut short: a 50 kB claim is not."""
    answer = await _as(api, "reader", "GET", AUTHORITIES, _token(api, issuer="x" * 50_000))
    assert answer.status_code == 401
    assert len(json.dumps(answer.json())) < 2_000
