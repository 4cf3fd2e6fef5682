"""Where the service of a data directory is listening, for the commands that call it.

`cdb-service serve` writes `$CDB_DATA_DIR/running.json` (its URL, the token issuer it
accepts and its process id) once it listens and removes it when it stops. `dev-token`
and `dev-url` read it, so that a newcomer who started the service on another port
never has to repeat the port: the commands find it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cdb_service.settings import Settings, TlsMode

RECORD = "running.json"


@dataclass(frozen=True)
class RunningService:
    url: str
    issuer: str
    pid: int

    @classmethod
    def of(cls, settings: Settings) -> RunningService:
        scheme = "https" if settings.tls_mode is TlsMode.DIRECT else "http"
        # The dev certificate names localhost; a wildcard address is reached through it too.
        host = (
            "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::1", "::") else settings.host
        )
        return cls(f"{scheme}://{host}:{settings.port}", settings.oidc_issuer, os.getpid())


def _path(data_dir: Path) -> Path:
    return data_dir / RECORD


def record(settings: Settings) -> RunningService:
    running = RunningService.of(settings)
    path = _path(settings.data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(asdict(running)), "utf-8")
    partial.replace(path)
    return running


def forget(settings: Settings) -> None:
    """Remove the record if it is this process's own (another service may have replaced it)."""
    found = find(settings.data_dir)
    if found is not None and found.pid == os.getpid():
        _path(settings.data_dir).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find(data_dir: Path) -> RunningService | None:
    """The service that runs on `data_dir`, if its record is there and its process lives."""
    try:
        data = json.loads(_path(data_dir).read_text("utf-8"))
        running = RunningService(str(data["url"]), str(data["issuer"]), int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return running if _alive(running.pid) else None
