"""The parent of `serve --workers N`: forks every worker from itself and replaces one
that dies as soon as the kernel says so.

uvicorn's own supervisor started each worker as a fresh interpreter (multiprocessing's
`spawn`) that imported the whole service again, and looked at its workers every half
second: a killed worker was replaced after seconds of imports, longer on a busy
machine. Here the parent has imported the service and built its app before it forks,
so a replacement only opens its database pool and builds its lookup index; SIGCHLD
wakes the parent the moment a worker ends.

A worker that dies soon after it started is restarted after a growing pause (a crash
loop must not spin), one that failed its start-up ends the service (the same failure
would follow every restart: systemd or Kubernetes restarts the whole, and says so).
SIGTERM and SIGINT reach every worker; whichever is still running `stop_timeout_s`
later is killed.

`share_metrics` must run before anything imports prometheus-client (it chooses its
multiprocess mode on import), which is why this module imports neither.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from cdb_service.logging import get_logger

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STARTUP_FAILURE = 3  # a worker's exit status when its app did not start (uvicorn's)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
WATCHED = (*STOP_SIGNALS, signal.SIGCHLD, signal.SIGHUP)
QUICK_DEATH_S = 5.0  # a worker that lived less than this is restarted after a pause
MAX_PAUSE_S = 10.0
log = get_logger("cdb.supervisor")


def share_metrics(directory: Path) -> None:
    """Before the service is imported: an empty directory for the workers' metrics,
    named in the environment (prometheus-client reads it on import). Files of an
    earlier run would be summed in otherwise."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)


@dataclass
class _Slot:
    pid: int = 0
    started: float = 0.0
    quick_deaths: int = 0
    due: float | None = None  # when to start the next worker in this slot


@dataclass
class Supervisor:
    """`workers` processes running `work` (it returns the worker's exit status);
    `gone(pid)` is told of each one that ended, however it ended."""

    workers: int
    work: Callable[[], int]
    gone: Callable[[int], None] = lambda pid: None
    stop_timeout_s: float = 30.0
    slots: list[_Slot] = field(default_factory=list)
    _stopping: bool = False
    _deadline: float = 0.0
    _status: int = 0

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT (0) or until a worker cannot start (3)."""
        if threading.active_count() > 1:  # a thread's locks would be copied mid-use
            log.warning("forking workers beside threads", threads=threading.active_count())
        gc.collect()
        gc.freeze()  # what the parent built stays shared with the workers (copy-on-write)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous = {sig: signal.signal(sig, _note) for sig in WATCHED}
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        try:
            self.slots = [_Slot() for _ in range(self.workers)]
            for slot in self.slots:
                self._start(slot, (wake_r, wake_w))
            while not self._stopping or any(s.pid for s in self.slots):
                self._wait(wake_r)
                self._reap()
                if self._stopping:
                    if time.monotonic() > self._deadline:
                        self._signal_all(signal.SIGKILL)
                    continue
                for slot in self.slots:
                    if not slot.pid and slot.due is not None and slot.due <= time.monotonic():
                        self._start(slot, (wake_r, wake_w))
        finally:
            signal.set_wakeup_fd(-1)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)
        log.info("workers stopped", status=self._status)
        return self._status

    # --- the parent's loop ---------------------------------------------------------------

    def _wait(self, wake_r: int) -> None:
        """Until a signal arrives, or a paused restart is due (at most a second)."""
        now = time.monotonic()
        dues = [s.due for s in self.slots if s.due is not None and not s.pid]
        timeout = min([1.0, *(max(0.0, d - now) for d in dues)])
        readable, _, _ = select.select([wake_r], [], [], timeout)
        if not readable:
            return
        with contextlib.suppress(BlockingIOError):
            for number in os.read(wake_r, 512):
                if number in STOP_SIGNALS and not self._stopping:
                    self._stop(f"received {signal.Signals(number).name}")
                elif number == signal.SIGHUP:
                    log.info("SIGHUP ignored: restart the service to replace its workers")

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.gone(pid)
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            slot.pid = 0
            code = os.waitstatus_to_exitcode(status)
            if self._stopping:
                continue
            lived = time.monotonic() - slot.started
            log.warning("worker died", worker=pid, exit=code, lived_s=round(lived, 2))
            if code == STARTUP_FAILURE:
                self._status = STARTUP_FAILURE
                self._stop("a worker could not start; the next one would fail the same way")
                continue
            # At once; again and again soon after its start: after 0.5 s, 1 s, 2 s … 10 s.
            slot.quick_deaths = slot.quick_deaths + 1 if lived < QUICK_DEATH_S else 0
            n = slot.quick_deaths
            slot.due = time.monotonic() + (min(MAX_PAUSE_S, 0.5 * 2 ** (n - 2)) if n > 1 else 0)

    def _stop(self, why: str) -> None:
        log.info("stopping workers", reason=why)
        self._stopping = True
        self._deadline = time.monotonic() + self.stop_timeout_s
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, sig: int) -> None:
        for slot in self.slots:
            if slot.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, sig)

    # --- a worker --------------------------------------------------------------------------

    def _start(self, slot: _Slot, wake: tuple[int, int]) -> None:
        # No signal between the fork and the worker's own handlers runs the parent's.
        signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
        try:
            pid = os.fork()
            if pid == 0:
                self._become_worker(wake)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WATCHED)
        slot.pid, slot.started, slot.due = pid, time.monotonic(), None
        log.info("worker started", worker=pid)

    def _become_worker(self, wake: tuple[int, int]) -> NoReturn:
        """In the child: the default signal handling back, then the work; never returns."""
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            for sig in WATCHED:
                signal.signal(sig, signal.SIG_DFL)
            for fd in wake:
                os.close(fd)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WATCHED)
            status = self.work()
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(status)


def _note(signum: int, frame: object) -> None:
    """The signal's number reaches the loop through the wake-up pipe."""
