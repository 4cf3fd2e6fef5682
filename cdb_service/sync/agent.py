"""The agent's loop: fetch, verify, apply at `effective_from`, acknowledge, retry.

One round (`--once` is one round):
1. the current package (If-None-Match: the digest every target has, so an agent with
   nothing to do costs the registry a 304), verified offline (`verify_package`); a
   package that does not verify is refused with one line naming the file, and nothing
   of it is applied;
2. each target that has not got this digest gets it (`Target.apply`); a success is
   written to the state file at once, then acknowledged; a failure is never
   acknowledged and is tried again after an exponential backoff with jitter;
3. acknowledgements that failed are sent again (the package is not pushed again);
4. the next package (`/next`), verified and held until its `effective_from`, and said
   so per target (an acknowledgement with `scheduled_for`, once per digest and target,
   noted in the state file): the registry counts a target that will switch on time as
   confirmed before the switch. A scheduled acknowledgement that fails is retried with
   the same backoff; it never holds up the switch (none is sent in the last
   `wake_early_s` before it), and the applied acknowledgement after the switch upgrades
   it.

Running on, the agent sleeps until the poll interval, a retry or the next package's
`effective_from` (waking `wake_early_s` before it to fetch and verify it again), then
applies the held package at that moment, without asking the registry: an access point
switches on time even when the registry cannot be reached then.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cdb_service.logging import get_logger
from cdb_service.mistakes import UserMistake
from cdb_service.outbound import TokenRefused
from cdb_service.sync import state as saved
from cdb_service.sync.config import AgentConfig
from cdb_service.sync.registry_api import (
    NOT_MODIFIED,
    AcknowledgementFailed,
    RegistryApi,
    RegistryUnavailable,
)
from cdb_service.sync.state import Applied, State
from cdb_service.sync.target import Target, TargetFailed, VerifiedPackage
from cdb_service.sync.verifying import PackageRefused, verified

log = get_logger("cdb.sync")
# After a switch at a held package's effective_from, a registry whose clock is a little
# behind still serves the package before it: not a reason to switch back.
CLOCK_GRACE = dt.timedelta(minutes=5)

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Outcome:
    """What one round did; `ok` when everything is applied and acknowledged."""

    applied: list[str] = field(default_factory=list)  # kind:name@digest
    acknowledged: list[str] = field(default_factory=list)
    scheduled: list[str] = field(default_factory=list)  # kind:name@digest, held and said so
    problems: list[str] = field(default_factory=list)  # one line each
    next_effective_from: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


class Agent:
    def __init__(self, config: AgentConfig, api: RegistryApi | None = None,
                 clock: Clock = utc_now, stop: threading.Event | None = None) -> None:  # fmt: skip
        self.config, self.clock = config, clock
        self.api = api or RegistryApi(config)
        self.stop = stop or threading.Event()
        self.state: State = saved.load(config.state_file, config.party)
        self.current: VerifiedPackage | None = None
        self.held: VerifiedPackage | None = None
        self.ack_failures = 0
        self.ack_retry_at: dt.datetime | None = None
        self.random = random.Random()

    # --- one round ------------------------------------------------------------------------

    def round(self, *, honour_backoff: bool = False) -> Outcome:
        """Fetch, apply what is due, acknowledge. `honour_backoff`: leave alone a target
        (or the acknowledgements) whose next try is not due yet (`--once` tries all: the
        schedule that runs it is its backoff)."""
        outcome = Outcome()
        self._switch_if_due(outcome, honour_backoff)
        try:
            keys = self.api.key_set()
            fetched = self.api.package(ahead=False, known=self._common_digest())
            if fetched is not None and fetched is not NOT_MODIFIED:
                self.current = verified(fetched, keys, self.config)
            if self.current is not None:
                self._bring_all(self.current, outcome, honour_backoff)
            self._acknowledge_pending(outcome, honour_backoff)
            self._fetch_next(keys, outcome)
            self._acknowledge_scheduled(outcome, honour_backoff)
        except PackageRefused as refused:
            log.error("package refused", file=refused.file, detail=refused.detail,
                      party=self.config.party)  # fmt: skip
            outcome.problems.append(str(refused))
            self._acknowledge_pending(outcome, honour_backoff)
        except RegistryUnavailable as error:
            log.warning("registry unavailable", detail=str(error))
            outcome.problems.append(str(error))
        self._switch_if_due(outcome, honour_backoff)
        if self.held is not None:
            outcome.next_effective_from = self.held.effective_from
        return outcome

    def _switch_if_due(self, outcome: Outcome, honour_backoff: bool) -> None:
        due = self.held.effective_from if self.held is not None else None
        if due is not None and due <= self.clock():
            self.switch(outcome, honour_backoff=honour_backoff)

    def switch(self, outcome: Outcome | None = None, *, honour_backoff: bool = False) -> Outcome:
        """Apply the held package (its effective_from has come) to every target."""
        outcome = outcome or Outcome()
        held = self.held
        if held is None:
            return outcome
        log.info("switching to the next package", digest=held.digest,
                 effective_from=_iso(held.effective_from))  # fmt: skip
        self._bring_all(held, outcome, honour_backoff)
        if all(self._applied_digest(t) == held.digest for t in self.config.targets):
            self.current, self.held = held, None
            self.state.next_digest = self.state.next_effective_from = None
            self._save()
        self._acknowledge_pending(outcome, honour_backoff)
        return outcome

    def _common_digest(self) -> str | None:
        """The digest every target has applied, if they agree: the registry answers 304
        while it is still the current one, and there is nothing to apply."""
        digests = {self._applied_digest(t) for t in self.config.targets}
        return digests.pop() if len(digests) == 1 else None

    def _applied_digest(self, target: Target) -> str | None:
        mine = self.state.targets.get(saved.key(target.kind, target.name))
        return mine.applied.digest if mine and mine.applied else None

    def _scheduled_digest(self, target: Target) -> str | None:
        mine = self.state.targets.get(saved.key(target.kind, target.name))
        return mine.scheduled if mine else None

    def _bring_all(self, package: VerifiedPackage, outcome: Outcome, honour_backoff: bool) -> None:
        for target in self.config.targets:
            if self.stop.is_set():
                return
            if self._applied_digest(target) == package.digest or self._behind(target, package):
                continue
            mine = self.state.target(target.kind, target.name)
            if honour_backoff and mine.retry_at and dt.datetime.fromisoformat(
                    mine.retry_at) > self.clock():  # fmt: skip
                outcome.problems.append(f"apply {target.kind}:{target.name}: waiting to retry")
                continue
            self._bring(target, package, outcome)

    def _behind(self, target: Target, package: VerifiedPackage) -> bool:
        """Whether `package` is older than what `target` switched to at its effective_from
        moments ago (the registry's clock behind ours)."""
        mine = self.state.targets.get(saved.key(target.kind, target.name))
        if mine is None or mine.applied is None or mine.applied.effective_from is None:
            return False
        switched = dt.datetime.fromisoformat(mine.applied.effective_from)
        older = package.effective_from is None or package.effective_from < switched
        return older and self.clock() < switched + CLOCK_GRACE

    def _bring(self, target: Target, package: VerifiedPackage, outcome: Outcome) -> None:
        label = f"{target.kind}:{target.name}"
        try:
            answer = target.apply(package)
        except TargetFailed as failed:
            mine = self.state.target(target.kind, target.name)
            delay = self._backoff(mine.failures + 1)
            self.state.record_failure(target.kind, target.name, str(failed),
                                      self.clock() + dt.timedelta(seconds=delay))  # fmt: skip
            self._save()
            log.warning("apply failed", target=label, digest=package.digest, detail=str(failed),
                        transient=failed.transient, retry_in_s=round(delay, 1))  # fmt: skip
            outcome.problems.append(f"apply {label}: {failed}")
            return
        applied = Applied(package.digest, self.clock().isoformat(), _small(answer),
                          _iso(package.effective_from))  # fmt: skip
        self.state.record_apply(target.kind, target.name, applied)
        self._save()  # before the acknowledgement: a restart must not push it again
        log.info("applied", target=label, digest=package.digest)
        outcome.applied.append(f"{label}@{package.digest}")

    def _acknowledge_pending(self, outcome: Outcome, honour_backoff: bool) -> None:
        if honour_backoff and self.ack_retry_at and self.ack_retry_at > self.clock():
            if any(t.unacknowledged for t in self.state.targets.values()):
                outcome.problems.append("acknowledgements: waiting to retry")
            return
        for label, mine in sorted(self.state.targets.items()):
            kind, _, name = label.partition(":")
            for applied in list(mine.unacknowledged):
                try:
                    self.api.acknowledge(applied.digest, kind, name, applied.applied_at,
                                         applied.answer)  # fmt: skip
                except AcknowledgementFailed as failed:
                    self.ack_failures += 1
                    delay = self._backoff(self.ack_failures)
                    self.ack_retry_at = self.clock() + dt.timedelta(seconds=delay)
                    log.warning("acknowledgement failed", target=label, digest=applied.digest,
                                detail=str(failed), retry_in_s=round(delay, 1))  # fmt: skip
                    outcome.problems.append(f"acknowledge {label}: {failed}")
                    return  # the registry is refusing or away: the rest waits as well
                self.ack_failures, self.ack_retry_at = 0, None
                self.state.record_acknowledged(kind, name, applied.digest)
                self._save()
                log.info("acknowledged", target=label, digest=applied.digest)
                outcome.acknowledged.append(f"{label}@{applied.digest}")

    def _acknowledge_scheduled(self, outcome: Outcome, honour_backoff: bool) -> None:
        """Per target that runs the current package and has not said it holds the next: say
        so (`scheduled_for` its effective_from). Not in the last `wake_early_s` before
        the switch: a slow registry then must not delay it, and the applied
        acknowledgement follows within moments."""
        held = self.held
        due = held.effective_from if held is not None else None
        if held is None or due is None:
            return
        now = self.clock()
        if now >= due - dt.timedelta(seconds=self.config.wake_early_s):
            return
        # Only targets that run the current package (after a 304, the one every target
        # has): one that failed to take it is not known to switch on time, and the
        # rollout must not count it so.
        current = self.current.digest if self.current is not None else self._common_digest()
        if current is None:
            return
        waiting = [t for t in self.config.targets if self._applied_digest(t) == current
                   and self._scheduled_digest(t) != held.digest]  # fmt: skip
        if honour_backoff and waiting and self.ack_retry_at and self.ack_retry_at > now:
            outcome.problems.append("acknowledgements: waiting to retry")
            return
        for target in waiting:
            label = f"{target.kind}:{target.name}"
            try:
                self.api.acknowledge(held.digest, target.kind, target.name, now,
                                     "verified and held by cdb-service connector-sync",
                                     scheduled_for=due)  # fmt: skip
            except AcknowledgementFailed as failed:
                if not failed.final:
                    self.ack_failures += 1
                    delay = self._backoff(self.ack_failures)
                    self.ack_retry_at = self.clock() + dt.timedelta(seconds=delay)
                    log.warning("scheduled acknowledgement failed", target=label,
                                digest=held.digest, detail=str(failed),
                                retry_in_s=round(delay, 1))  # fmt: skip
                    outcome.problems.append(f"acknowledge scheduled {label}: {failed}")
                    return
                # Refused as such (a registry without scheduled acknowledgements): the
                # same body would be refused again; the applied one will be sent.
                log.warning("scheduled acknowledgement refused, not sent again",
                            target=label, digest=held.digest, detail=str(failed))  # fmt: skip
            else:
                self.ack_failures, self.ack_retry_at = 0, None
                log.info("acknowledged as scheduled", target=label, digest=held.digest,
                         scheduled_for=_iso(due))  # fmt: skip
                outcome.scheduled.append(f"{label}@{held.digest}")
            self.state.target(target.kind, target.name).scheduled = held.digest
            self._save()

    def _fetch_next(self, keys: Any, outcome: Outcome) -> None:
        known = self.held.digest if self.held is not None else None
        fetched = self.api.package(ahead=True, known=known)
        if fetched is NOT_MODIFIED:
            return
        if fetched is None:
            self.held = None
        else:
            self.held = verified(fetched, keys, self.config)
            if self.held.effective_from is None:
                raise PackageRefused("manifest.json", "a next package without effective_from")
        digest = self.held.digest if self.held else None
        if digest != self.state.next_digest:
            self.state.next_digest = digest
            self.state.next_effective_from = _iso(self.held.effective_from if self.held else None)
            self._save()
            if self.held is not None:
                log.info("next package held", digest=digest,
                         effective_from=self.state.next_effective_from)  # fmt: skip

    def _backoff(self, failures: int) -> float:
        """Exponential, capped, with jitter: between half and all of base·2^(n-1)."""
        grown = self.config.retry_base_s * 2.0 ** min(failures - 1, 30)
        ceiling = min(self.config.retry_max_s, grown)
        return float(ceiling * (0.5 + 0.5 * self.random.random()))

    def _save(self) -> None:
        saved.save(self.config.state_file, self.state)

    # --- running on -----------------------------------------------------------------------

    def wake_in(self, outcome: Outcome) -> float:
        """Seconds until the next thing to do: the poll, a retry, the early wake before
        the held package's effective_from (or that moment itself, once inside it)."""
        now = self.clock()
        moments = [now + dt.timedelta(seconds=self.config.poll_s)]
        retries = [t.retry_at for t in self.state.targets.values() if t.retry_at]
        moments += [dt.datetime.fromisoformat(r) for r in retries]
        if self.ack_retry_at is not None:
            moments.append(self.ack_retry_at)
        # A retry moment already past was due in the round just ended (tried, or nothing
        # left to try): it must not make the loop spin.
        moments = [m for m in moments if m > now]
        due = outcome.next_effective_from
        if due is not None and due > now:  # one already past was switched to (or retries)
            early = due - dt.timedelta(seconds=self.config.wake_early_s)
            moments.append(early if early > now else due)
        return max(0.0, (min(moments) - now).total_seconds())

    def run(self) -> None:
        """Rounds until `stop` is set (SIGTERM)."""
        log.info("connector-sync starting", party=self.config.party,
                 targets=[f"{t.kind}:{t.name}" for t in self.config.targets])  # fmt: skip
        while not self.stop.is_set():
            try:
                outcome = self.round(honour_backoff=True)
            except (UserMistake, TokenRefused) as error:
                # Refused credentials or a wrong party: said, then tried again at the poll
                # (a person may fix the registry's side without restarting the agent).
                log.error("connector-sync refused", detail=str(error))
                outcome = Outcome(problems=[str(error)])
            self.stop.wait(self.wake_in(outcome))
        log.info("connector-sync stopped", party=self.config.party)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _small(answer: Any) -> Any:
    """The target's answer as the registry takes it (a string or an object of at most 4 KiB
    as JSON); a larger one is cut to a string."""
    import json

    try:
        text = json.dumps(answer, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(answer)[:3000]
    if len(text.encode()) <= 3800 and isinstance(answer, dict | str):
        return json.loads(text)
    return text[:3000]
