"""A TCP proxy on loopback that can stop forwarding without closing anything.

It stands between the service and PostgreSQL. `stall()` is the fault the issue
describes: every connection stays open, bytes already sent sit unforwarded, new
connections are accepted but go nowhere — a silently lost network, not a refused
one. `resume()` lets everything flow again; `reset()` closes every connection
abruptly (what a database restart looks like to its clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any


class StallProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> StallProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self._flowing.set()
        if self._server is not None:
            self._server.close()
        self.reset()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def reset(self) -> None:
        """Close every connection with an RST, as a crashed server's kernel would."""
        for writer in list(self._writers):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
            writer.close()
        self._writers.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._writers.add(client_w)
        await self._flowing.wait()  # while stalled, a new connection goes nowhere
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        self._writers.add(server_w)
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.create_task(self._pump(reader, writer, (client_w, server_w)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:  # fmt: skip
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()  # stalled: hold the bytes, close nothing
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for one in pair:
                one.close()
                self._writers.discard(one)


class ThreadedStallProxy:
    """A `StallProxy` on its own event loop in a thread.

    The in-process test client drives the app from the test's loop and blocks it while
    a request runs; the proxy must keep running (and stalling) on a loop of its own.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="stall-proxy"
        )
        self._thread.start()
        self._proxy = self._call(StallProxy(upstream_host, upstream_port).start())
        self.port = self._proxy.port

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def _do(self, action: Callable[[], None]) -> None:
        async def run() -> None:
            action()

        self._call(run())

    def stall(self) -> None:
        self._do(self._proxy.stall)

    def resume(self) -> None:
        self._do(self._proxy.resume)

    def reset(self) -> None:
        self._do(self._proxy.reset)

    def close(self) -> None:
        self._call(self._proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
