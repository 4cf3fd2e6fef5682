"""The probe's own embedded store: one SQLite file, never the database it watches.

Durable by construction: WAL journal, `synchronous=FULL`, one transaction per sample,
so a probe killed at any moment (kill -9) loses at most the sample it was taking.
Instants are stored as UTC epoch seconds (REAL).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdb_service.probe.availability import Sample

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT,
    detail TEXT,
    latency_ms REAL,
    slow INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ix_samples_at ON samples (at);
CREATE TABLE IF NOT EXISTS windows (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    component TEXT NOT NULL,
    starts_at REAL NOT NULL,
    ends_at REAL NOT NULL,
    announced_at REAL NOT NULL,
    cancelled INTEGER NOT NULL,
    reason TEXT,
    fetched_at REAL NOT NULL,
    recurrence TEXT
);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    detected_at REAL NOT NULL,
    notified_at REAL,
    expected_recovery_at REAL,
    ended_at REAL,
    description TEXT NOT NULL,
    error TEXT,
    remote_id TEXT,
    remote_version INTEGER,
    delivered TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def ts(at: dt.datetime) -> float:
    return at.timestamp()


def instant(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


@dataclass(frozen=True)
class Recorded:
    at: dt.datetime
    ok: bool
    error: str | None
    detail: str | None
    latency_ms: float | None
    slow: bool

    def sample(self) -> Sample:
        return Sample(self.at, self.ok)


@dataclass(frozen=True)
class Window:
    id: str
    owner: str
    component: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    announced_at: dt.datetime
    cancelled: bool
    reason: str | None
    # A regular window's day and time (kernel/recurrence.py); None for a one-off.
    recurrence: dict[str, Any] | None = None


@dataclass(frozen=True)
class Incident:
    id: int
    started_at: dt.datetime
    detected_at: dt.datetime
    notified_at: dt.datetime | None
    expected_recovery_at: dt.datetime | None
    ended_at: dt.datetime | None
    description: str
    error: str | None
    remote_id: str | None
    remote_version: int | None

    def as_dict(self) -> dict[str, Any]:
        def iso(value: dt.datetime | None) -> str | None:
            return None if value is None else value.isoformat().replace("+00:00", "Z")

        end = self.ended_at
        return {
            "id": self.id,
            "started_at": iso(self.started_at),
            "detected_at": iso(self.detected_at),
            "notified_at": iso(self.notified_at),
            "expected_recovery_at": iso(self.expected_recovery_at),
            "ended_at": iso(end),
            "duration_s": None if end is None else (end - self.started_at).total_seconds(),
            "description": self.description,
            "error": self.error,
            "service_incident_id": self.remote_id,
        }


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.executescript(SCHEMA)
        self._upgrade()
        # The sampling loop and the notifier thread share the connection: one transaction
        # at a time.
        self._lock = threading.RLock()

    def _upgrade(self) -> None:
        """Stores written before incidents were queued: what they sent counts as delivered.
        Stores written before regular windows: their windows are one-off (the next fetch
        brings the recurrences)."""
        windows = {row[1] for row in self.db.execute("PRAGMA table_info(windows)")}
        if "recurrence" not in windows:
            self.db.execute("ALTER TABLE windows ADD COLUMN recurrence TEXT")
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(incidents)")}
        if "delivered" not in columns:
            self.db.execute("ALTER TABLE incidents ADD COLUMN delivered TEXT")
            self.db.execute(
                "UPDATE incidents SET delivered = CASE WHEN ended_at IS NULL THEN 'open' "
                "ELSE 'closed' END WHERE remote_id IS NOT NULL"
            )

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    # --- samples -----------------------------------------------------------------------

    def record(self, sample: Recorded) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO samples (at, ok, error, detail, latency_ms, slow) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (ts(sample.at), int(sample.ok), sample.error, sample.detail, sample.latency_ms,
                 int(sample.slow)),
            )  # fmt: skip

    def samples(self, since: dt.datetime | None = None, until: dt.datetime | None = None
                ) -> list[Recorded]:  # fmt: skip
        lo = ts(since) if since else float("-inf")
        hi = ts(until) if until else float("inf")
        rows = self.db.execute(
            "SELECT at, ok, error, detail, latency_ms, slow FROM samples "
            "WHERE at >= ? AND at < ? ORDER BY at",
            (lo, hi),
        ).fetchall()
        return [
            Recorded(instant(r[0]), bool(r[1]), r[2], r[3], r[4], bool(r[5]))  # type: ignore[arg-type]
            for r in rows
        ]

    def first_sample_at(self) -> dt.datetime | None:
        """When monitoring began: the first sample this store holds."""
        row = self.db.execute("SELECT min(at) FROM samples").fetchone()
        return instant(row[0]) if row else None

    def last_samples(self, n: int) -> list[Recorded]:
        rows = self.db.execute(
            "SELECT at, ok, error, detail, latency_ms, slow FROM samples ORDER BY at DESC LIMIT ?",
            (n,),
        ).fetchall()
        return [
            Recorded(instant(r[0]), bool(r[1]), r[2], r[3], r[4], bool(r[5]))  # type: ignore[arg-type]
            for r in reversed(rows)
        ]

    # --- maintenance windows (a copy of the watched service's) ---------------------------

    def replace_windows(self, windows: Sequence[Window], fetched_at: dt.datetime) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM windows")
            db.executemany(
                "INSERT INTO windows (id, owner, component, starts_at, ends_at, announced_at, "
                "cancelled, reason, fetched_at, recurrence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(w.id, w.owner, w.component, ts(w.starts_at), ts(w.ends_at), ts(w.announced_at),
                  int(w.cancelled), w.reason, ts(fetched_at),
                  json.dumps(w.recurrence) if w.recurrence else None) for w in windows],
            )  # fmt: skip

    def windows(self) -> list[Window]:
        rows = self.db.execute(
            "SELECT id, owner, component, starts_at, ends_at, announced_at, cancelled, reason, "
            "recurrence FROM windows ORDER BY starts_at"
        ).fetchall()
        return [
            Window(r[0], r[1], r[2], instant(r[3]), instant(r[4]), instant(r[5]),  # type: ignore[arg-type]
                   bool(r[6]), r[7], json.loads(r[8]) if r[8] else None)
            for r in rows
        ]  # fmt: skip

    # --- incidents ------------------------------------------------------------------------

    def open_incident(
        self,
        started_at: dt.datetime,
        detected_at: dt.datetime,
        description: str,
        error: str | None,
        expected_recovery_at: dt.datetime | None,
    ) -> Incident:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO incidents (started_at, detected_at, notified_at, expected_recovery_at,"
                " description, error) VALUES (?, ?, ?, ?, ?, ?)",
                (ts(started_at), ts(detected_at), ts(detected_at),
                 ts(expected_recovery_at) if expected_recovery_at else None, description, error),
            )  # fmt: skip
            incident_id = cursor.lastrowid
        found = self.incident(int(incident_id or 0))
        assert found is not None
        return found

    def close_incident(self, incident_id: int, ended_at: dt.datetime) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE incidents SET ended_at = ? WHERE id = ?", (ts(ended_at), incident_id)
            )

    def set_remote(self, incident_id: int, remote_id: str, version: int, delivered: str) -> None:
        """The service accepted the incident as `delivered` ('open' or 'closed')."""
        with self.transaction() as db:
            db.execute(
                "UPDATE incidents SET remote_id = ?, remote_version = ?, delivered = ? "
                "WHERE id = ?",
                (remote_id, version, delivered, incident_id),
            )

    def undelivered(self) -> list[Incident]:
        """Incidents whose present state the service has not accepted yet (the queue)."""
        return self._incidents(
            "WHERE delivered IS NULL OR (ended_at IS NOT NULL AND delivered != 'closed')", ()
        )

    def incident(self, incident_id: int) -> Incident | None:
        found = self._incidents("WHERE id = ?", (incident_id,))
        return found[0] if found else None

    def incidents(self) -> list[Incident]:
        return self._incidents("", ())

    def current_incident(self) -> Incident | None:
        found = self._incidents("WHERE ended_at IS NULL", ())
        return found[-1] if found else None

    def _incidents(self, where: str, params: tuple[Any, ...]) -> list[Incident]:
        rows = self.db.execute(
            "SELECT id, started_at, detected_at, notified_at, expected_recovery_at, ended_at,"
            f" description, error, remote_id, remote_version FROM incidents {where} ORDER BY id",
            params,
        ).fetchall()
        return [
            Incident(r[0], instant(r[1]), instant(r[2]), instant(r[3]), instant(r[4]),  # type: ignore[arg-type]
                     instant(r[5]), r[6], r[7], r[8], r[9])
            for r in rows
        ]  # fmt: skip

    # --- settings the report needs ----------------------------------------------------------

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])
