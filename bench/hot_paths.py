"""Profile the hot paths in-process: `/api/v1/resolve` and the routing-table 304.

The app is built as the bench runs it (prod profile, proxy mode with the client
certificate in the nginx header, a real OIDC issuer, a bound token), and driven
straight through ASGI on one event loop, so that the profile holds the service's
own work (middleware, the gate, parameters, the look-up, the answer) and none of a
load generator's or a socket's:

    .venv/bin/python bench/hot_paths.py --database postgresql://…/db [--requests 5000]
        [--path table] [--sort tottime] [--out prof.pstats]

The database must be migrated and seeded (`cdb-service seed --scale N`). The first
pass warms the answer cache up, as a running service is; the profile is of the second.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import measured_env, resolve_paths  # noqa: E402

from cdb_service.security.pki import issue, make_ca  # noqa: E402
from cdb_service.security.signing_keys import SigningKeys  # noqa: E402
from cdb_service.security.x509 import certificate_facts  # noqa: E402
from tests.support.issuer import Issuer  # noqa: E402


class Driver:
    """Just enough of an ASGI server: lifespan, then one request at a time."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lifespan: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._lifespan = asyncio.create_task(self.app(scope, self._events.get, self._replies.put))
        await self._events.put({"type": "lifespan.startup"})
        reply = await self._replies.get()
        if reply["type"] != "lifespan.startup.complete":
            raise SystemExit(f"the app did not start: {reply}")

    async def stop(self) -> None:
        await self._events.put({"type": "lifespan.shutdown"})
        await self._replies.get()

    async def get(self, target: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
        path, _, query = target.partition("?")
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000), "state": {},
        }  # fmt: skip
        status, body = 0, bytearray()
        self.last_headers: list[tuple[bytes, bytes]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.last_headers = list(message["headers"])
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, bytes(body)


async def main(args: argparse.Namespace, tmp: Path) -> None:
    ca = make_ca("profile CA")
    server = issue(ca, "127.0.0.1", ip_addresses=("127.0.0.1",), server=True)
    client = issue(ca, "profile-reader", client=True)
    for name, text in (("ca.pem", ca.cert_pem), ("server.pem", server.cert_pem),
                       ("server-key.pem", server.key_pem)):  # fmt: skip
        (tmp / name).write_text(text)
    issuer = Issuer(tmp / "server.pem", tmp / "server-key.pem").start()
    os.environ.update(measured_env(tmp, args.database, issuer.url))
    SigningKeys.load(tmp / "signing-keys.json", create=True)
    from cdb_service.app import create_app

    token = issuer.token("profile-reader", "cdb.read",
                         thumbprint=certificate_facts(client.certificate).x5t_s256)  # fmt: skip
    headers = [
        (b"host", b"127.0.0.1"),
        (b"x-ssl-client-cert", quote(client.cert_pem, safe="").encode()),
        (b"authorization", f"Bearer {token}".encode()),
    ]
    driver = Driver(create_app())
    await driver.start()
    try:
        if args.path == "table":
            paths = ["/api/v1/routing-table"]
            first = await _etag(driver, "/api/v1/routing-table", headers)
            headers = [*headers, (b"if-none-match", first)]
            expect = 304
        else:
            paths = resolve_paths(args.keys)
            expect = 200
        for target in paths[: args.requests]:  # warm-up: the answer cache, JWKS, imports
            status, body = await driver.get(target, headers)
            assert status == expect, (status, body[:300])
        if args.show:  # what the route answers, byte for byte (headers sorted)
            for extra in ([], [(b"accept-encoding", b"gzip")]):
                status, body = await driver.get(paths[0], headers + extra)
                print(status, sorted(driver.last_headers), body[:200])
            return
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for n in range(args.requests):
            await driver.get(paths[n % len(paths)], headers)
        profiler.disable()
        elapsed = time.perf_counter() - started
    finally:
        await driver.stop()
        issuer.stop()
    print(f"{args.requests} requests in {elapsed:.2f} s under cProfile "
          f"({args.requests / elapsed:,.0f}/s)")  # fmt: skip
    stats = pstats.Stats(profiler)
    if args.out:
        stats.dump_stats(args.out)
    stats.sort_stats(args.sort).print_stats(args.top)


async def _etag(driver: Driver, target: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    found: list[bytes] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": target, "raw_path": target.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000), "state": {},
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            found.extend(v for k, v in message["headers"] if k.lower() == b"etag")

    await driver.app(scope, receive, send)
    return found[0]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", required=True, help="a migrated, seeded database URL")
    parser.add_argument("--keys", type=int, default=10_000, help="the seed's --scale")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--path", choices=("resolve", "table"), default="resolve")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", help="write the raw profile here (pstats)")
    parser.add_argument("--show", action="store_true", help="print one answer and stop")
    with tempfile.TemporaryDirectory(prefix="cdb-profile-") as name:
        asyncio.run(main(parser.parse_args(), Path(name)))
