"""Engine and session factory for PostgreSQL (asyncpg) and SQLite (aiosqlite)."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import time
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util.concurrency import await_

from cdb_service.db.pool_metrics import observe_pool
from cdb_service.kernel.errors import causes
from cdb_service.settings import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    """An engine whose every wait is bounded (see `Settings.db_*_timeout_s`)."""
    url = settings.effective_database_url
    if settings.is_sqlite:
        _ensure_sqlite_dir(url)
        engine = create_async_engine(
            url,
            connect_args={"timeout": settings.db_lock_timeout_s},
            pool_timeout=settings.db_connect_timeout_s,
            pool_pre_ping=True,
            json_serializer=_json_dumps,
        )
        _configure_sqlite(
            engine.sync_engine, settings.db_lock_timeout_s, settings.db_statement_timeout_s
        )
        observe_pool(engine)
        return engine
    statement_ms = int(settings.db_statement_timeout_s * 1000)
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=10,
        # Not SQLAlchemy's pre-ping: it waits a whole statement timeout on a silent server
        # and then hands the connection back; `_PostgresHosts.check` replaces it.
        pool_pre_ping=False,
        pool_timeout=settings.db_connect_timeout_s,
        json_serializer=_json_dumps,
        connect_args={
            "timeout": settings.db_connect_timeout_s,
            # Client-side: the only bound on a connection that stalls without closing.
            "command_timeout": settings.db_statement_timeout_s,
            "server_settings": {
                "statement_timeout": str(statement_ms),
                "lock_timeout": str(int(settings.db_lock_timeout_s * 1000)),
                # A transaction left open by a lost client does not hold the registry lock.
                "idle_in_transaction_session_timeout": str(max(statement_ms * 3, 30_000)),
            },
        },
    )
    _PostgresHosts(settings).attach(engine.sync_engine)
    observe_pool(engine)
    return engine


class _PostgresHosts:
    """Every PostgreSQL connection of one engine: opened host by host, watched, and
    dropped at once when its server stops answering.

    asyncpg's `timeout` covers all the hosts of a multi-host URL together, so a primary
    that accepts TCP but never answers (SIGSTOP, a frozen VM; its kernel still completes
    the handshake) used the whole budget before the standby was asked. Here each host gets
    `db_host_timeout_s`, a host that went silent is tried last until it answers again, and
    a silent server costs one host timeout, not one per pooled connection.
    """

    def __init__(self, settings: Settings) -> None:
        self._connect_s = settings.db_connect_timeout_s
        self._host_s = min(settings.db_host_timeout_s, settings.db_connect_timeout_s)
        self._check_s = min(settings.db_host_timeout_s, settings.db_statement_timeout_s)
        # Sent data unacknowledged this long (a partition) ends the connection in the
        # kernel, whatever the statement waits for; keepalives find idle ones.
        self._user_timeout_ms = int(settings.db_statement_timeout_s * 1000)
        self._keepalive_idle_s = max(1, math.ceil(settings.db_host_timeout_s))
        self._silent: set[tuple[str, int]] = set()
        self._params: dict[str, Any] = {}  # the URL's, for a probe connection
        self._probing: set[tuple[str, int]] = set()
        self._open: weakref.WeakKeyDictionary[Any, tuple[str, int]] = weakref.WeakKeyDictionary()

    def attach(self, engine: Engine) -> None:
        @event.listens_for(engine, "do_connect")
        def _connect_our_way(dialect: Any, record: Any, cargs: Any, cparams: Any) -> None:
            # The dialect still builds its adapter around the connection; only the way
            # the driver connection is opened changes (the URL's parameters are kept).
            cparams["async_creator_fn"] = self.connect

        @event.listens_for(engine, "connect")
        def _fresh(dbapi_connection: Any, record: Any) -> None:
            record.info["fresh"] = True

        @event.listens_for(engine, "checkout")
        def _check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
            if record.info.pop("fresh", False):
                return  # opened for this checkout: it has just answered
            self.check(dbapi_connection.driver_connection)

        # A statement (or COMMIT) that waits longer than a host timeout has the server
        # probed: silent, and every connection to it is dropped, this one included, so a
        # transaction on a hung server ends within two host timeouts, whatever the other
        # traffic, rather than a statement timeout later.
        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn: Any, *_: Any) -> None:
            self._watch(conn)

        @event.listens_for(engine, "commit")
        def _before_commit(conn: Any) -> None:
            self._watch(conn)

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, *_: Any) -> None:
            _unwatch(conn.info)

        @event.listens_for(engine, "checkin")
        def _returned(dbapi_connection: Any, record: Any) -> None:
            _unwatch(record.info)

        @event.listens_for(engine, "handle_error")
        def _drop_unanswered(context: Any) -> None:
            record = getattr(context.connection, "_dbapi_connection", None)
            if record is not None:
                _unwatch(record.info)
            # A statement the server did not answer at all (asyncpg's client-side command
            # timeout, not PostgreSQL's statement_timeout): the connection's state is
            # unknown. It is dropped at once (no goodbye that would wait on the server);
            # its siblings are left to the check at checkout, as a slow query is no proof
            # that the server has gone.
            if context.connection is None or not any(
                isinstance(e, TimeoutError) for e in causes(context.original_exception)
            ):
                return
            dbapi_connection = getattr(context.connection, "_dbapi_connection", None)
            driver = getattr(dbapi_connection, "driver_connection", None)
            if driver is not None:
                driver.terminate()
            context.is_disconnect = True
            context.invalidate_pool_on_disconnect = False

    async def connect(self, **params: Any) -> Any:
        import asyncpg

        hosts, ports = params.pop("host", None), params.pop("port", None)
        params.pop("timeout", None)
        if not isinstance(hosts, list):
            self._params = params
            connection = await asyncpg.connect(
                host=hosts, port=ports, timeout=self._connect_s, **params
            )
            if hosts is None:  # libpq's defaults, resolved inside asyncpg: not watched
                return connection
            return self._opened(connection, (str(hosts), int(ports or 5432)))
        self._params = params
        given = [(str(h), int(p)) for h, p in zip(hosts, ports, strict=True)]
        # libpq's order, except that hosts found silent wait until the others were asked.
        order = [a for a in given if a not in self._silent] + [
            a for a in given if a in self._silent
        ]
        failure: BaseException | None = None
        async with asyncio.timeout(self._connect_s):
            for address in order:
                try:
                    connection = await asyncpg.connect(
                        host=address[0], port=address[1], timeout=self._host_s, **params
                    )
                except TimeoutError as error:
                    self._silent.add(address)
                    failure = error
                except Exception as error:
                    # It answered (refused, a standby, an error): not silent. libpq, too,
                    # goes on to the next host whatever the failure.
                    self._silent.discard(address)
                    failure = failure if isinstance(failure, TimeoutError) else error
                else:
                    self._silent.discard(address)
                    return self._opened(connection, address)
        assert failure is not None
        raise failure

    def check(self, driver: Any) -> None:
        """A pooled connection answers within the host timeout, or is replaced (the pool
        opens another: `DisconnectionError`)."""
        try:
            await_(driver.fetchrow(";", timeout=self._check_s))
        except TimeoutError as error:
            self._went_silent(self._open.get(driver))
            driver.terminate()
            raise sa_exc.DisconnectionError("the database did not answer a check") from error
        except Exception as error:
            driver.terminate()
            raise sa_exc.DisconnectionError(f"the database connection failed: {error}") from error

    def _opened(self, connection: Any, address: tuple[str, int]) -> Any:
        self._open[connection] = address
        # asyncpg opens the socket itself and offers no option for it; its transport is
        # the only way to the socket (`get_extra_info` is asyncio's public interface).
        transport = getattr(connection, "_transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            _keepalive(sock, self._keepalive_idle_s, self._user_timeout_ms)
        return connection

    def _watch(self, conn: Any) -> None:
        dbapi_connection = getattr(conn, "_dbapi_connection", None)
        address = self._open.get(getattr(dbapi_connection, "driver_connection", None))
        if address is None:
            return
        _unwatch(conn.info)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the sync engine used outside the event loop: nothing to watch
            return
        conn.info[_WATCH] = loop.call_later(self._host_s, self._suspect, address)

    def _suspect(self, address: tuple[str, int]) -> None:
        if address not in self._probing:
            self._probing.add(address)
            task = asyncio.get_running_loop().create_task(self._probe(address))
            _probes.add(task)
            task.add_done_callback(_probes.discard)

    async def _probe(self, address: tuple[str, int]) -> None:
        """A new connection to the server: any answer (even a refusal) says it is alive;
        none within the host timeout says it has gone silent."""
        import asyncpg

        params = self._params | {"target_session_attrs": "any", "command_timeout": None}
        try:
            probe = await asyncpg.connect(
                host=address[0], port=address[1], timeout=self._host_s, **params
            )
            probe.terminate()
        except TimeoutError:
            self._went_silent(address)
        except Exception:  # it answered
            pass
        finally:
            self._probing.discard(address)

    def _went_silent(self, address: tuple[str, int] | None) -> None:
        """Every connection to a silent server is dropped now, without a goodbye that would
        wait on it; the pool replaces them as they are checked out."""
        if address is None:
            return
        self._silent.add(address)
        for connection, where in list(self._open.items()):
            if where == address and not connection.is_closed():
                connection.terminate()


_WATCH = "cdb_statement_watch"
# Probes under way (the loop keeps only weak references to tasks).
_probes: set[asyncio.Task[None]] = set()


def _unwatch(info: dict[str, Any]) -> None:
    handle = info.pop(_WATCH, None)
    if handle is not None:
        handle.cancel()


def _keepalive(sock: Any, idle_s: int, user_timeout_ms: int) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", idle_s), ("TCP_KEEPINTVL", 1), ("TCP_KEEPCNT", 3),
                        ("TCP_USER_TIMEOUT", user_timeout_ms)):  # fmt: skip
        option = getattr(socket, name, None)  # Linux names; other systems lack some
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


# Names stay readable in the database (and searchable with LIKE on SQLite). One encoder
# for every value: `json.dumps` with an option builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False)


def _json_dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _ensure_sqlite_dir(url: str) -> None:
    from pathlib import Path

    path = url.partition(":///")[2]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine, lock_timeout_s: float, statement_timeout_s: float) -> None:
    """Make SQLite behave like a database: FKs, WAL, a busy timeout, real transactions.

    pysqlite's own transaction handling starts transactions lazily on the first
    write and runs reads outside any transaction; we switch it off and emit BEGIN
    ourselves so that a read transaction sees one snapshot and a write transaction
    takes the write lock at its first statement.

    Waits are bounded: the busy timeout bounds lock waits; a progress handler
    interrupts a statement that runs past its deadline (SQLITE_INTERRUPT).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        deadline = record.info["statement_deadline"] = [math.inf]

        def _past_deadline() -> int:
            return 1 if time.monotonic() > deadline[0] else 0

        # Checked every few thousand VM steps: cheap, and a runaway statement stops.
        await_(dbapi_connection._connection.set_progress_handler(_past_deadline, 20_000))
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        # FULL: an acknowledged write survives a power cut, not only a crash.
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute(f"PRAGMA busy_timeout = {int(lock_timeout_s * 1000)}")
        cursor.close()

    @event.listens_for(engine, "before_cursor_execute")
    def _arm(conn: Any, *_: Any) -> None:
        deadline = conn.connection.info.get("statement_deadline")
        if deadline is not None:
            deadline[0] = time.monotonic() + statement_timeout_s

    @event.listens_for(engine, "after_cursor_execute")
    def _disarm(conn: Any, *_: Any) -> None:
        deadline = conn.connection.info.get("statement_deadline")
        if deadline is not None:
            deadline[0] = math.inf

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")
