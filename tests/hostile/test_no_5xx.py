"""Every malformed or hostile input the issue found answered 5xx now gets its 4xx problem,
on both databases, and changes nothing."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509

from cdb_service.security.dev import mint_token
from cdb_service.security.x509 import certificate_facts
from tests.support import factories

V1 = "/api/v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _token(api: Any, client: str = "reader", **changes: Any) -> str:
    s = api.settings
    cert = x509.load_pem_x509_certificate(api.pki.client_cert(client).read_bytes())
    claims: dict[str, Any] = {
        "issuer": s.oidc_issuer, "audience": s.oidc_audience, "client": client,
        "scope": "cdb.read", "owner": None, "owner_claim": s.owner_claim,
        "thumbprint": certificate_facts(cert).x5t_s256,
    }  # fmt: skip
    return mint_token(api.pki.signing_keys(), **(claims | changes))


def _cursor(raw: str) -> str:
    return _b64(raw.encode())


DEEP = "[" * 100_000 + "]" * 100_000


def _window(starts: str, ends: str) -> dict[str, Any]:
    return {"owner": "EC", "component": "cdb", "reason": "upgrade", "starts_at": starts,
            "ends_at": ends}  # fmt: skip


@dataclass(frozen=True)
class Case:
    name: str
    who: str | None
    method: str
    url: str
    body: Any = None
    raw: bytes | None = None
    token: Callable[[Any], str] | None = None
    headers: dict[str, str] | None = None
    status: tuple[int, ...] = (400, 422)


CASES = [
    Case("JWT header nested 100,000 deep", "reader", "GET", f"{V1}/authorities",
         token=lambda api: _b64(DEEP.encode()) + ".e30.sig", status=(401,)),
    Case("JWT payload nested 100,000 deep", "reader", "GET", f"{V1}/authorities",
         token=lambda api: _b64(b'{"alg":"ES256"}') + "." + _b64(DEEP.encode()) + ".sig",
         status=(401,)),
    Case("scope claim that is a number", "reader", "GET", f"{V1}/authorities",
         token=lambda api: _token(api, scope=5), status=(401, 403)),
    Case("body key '¹'", "admin-de", "POST", f"{V1}/authorities",
         body=factories.authority("DE", "DE:X-1") | {"¹": 1}),
    Case("body nested 100,000 deep", "admin-de", "POST", f"{V1}/authorities",
         raw=DEEP.encode()),
    # The refusal quotes the owner, and its audit event must still be stored (PostgreSQL
    # holds no NUL): found by the contract fuzz (test_fuzz.py).
    Case("owner with a NUL, refused", "admin-de", "POST",
         f"{V1}/authorities", status=(403,), raw=json.dumps(
             factories.authority("DE", "DE:X-2") | {"owner": "\x03\x00X"}).encode()),
    # A lone surrogate (legal as a JSON escape, not in UTF-8) quoted back in the refusal.
    Case("owner with a lone surrogate, refused", "admin-de", "POST",
         f"{V1}/authorities", status=(403,), raw=json.dumps(
             factories.authority("DE", "DE:X-3") | {"owner": "\ud800X"}).encode()),
    Case("cursor with Infinity", "reader", "GET",
         f"{V1}/authorities?cursor=" + _cursor('{"r":Infinity,"a":"' + str(uuid.uuid4()) + '"}')),
    Case("cursor that is an object", "reader", "GET",
         f"{V1}/authorities?cursor=" + _cursor('{"r":{},"a":{}}')),
    Case("cursor nested deep", "reader", "GET",
         f"{V1}/authorities?cursor=" + _cursor(DEEP[:2500] + DEEP[-2500:])),
    Case("cursor of 20 kB", "reader", "GET", f"{V1}/authorities?cursor=" + "A" * 20_000,
         status=(400, 414)),
    Case("revision 2**63 on an entry", "reader", "GET",
         f"{V1}/authorities/{uuid.uuid4()}?revision={2**63}", status=(400, 404, 422)),
    Case("revision 2**31 on a list", "reader", "GET", f"{V1}/authorities?revision={2**31}",
         status=(400, 404, 422)),
    Case("extract at revision 2**63", "reader", "GET", f"{V1}/extract?revision={2**63}",
         status=(400, 404, 410, 422)),
    Case("changes since 2**63", "reader", "GET", f"{V1}/changes?since={2**63}",
         status=(400, 404, 410, 422)),
    Case("maintenance window in year 1 at +14:00", "operator", "POST",
         f"{V1}/maintenance-windows",
         body=_window("0001-01-01T00:00:00+14:00", "0001-01-01T02:00:00+14:00")),
    Case("maintenance window in year 9999 at -14:00", "operator", "POST",
         f"{V1}/maintenance-windows",
         body=_window("9999-12-31T20:00:00-14:00", "9999-12-31T23:59:59-14:00")),
    Case("incident in year 1", "operator", "POST", f"{V1}/incidents",
         body={"owner": "EC", "component": "cdb", "description": "x",
               "started_at": "0001-01-01T00:00:00+14:00"}),
    Case("incident in year 9999 at -14:00", "operator", "POST", f"{V1}/incidents",
         body={"owner": "EC", "component": "cdb", "description": "x",
               "started_at": "9999-12-31T23:00:00-14:00"}),
    Case("import line of invalid UTF-8", "admin-de", "POST", f"{V1}/import?dry_run=true",
         raw=b'{"kind":"authorities","document":{"code":"\xff\xfe"}}\n',
         headers={"Content-Type": "application/x-ndjson"}, status=(422,)),
    Case("import line nested 100,000 deep", "admin-de", "POST", f"{V1}/import?dry_run=true",
         raw=DEEP.encode() + b"\n", headers={"Content-Type": "application/x-ndjson"},
         status=(422,)),
    Case("CSV cell over the CSV reader's own limit", "admin-de", "POST",
         f"{V1}/import?dry_run=true&kind=authorities",
         raw=b'code,names.de\nDE:X-9,"' + b"x" * 200_000 + b'"\n',
         headers={"Content-Type": "text/csv"}, status=(422,)),
    Case("CSV of a million columns", "admin-de", "POST",
         f"{V1}/import?dry_run=true&kind=authorities",
         raw=b",".join(b"c%d" % n for n in range(1_000_000)) + b"\n",
         headers={"Content-Type": "text/csv"}, status=(422,)),
    Case("XLSX that is a damaged zip", "admin-de", "POST", f"{V1}/import?dry_run=true",
         raw=b"PK\x03\x04" + b"\x00" * 200,
         headers={"Content-Type": "application/vnd.openxmlformats-officedocument"
                                  ".spreadsheetml.sheet"}, status=(415, 422)),
    Case("NUL in a name", "admin-de", "POST", f"{V1}/authorities",
         body=factories.authority("DE", "DE:X-2", names={"de": "Amts\u0000gericht"})),
    Case("lone surrogate in a name", "admin-de", "POST", f"{V1}/authorities",
         raw=json.dumps(factories.authority("DE", "DE:X-3")).replace(
             "Amtsgericht Eins", "Amts\\ud800gericht").encode()),
    Case("NUL in a filter", "reader", "GET", f"{V1}/authorities?code=DE%00X"),
    Case("NUL in a search", "reader", "GET", f"{V1}/authorities?q=M%00nchen"),
    Case("path of 4,000 characters without a certificate", None, "GET",
         f"{V1}/code-lists/" + "a" * 4000, status=(404, 414)),
    Case("path of 1,500 characters without a certificate (audited, cut short)", None, "GET",
         f"{V1}/code-lists/" + "a" * 1500, status=(401,)),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_hostile_input_gets_a_4xx_problem(api: Any, services: Any, case: Case) -> None:
    before = await services.reads.head()
    headers = dict(case.headers or {})
    if case.raw is not None:
        headers.setdefault("Content-Type", "application/json")
    async with api.client(case.who, token=case.token(api) if case.token else None) as client:
        kwargs: dict[str, Any] = {"headers": headers}
        if case.body is not None:
            kwargs["json"] = case.body
        if case.raw is not None:
            kwargs["content"] = case.raw
        answer = await client.request(case.method, case.url, **kwargs)
    assert answer.status_code in case.status, f"{answer.status_code}: {answer.text[:500]}"
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert len(answer.content) < 64 * 1024
    assert await services.reads.head() == before


async def test_revisions_out_of_range_on_an_existing_entry(api: Any) -> None:
    async with api.client("admin-de") as admin:
        created = await admin.post(f"{V1}/authorities", json=factories.authority("DE", "DE:R-1"))
        assert created.status_code == 201, created.text
    entry = created.json()["id"]
    async with api.client("reader") as reader:
        for revision in (2**31, 2**63, -1):
            answer = await reader.get(f"{V1}/authorities/{entry}?revision={revision}")
            assert answer.status_code in (400, 404, 422), (revision, answer.text[:300])
            assert answer.headers["content-type"].startswith("application/problem+json")


async def test_field_errors_are_capped_and_counted(api: Any) -> None:
    keys = [{"scheme": "postal-code", "code": "?"} for _ in range(300)]
    async with api.client("admin-de") as admin:
        answer = await admin.post(f"{V1}/jurisdiction-criteria",
                                  json=factories.criterion(geo=keys))  # fmt: skip
    assert answer.status_code == 422, answer.text[:300]
    problem = answer.json()
    assert len(problem["errors"]) == 100 and problem["errors_total"] >= 300, problem["detail"]


async def test_more_geo_keys_than_a_criterion_may_hold_is_422_naming_geo(api: Any) -> None:
    keys = [{"scheme": "postal-code", "code": f"{n:05d}"} for n in range(20_001)]
    async with api.client("admin-de") as admin:
        answer = await admin.post(f"{V1}/jurisdiction-criteria",
                                  json=factories.criterion(geo=keys))  # fmt: skip
    assert answer.status_code == 422, answer.text[:300]
    assert [e["loc"][-1] for e in answer.json()["errors"]] == ["geo"], answer.text[:500]


async def test_a_long_path_refused_before_authentication_is_audited_cut_short(
    api: Any, services: Any
) -> None:
    from sqlalchemy import select

    from cdb_service.security.audit import AuditEvent

    path = f"{V1}/code-lists/" + "a" * 1500
    long_id = "r" * 5000
    async with api.client(None) as stranger:
        answer = await stranger.get(path, headers={"X-Request-ID": long_id})
    assert answer.status_code == 401, answer.text[:300]
    assert answer.headers.get("x-client-request-id") is None  # not echoed, not stored
    await api.app.state.gate.refusals.flush(services.sessions, everything=True)
    async with services.sessions() as session:
        events = (await session.scalars(select(AuditEvent))).all()
    refused = [e for e in events if e.target and f"{V1}/code-lists/aaa" in e.target]
    assert len(refused) == 1, [(e.action, (e.target or "")[:80]) for e in events]
    target = refused[0].target or ""
    assert len(target) <= 500 and target.endswith("…"), "cut short, and says so"
    assert refused[0].client_request_id is None


# Found by the second attack (issue 30): each answered 500 before.
ODD_ACCEPTS = [
    "text/html;q=abc",
    "application/json;q=nan",
    "*/*;q=",
    "text/html;q=1e999",
    "application/json;q=-1, text/html;q=x",
    "a/b;q=0.5;q=zz",
    ";q=x",
    "*/*;q=inf",
]


@pytest.mark.parametrize("accept", ODD_ACCEPTS)
async def test_an_accept_whose_quality_is_not_a_number_is_no_5xx(api: Any, accept: str) -> None:
    async with api.client("reader") as client:
        for path in ("/", f"{V1}/authorities", f"{V1}/no-such-kind", "/console/"):
            answer = await client.get(path, headers={"Accept": accept})
            assert answer.status_code < 500, (path, answer.status_code, answer.text[:300])


def _sorted_cursor(value: Any, field: str = "code") -> str:
    return _cursor(json.dumps({"r": 0, "a": str(uuid.uuid4()), "s": [field, value]}))


@pytest.mark.parametrize("value", [5, 1.5, "DE\u0000X", "x" * 5000, None, [1], {"a": 1}],
                         ids=["int", "float", "nul", "long", "null", "list", "object"])  # fmt: skip
async def test_a_sorted_cursor_carrying_an_unexpected_value_is_400(api: Any, value: Any) -> None:
    """A cursor names its sort and the last value; a value this service never gives out (a
    number for a text column, NUL, a time that is not one) is an unknown cursor."""
    async with api.client("reader") as client:
        for sort in ("code", "-updated_at"):
            url = f"{V1}/authorities?sort={sort}&cursor={_sorted_cursor(value, sort)}"
            answer = await client.get(url)
            assert answer.status_code == 400, (sort, answer.text[:300])
        not_a_time = _sorted_cursor("not a time", "-updated_at")
        answer = await client.get(f"{V1}/authorities?sort=-updated_at&cursor={not_a_time}")
        assert answer.status_code == 400, answer.text[:300]
