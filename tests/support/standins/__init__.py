"""Stand-ins for the access-point software the sync agent pushes to, which does not run
on these machines: small real HTTP servers on 127.0.0.1, written from the published REST
contracts (see `domibus.py` and `connector_ng.py` for each one's sources). They never
call the real thing.

What every stand-in does, from this module:

- serves on a random port, plain HTTP or TLS (`tls=(cert, key)`, e.g. the suite's
  `make_pki` server certificate), in a thread; `with standin:` starts and stops it;
- records every call in `calls` (method, path, user, form fields, and for each uploaded
  file its name, content type, size and sha256, the status answered, the time), also the
  calls it refused or failed, so a test can say what was pushed and how often;
- can be made slow (`delay_s`: every request waits that long before it is handled;
  `answer_late(seconds, path=None)`: a request is handled at once, its answer sent that
  much later: the work is done, and a client that gives up never hears of it) or failing
  (`fail_next(n, how, path=None, method=None)`: the next n requests, or the next n to
  `path` (by `method`), answer 500, or lose their connection without an answer: what a
  crashed or restarted server looks like to its client).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Self

FailHow = Literal["500", "drop"]


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request, as the stand-in received it."""

    filename: str | None
    content_type: str
    content: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class Call:
    """One request the stand-in received, and what it answered."""

    method: str
    path: str
    user: str | None
    fields: dict[str, str]
    files: dict[str, Upload]
    at: dt.datetime
    status: int | None = None  # None: the connection was dropped without an answer

    @property
    def names(self) -> set[str]:
        """Every multipart part's name (form fields and files)."""
        return set(self.fields) | set(self.files)


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_answer(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Answer:
    return Answer(status, json.dumps(body).encode(), "application/json", dict(headers or {}))


def text_answer(status: int, text: str) -> Answer:
    return Answer(status, text.encode(), "text/plain;charset=UTF-8")


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, Upload]]:
    """The parts of a multipart/form-data body: plain fields and files (parts with a
    file name or a content type of their own, as Spring's MultipartFile sees them)."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    if not message.is_multipart():
        return fields, files
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is None and "content-type" not in part:
            fields[name] = content.decode("utf-8", "replace")
        else:
            files[name] = Upload(filename, part.get_content_type(), content)
    return fields, files


class Request:
    """What a stand-in's route sees of a request."""

    def __init__(self, handler: BaseHTTPRequestHandler, body: bytes, prefix: str = "") -> None:
        self.method = handler.command
        path = handler.path.split("?", 1)[0]
        # The path within the application (outside it, as sent).
        self.inside = not prefix or path.startswith(prefix + "/")
        self.path = path[len(prefix) :] if prefix and self.inside else path
        self.headers = handler.headers
        self.body = body
        content_type = self.headers.get("Content-Type", "")
        self.fields: dict[str, str] = {}
        self.files: dict[str, Upload] = {}
        if content_type.startswith("multipart/form-data"):
            self.fields, self.files = parse_multipart(content_type, body)

    def json(self) -> Any:
        return self.parse_json(self.body)

    @staticmethod
    def parse_json(raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            return None


class StandIn:
    """The machinery of every stand-in; a subclass answers requests in `route`."""

    def __init__(self, *, tls: tuple[Path, Path] | None = None, prefix: str = "") -> None:
        self.tls = tls
        self.prefix = prefix.rstrip("/")  # where the application lives, e.g. /domibus
        self.calls: list[Call] = []
        self.delay_s = 0.0
        self._failures: list[tuple[FailHow, str | None, str | None]] = []
        self._late: tuple[float, str | None, str | None] = (0.0, None, None)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- what a subclass provides ---------------------------------------------------

    def user_of(self, request: Request) -> str | None:
        """The user a request authenticates as, for the record (not whether it may)."""
        return None

    def route(self, request: Request) -> Answer:
        raise NotImplementedError

    # --- what a test uses ------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the stand-in is not running"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

    def fail_next(self, count: int, how: FailHow = "500", path: str | None = None,
                  method: str | None = None) -> None:  # fmt: skip
        """The next `count` requests (to `path` only, by `method` only, if given) fail as
        `how` says."""
        with self._lock:
            self._failures.extend([(how, path, method)] * count)

    def answer_late(self, seconds: float, path: str | None = None,
                    method: str | None = None) -> None:  # fmt: skip
        """Requests (to `path` only, by `method` only, if given) are handled at once and
        answered `seconds` later; 0 answers at once again."""
        with self._lock:
            self._late = (seconds, path, method)

    def calls_to(self, method: str, path: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and c.path == path]

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        # A short poll: stopping waits for it, and every test stops one.
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                                        name=type(self).__name__)  # fmt: skip
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # a request waiting out `delay_s` stops waiting
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # --- the machinery -----------------------------------------------------------------

    def _take_failure(self, method: str, path: str) -> FailHow | None:
        for index, (how, only, by) in enumerate(self._failures):
            if _matches(method, path, only, by):
                del self._failures[index]
                return how
        return None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        request = Request(handler, handler.rfile.read(length) if length else b"", self.prefix)
        call = Call(request.method, request.path, self.user_of(request),
                    dict(request.fields), dict(request.files), dt.datetime.now(dt.UTC))  # fmt: skip
        with self._lock:
            self.calls.append(call)
            failure = self._take_failure(request.method, request.path)
            late, only, by = self._late
        if self.delay_s:
            self._stopping.wait(self.delay_s)
        if failure == "drop":
            # Close without a byte of answer, as a crashed server's kernel would.
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if failure == "500":
            answer = json_answer(500, {"message": "A server error occurred"})
        elif not request.inside:
            answer = Answer(404, b"")  # outside the application's context path
        else:
            with self._lock:
                answer = self.route(request)
        call.status = answer.status
        if late and _matches(request.method, request.path, only, by):
            self._stopping.wait(late)  # outside the lock: other requests are served meanwhile
        try:
            handler.send_response(answer.status)
            handler.send_header("Content-Type", answer.content_type)
            handler.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(answer.body)
        except OSError:
            pass  # the client gave up waiting (a timeout test): nothing to answer


def _matches(method: str, path: str, only: str | None, by: str | None) -> bool:
    return (only is None or only == path) and (by is None or by == method)


def _handler_for(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            standin._serve(self)

        def do_POST(self) -> None:
            standin._serve(self)

        def do_DELETE(self) -> None:
            standin._serve(self)

        def do_PUT(self) -> None:
            standin._serve(self)

        def do_PATCH(self) -> None:
            standin._serve(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the record is `calls`; stderr stays quiet

    return Handler
