"""The audit trail's growth from refusals is bounded per source and window whatever a client
varies (certificate, token, path), and keeps the counts; a source that keeps failing
authentication is answered 429 with Retry-After; clients at other sources are not
affected (issue 30).

In process, the source address is chosen per request (`x-test-peer`, as a TCP peer
would be); through the shipped nginx it is the address nginx forwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from cdb_service.security.audit import AuditEvent
from cdb_service.security.dev import DevPki, mint_token, token_for
from cdb_service.security.refusals import LISTED, NAMED, OTHERS
from cdb_service.settings import Settings
from tests.support.hostile_watch import family, watch
from tests.support.nginx import requires_nginx, running_nginx
from tests.support.service_process import running_service, stop
from tests.support.tls import client_context

V1 = "/api/v1"
PEER = "x-test-peer"
FURTHER = "(further sources)"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A slow refill, so that the bucket a flood emptied stays empty for the whole test
    on a busy machine; the burst is the default."""
    return settings.model_copy(update={"rate_limit_anonymous": 0.01,
                                       "audit_refusal_sources": 5})  # fmt: skip


def _peers(api: Any) -> None:
    """Requests come from the address named in `x-test-peer` (else the test client's)."""
    handler = api.app.asgi_handler

    async def from_peer(scope: Any, receive: Any, send: Any) -> None:
        for name, value in scope.get("headers", []):
            if name == PEER.encode():
                scope["client"] = (value.decode(), 40_000)
        await handler(scope, receive, send)

    api.app.asgi_handler = from_peer


async def _events(api: Any, services: Any, after: int = 0) -> list[AuditEvent]:
    await api.app.state.gate.refusals.flush(services.sessions, everything=True)
    async with services.sessions() as session:
        events = (await session.scalars(select(AuditEvent).where(AuditEvent.seq > after))).all()
    return [e for e in events if e.outcome.startswith("denied-")]


async def _seq(services: Any) -> int:
    async with services.sessions() as session:
        seqs = (await session.scalars(select(AuditEvent.seq))).all()
    return max(seqs, default=0)


def _counted(events: list[AuditEvent]) -> int:
    return sum((e.detail or {}).get("repeated", 1) for e in events)


def _bogus(api: Any, n: int) -> tuple[str, str]:
    """A path and a token that differ with every request: garbage, a foreign issuer's
    token naming a new issuer each time, a token for another audience."""
    s = api.settings
    path = (f"{V1}/authorities?n={n}", f"{V1}/code-lists/x{n}", f"{V1}/national-members")[n % 3]
    if n % 3 == 0:
        return path, f"bogus.{n}.token"
    keys = DevPki(s.pki_dir).signing_keys()
    issuer = f"https://evil.example/{n}" if n % 3 == 1 else s.oidc_issuer
    audience = s.oidc_audience if n % 3 == 1 else f"other-api-{n}"
    return path, mint_token(keys, issuer=issuer, audience=audience, client="reader",
                            scope="cdb.read", owner=None, thumbprint=None)  # fmt: skip


async def test_1000_bogus_tokens_leave_two_counted_rows_and_get_429(
    api: Any, services: Any
) -> None:
    """A reader's own certificate (known: it authenticated a moment ago) with 1,000 bogus
    tokens on 1,000 paths: refused with 401 until the source's failures have used up its
    burst, then 429 with Retry-After; two audit rows, whose counts add up to 1,000."""
    _peers(api)
    async with api.client("reader") as reader:
        assert (await reader.get(f"{V1}/authorities")).status_code == 200
    before = await _seq(services)
    answers: list[Any] = []
    for start in range(0, 1000, 100):
        requests = []
        for n in range(start, start + 100):
            path, token = _bogus(api, n)
            async with api.client("reader", token=token) as bogus:
                requests.append(bogus.get(path, headers={"X-Request-ID": f"bogus-{n}"}))
        answers += await asyncio.gather(*requests)
    statuses = [a.status_code for a in answers]
    refused = [a for a in answers if a.status_code == 429]
    events = await _events(api, services, before)
    print(
        f"\n1,000 bogus tokens: {statuses.count(401)}×401, {len(refused)}×429, "
        f"{len(events)} audit rows"
    )
    assert set(statuses) <= {401, 429}
    burst = api.settings.rate_limit_anonymous_burst
    # The first round of 100 may all pass the check before any of them failed; from
    # then on the source is refused at once.
    assert burst <= statuses.count(401) <= 100 and set(statuses[100:]) == {429}, statuses
    assert all(int(a.headers["retry-after"]) >= 1 for a in refused)
    assert refused[0].headers["content-type"] == "application/problem+json"
    assert len(events) == 2, [(e.outcome, e.target, e.detail) for e in events]
    assert _counted(events) == 1000
    count = next(e for e in events if "repeated" in (e.detail or {}))
    assert sum(count.detail["statuses"].values()) == 999  # type: ignore[index]
    assert set(count.detail["statuses"]) == {"401", "429"}  # type: ignore[index]
    # An honest client at another address is not affected, nor a stranger there.
    async with api.client("admin-fr") as other:
        answer = await other.get(f"{V1}/authorities", headers={PEER: "192.0.2.7"})
        assert answer.status_code == 200
    async with api.client(None) as stranger:
        answer = await stranger.get(f"{V1}/authorities", headers={PEER: "192.0.2.8"})
        assert answer.status_code == 401
    # The certificate that sent them is no longer let through its address's empty bucket
    # (a known certificate is, while it does not fail itself: test_floods.py).
    async with api.client("reader") as reader:
        assert (await reader.get(f"{V1}/authorities")).status_code == 429


async def test_many_sources_share_one_row_beyond_the_bound(api: Any, services: Any) -> None:
    """Addresses beyond `CDB_AUDIT_REFUSAL_SOURCES` (5 here) per window are counted in one
    event; an IPv6 /64 is one source, for the trail and for the 429 alike."""
    _peers(api)
    before = await _seq(services)
    async with api.client(None) as anonymous:
        v6 = await asyncio.gather(*(anonymous.get(f"{V1}/authorities",
                                                  headers={PEER: f"2001:db8:0:1::{n:x}"})
                                    for n in range(1, 61)))  # fmt: skip
        v4 = await asyncio.gather(*(anonymous.get(f"{V1}/code-lists/x{n}",
                                                    headers={PEER: f"198.51.100.{n}"})
                                    for n in range(1, 41) for _ in range(2)))  # fmt: skip
    events = await _events(api, services, before)
    print(
        f"\n140 refusals from 41 sources (one a /64): {len(events)} audit rows, "
        f"{[a.status_code for a in v6].count(429)} of the /64's 60 answered 429"
    )
    assert [a.status_code for a in v6].count(429) >= 60 - api.settings.rate_limit_anonymous_burst
    assert {a.status_code for a in v4} == {401}
    assert len(events) <= 2 * 5 + 1, [(e.subject, e.source_ip, e.detail) for e in events]
    assert _counted(events) == 140
    further = [e for e in events if e.subject == FURTHER]
    assert len(further) == 1 and further[0].detail["repeated"] == 80 - 4 * 2  # type: ignore[index]
    v6_rows = [e for e in events if (e.source_ip or "").startswith("2001:db8:0:1::")]
    assert _counted(v6_rows) == 60 and len(v6_rows) == 2


async def test_a_named_callers_refusals_on_300_paths_leave_eleven_rows(
    api: Any, services: Any
) -> None:
    """An authenticated reader writing to 300 entries: its first ten distinct attempts
    are in the trail as they happened (with their request ids), the rest counted in one
    event that lists the first targets."""
    before = await _seq(services)
    async with api.client("reader") as reader:
        answers = await asyncio.gather(*(
            reader.delete(f"{V1}/authorities/{uuid.uuid4()}", headers={"If-Match": '"1"'})
            for _ in range(300)))  # fmt: skip
    statuses = {a.status_code for a in answers}
    events = await _events(api, services, before)
    print(f"\n300 refused writes of a reader: {statuses}, {len(events)} audit rows")
    assert statuses == {403}
    assert len(events) == NAMED + 1 and _counted(events) == 300
    assert all(e.subject.startswith("reader") for e in events)
    count = next(e for e in events if "repeated" in (e.detail or {}))
    assert len(count.detail["targets"]) == LISTED + 1  # type: ignore[index]
    assert count.detail["targets"][OTHERS] == 300 - NAMED - LISTED  # type: ignore[index]


# --- through the shipped nginx, a real process -----------------------------------------


def _self_signed(root: Path, n: int) -> ssl.SSLContext:
    """A fresh self-signed client certificate (costs an attacker nothing), in a context."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"stranger-{n}")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))  # fmt: skip
    cert_file, key_file = root / f"c{n}.pem", root / f"k{n}.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


@pytest.fixture
def behind_nginx(tmp_path: Path) -> Iterator[tuple[Any, Any, DevPki]]:
    pki = DevPki(tmp_path / "app" / "var" / "pki").ensure()
    variables = {
        "CDB_TLS_MODE": "proxy",
        "CDB_AUDIT_REFUSAL_WINDOW_S": "60",
        "CDB_RATE_LIMIT_ANONYMOUS": "0.01",
        "CDB_RATE_LIMIT_ANONYMOUS_BURST": "50",
    }
    app = tmp_path / "app"
    socket = f"unix:{app / 'var' / 'cdb.sock'}"
    with (running_service(app, variables) as service,
          running_nginx(tmp_path / "nginx", upstream=socket, cert=pki.server_cert,
                        key=pki.server_key) as nginx):  # fmt: skip
        yield service, nginx, pki


def _fresh_certificates(nginx: Any, contexts: list[ssl.SSLContext]) -> list[int]:
    """A request each on a new connection with a new self-signed certificate."""
    statuses = []
    for n, context in enumerate(contexts):
        with httpx.Client(base_url=nginx.base_url, verify=context, timeout=10) as hostile:
            statuses.append(hostile.get(f"{V1}/authorities?n={n}").status_code)
    return statuses


def _bogus_tokens(nginx: Any, pki: DevPki) -> list[int]:
    """1,000 requests with a reader's certificate, known (it has just authenticated), and
    a bogus token each, on as many paths."""
    context = client_context(pki.ca, pki.client_cert("reader"), pki.client_key("reader"))
    with httpx.Client(base_url=nginx.base_url, verify=context, timeout=10) as hostile:
        return [hostile.get(f"{V1}/code-lists/x{n}",
                            headers={"Authorization": f"Bearer bogus.{n}.token"}).status_code
                for n in range(1000)]  # fmt: skip


@pytest.mark.slow
@requires_nginx
@pytest.mark.parametrize("flood", ["fresh certificates", "bogus tokens"])
def test_a_flood_through_nginx_leaves_two_counted_rows(
    behind_nginx: tuple[Any, Any, DevPki], tmp_path: Path, flood: str
) -> None:
    """Through the shipped nginx: 300 requests each on a new connection with a new
    self-signed certificate, or 1,000 with a known reader's certificate and bogus tokens.
    401 until the forwarded address's burst is used up, then 429; two audit rows, the
    counts adding up; an honest resolve from another address runs beside the flood within
    issue 30's bounds (peak ≤ 64 MiB, p99 ≤ 250 ms)."""
    service, nginx, pki = behind_nginx
    issuer = Settings(port=service.port).dev_issuer_url()

    def client(name: str, address: str) -> httpx.Client:
        token = token_for(pki, name, issuer, "cdb-api", "cdb_owner")
        context = client_context(pki.ca, pki.client_cert(name), pki.client_key(name))
        return httpx.Client(base_url=nginx.base_url, timeout=10,
                            headers={"Authorization": f"Bearer {token}"},
                            transport=httpx.HTTPTransport(local_address=address,
                                                          verify=context))  # fmt: skip

    with client("reader", "127.0.0.1") as reader:  # the reader's certificate is known
        assert reader.get(f"{V1}/authorities").status_code == 200
    before = service.audit_seq()
    # Made before the flood: the watch measures what the service does, not the test.
    contexts = [_self_signed(tmp_path, n) for n in range(300)] if "cert" in flood else []
    honest = client("admin-de", "127.0.0.2")
    with (
        honest,
        watch(
            lambda: family(service.process.pid),
            lambda: honest.get(
                f"{V1}/resolve?country=DE&instrument=eio&competence=execute&postal_code=10115"
            ),
        ) as seen,
    ):
        statuses = _fresh_certificates(nginx, contexts) if contexts else _bogus_tokens(nginx, pki)
    stop(service.process)  # writes the window's count
    events = [e for e in service.audit_after(before) if e["outcome"].startswith("denied-")]
    print(
        f"\n{len(statuses)} requests with {flood} through nginx: "
        f"{statuses.count(401)}×401, {statuses.count(429)}×429, {len(events)} audit rows"
    )
    seen.check(f"{len(statuses)} requests with {flood} through nginx")
    assert set(statuses) <= {401, 429} and statuses.count(401) == 50, statuses
    assert len(events) == 2, events
    assert sum((e["detail"] or {}).get("repeated", 1) for e in events) == len(statuses)
    assert {e["source_ip"] for e in events} == {"127.0.0.1"}  # the forwarded address
