"""Real receivers for pushed notifications: an HTTPS webhook receiver that checks the
Standard Webhooks signature itself (written from the specification, not with the
service's code), and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cdb_service.security.pki import issue, make_ca


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int
    signature_ok: bool

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


def signature_ok(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [
        s.partition(",")[2] for s in headers["webhook-signature"].split() if s.startswith("v1,")
    ]
    return any(hmac.compare_digest(expected, g) for g in given)


@dataclass
class WebhookReceiver:
    """Answers 503 to the first `fail_first` requests, then 204 (or 503 for ever)."""

    ca_file: Path
    secret: str = ""
    fail_first: int = 0
    received: list[Received] = field(default_factory=list)
    port: int = 0

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if r.status < 300]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/hook"


def start_receiver(
    folder: Path, fail_first: int = 0
) -> tuple[WebhookReceiver, ThreadingHTTPServer]:
    ca = make_ca("webhook test CA")
    leaf = issue(ca, "receiver", dns_names=("localhost",), ip_addresses=("127.0.0.1",), server=True)
    (folder / "ca.pem").write_text(ca.cert_pem)
    (folder / "leaf.pem").write_text(leaf.cert_pem)
    (folder / "leaf.key").write_text(leaf.key_pem)
    receiver = WebhookReceiver(folder / "ca.pem", fail_first=fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            ok = bool(receiver.secret) and signature_ok(receiver.secret, headers, body)
            failing = len(receiver.received) < receiver.fail_first or receiver.fail_first < 0
            status = 503 if failing or not ok else 204
            receiver.received.append(Received(headers, body, status, ok))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "leaf.pem", folder / "leaf.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server
