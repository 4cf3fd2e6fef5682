"""The `connector4-dir` target: the files connector 4.x imports when it starts.

Connector 4.x reads `connector.init.pmode.*` at start: a PMode file and a truststore (JKS
only) with its password. This target replaces those files in one directory, then runs
the operator's restart command (optional) so the connector imports them.

Each file is replaced atomically (written beside it as a temporary file, fsynced, then
renamed over it with `os.replace`, then the directory fsynced): a connector that starts
at any moment reads a whole old file or a whole new one, never a half-written one. All
temporary files are written before the first rename, so the window in which the
directory holds a mix of two packages is a few renames long.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdb_service.sync.target import TargetFailed, VerifiedPackage

KIND = "connector4-dir"
# package member -> the setting naming the file it becomes, and that file's default name
FILES = {
    "pmode.xml": ("pmode_file", "pmode.xml"),
    "truststore.jks": ("truststore_file", "truststore.jks"),
    "connectorstore.jks": ("connectorstore_file", "connectorstore.jks"),
}
DEFAULT_RESTART_TIMEOUT_S = 120.0
OUTPUT_KEPT = 300  # characters of a failed restart command's output, in the error


@dataclass
class DirectoryTarget:
    name: str
    directory: Path
    names: Mapping[str, str]  # package member -> file name in `directory`
    restart_command: tuple[str, ...] | None = None
    restart_timeout_s: float = DEFAULT_RESTART_TIMEOUT_S
    kind: str = KIND

    def apply(self, package: VerifiedPackage) -> Mapping[str, Any]:
        missing = [m for m in self.names if m not in package.files]
        if missing:
            raise TargetFailed(f"the package has no {missing[0]}", transient=False)
        written = {self.names[m]: package.files[m] for m in self.names}
        try:
            replace_all(self.directory, written)
        except OSError as error:
            raise TargetFailed(f"cannot write into {self.directory}: {error}") from error
        answer: dict[str, Any] = {
            "directory": str(self.directory),
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in written.items()},
        }
        if self.restart_command:
            answer["restart"] = self._restart()
        return answer

    def _restart(self) -> dict[str, Any]:
        command = list(self.restart_command or ())
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, check=False,
                timeout=self.restart_timeout_s, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise TargetFailed(f"the restart command {command[0]} did not end within "
                               f"{self.restart_timeout_s:g} s") from None  # fmt: skip
        except OSError as error:
            raise TargetFailed(f"cannot run the restart command {command[0]}: {error}",
                               transient=False) from error  # fmt: skip
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().replace("\n", " ")[-OUTPUT_KEPT:]
            raise TargetFailed(f"the restart command {command[0]} exited with status "
                               f"{done.returncode}: {said}")  # fmt: skip
        return {"command": command[0], "exit_status": 0}


def replace_all(directory: Path, files: Mapping[str, bytes]) -> None:
    """Write every file beside its destination, then rename each over it (atomic per
    file), then fsync the directory so the renames survive a crash."""
    staged: list[tuple[str, Path]] = []
    try:
        for name, data in files.items():
            handle, made = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
            staged.append((name, Path(made)))
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(made, 0o640)  # the stores are public, but not everyone's business
        for name, temporary in staged:
            os.replace(temporary, directory / name)
        staged.clear()
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    finally:
        for _, temporary in staged:  # a failure half-way leaves no temporary file behind
            with contextlib.suppress(OSError):
                temporary.unlink()


def from_settings(name: str, settings: Mapping[str, Any]) -> DirectoryTarget:
    """The target a `[[targets]]` table of kind connector4-dir describes."""
    from cdb_service.sync.config import Reader

    reader = settings if isinstance(settings, Reader) else Reader(Path("config"), settings)
    allowed = {"directory", "restart_command", "restart_timeout_seconds"}
    reader.unknown(allowed | {setting for setting, _ in FILES.values()})
    directory = reader.path("directory")
    if not directory.is_dir():
        raise reader.mistake("directory", f"is not a directory: {directory}")
    names = {member: reader.text(setting, default) for member, (setting, default) in FILES.items()}
    for member, file in names.items():
        if "/" in file or file in (".", ".."):
            raise reader.mistake(FILES[member][0], "must be a file name in the directory")
    if len(set(names.values())) != len(names):
        raise reader.mistake("pmode_file", "and the store files must have different names")
    return DirectoryTarget(
        name, directory, names, reader.words("restart_command"),
        reader.seconds("restart_timeout_seconds", DEFAULT_RESTART_TIMEOUT_S, 1.0),
    )  # fmt: skip
