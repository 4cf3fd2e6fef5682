"""The probe loop: call the service the way a client does, record every sample, open incidents.

Every interval: GET /health/ready (no credentials needed, but sent), one known-good
lookup (mTLS + bound token) and GET /health/ready/write (a 503 there: writes cannot
commit, an outage for writers though look-ups answer). A fresh connection per sample,
so that TLS is checked every time (chain, host name, expiry). Outcome classes:
  connect, tls, timeout, transport, http-5xx, health-fail, lookup-http-<status>, wrong-answer,
  write-fail.
A sample slower than the latency objective but under the timeout is ok (and marked slow).
Two consecutive failed samples confirm an outage: the probe opens an incident counted from
the first failure, and closes it at the first success.

Samples keep a fixed schedule whatever the service does: tick k is due at start + k·interval,
each sample runs in a worker thread and gets at most min(timeout, interval); one that has no
answer by then is recorded as a failure ("timeout") at its own scheduled instant, and the
next tick starts on time. A hung service is therefore seen as down sample after sample,
never as a gap (a gap is unknown time, and only the probe's own absence makes one).
Notifying the service and fetching maintenance windows run in a thread of their own, so
they never hold a tick either.

Incidents are copied to the service from a queue kept in the probe's store: an incident
whose present state (open, or closed) the service has not accepted is sent again after
every sample until it is, whatever the refusal (unreachable, 401, 403, 503), and a probe
restarted on the same store goes on with the queue it left.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import httpx

from cdb_service import outbound
from cdb_service.probe.config import ProbeConfig
from cdb_service.probe.notices import Notices, ref_of
from cdb_service.probe.service_calls import (
    has_matches,
    health_status,
    outcome_of,
    update_copy,
    window_of,
)
from cdb_service.probe.store import Recorded, Store, Window

log = logging.getLogger("cdb_service.probe")
# A sample's own timeouts end it; this covers the thread's scheduling, not the service.
SAMPLE_GRACE_S = 0.05


class Prober:
    def __init__(self, config: ProbeConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.windows_fetched = 0.0
        self.stopping = False
        self._side: ThreadPoolExecutor | None = None
        self._delivering = threading.Lock()
        self.notices: Notices | None = None
        if config.notify:
            self.notices = Notices(store, config.webhook_allowed_networks, config.webhook_ca,
                                   config.smtp, config.timeout_s)  # fmt: skip

    def _client(self, timeout: float, tls: outbound.TlsIdentity | None = None) -> httpx.Client:
        # The fields are read at each call: a fresh client per sample checks TLS every time.
        # Each request names its token (`auth=`): the sample's or the incident one.
        return outbound.client(
            self.config.target, tls or self.config.tls,
            timeout=httpx.Timeout(timeout), headers={"User-Agent": "cdb-probe"},
        )  # fmt: skip

    @property
    def budget_s(self) -> float:
        """What one sample may take: its timeout, and never more than the interval."""
        return min(self.config.timeout_s, self.config.interval_s)

    def take_sample(self, at: dt.datetime | None = None) -> Recorded:
        at = at or dt.datetime.now(dt.UTC)
        started = time.monotonic()
        deadline = started + self.budget_s
        error: str | None = None
        detail: str | None = None
        # Read before the sample: an unreadable token file is the probe's fault, not an outage.
        bearer = self.config.sample_bearer
        auth: httpx.Auth
        if isinstance(bearer, outbound.BearerToken):
            auth = outbound.BearerToken(bearer.value())
        else:
            # From the issuer, renewed before it expires; the issuer's refusal is what a
            # client of the service would meet too, so it is a failed sample ("token").
            auth = bearer
            try:
                bearer.value()
            except outbound.TokenRefused as refused:
                latency_ms = round((time.monotonic() - started) * 1000, 1)
                return Recorded(at, False, "token", str(refused)[:300], latency_ms, False)
        try:
            with self._client(self.budget_s) as client:
                health = client.get("/health/ready", auth=auth)
                if health.status_code >= 500 and health.status_code != 503:
                    error, detail = "http-5xx", f"health {health.status_code}"
                elif health.status_code != 200 or health_status(health) == "fail":
                    error, detail = "health-fail", f"health {health.status_code}"
                else:
                    remaining = max(0.1, deadline - time.monotonic())
                    lookup = client.get(self.config.lookup, timeout=remaining, auth=auth)
                    if lookup.status_code >= 500:
                        error, detail = "http-5xx", f"lookup {lookup.status_code}"
                    elif lookup.status_code != 200:
                        error, detail = f"lookup-http-{lookup.status_code}", lookup.text[:200]
                    elif not has_matches(lookup):
                        error, detail = "wrong-answer", lookup.text[:200]
                    else:
                        remaining = max(0.1, deadline - time.monotonic())
                        write = client.get("/health/ready/write", timeout=remaining, auth=auth)
                        if write.status_code == 503:  # absent (a mirror's 404): no writes there
                            error, detail = "write-fail", write.text[:200]
        except Exception as exc:  # every failure to get an answer is a sample, not a crash
            error, detail = outcome_of(exc), f"{type(exc).__name__}: {exc}"[:300]
        latency_ms = (time.monotonic() - started) * 1000
        if error is None and latency_ms > self.budget_s * 1000:
            error, detail = "timeout", f"{latency_ms:.0f} ms"
        slow = error is None and latency_ms > self.config.latency_objective_ms
        return Recorded(at, error is None, error, detail, round(latency_ms, 1), slow)

    def step(self, at: dt.datetime | None = None) -> Recorded:
        """One sample, now (or for the tick due at `at`), recorded and followed up."""
        return self._record(self.take_sample(at))

    def _record(self, sample: Recorded) -> Recorded:
        self.store.record(sample)
        self._follow_incidents(sample)
        if self.config.posts_incidents and self.store.undelivered():
            self._aside(self._deliver_queued)
        self._aside(self._renew_tokens)
        if self.notices is not None and self.notices.pending():
            self._aside(self.notices.deliver)
        if sample.ok and time.monotonic() - self.windows_fetched >= self.config.windows_every_s:
            self.windows_fetched = time.monotonic()
            self._aside(self._refresh_windows)
            if self.notices is not None:
                self._aside(self._refresh_subscribers)
        return sample

    def _renew_tokens(self) -> None:
        """Tokens from the issuer are renewed between samples, so that no sample's time
        includes a call to the issuer (and an issuer's hiccup is retried before it counts)."""
        ahead = 2 * self.config.interval_s + self.config.timeout_s
        for credentials in (self.config.sample_credentials, self.config.incident_credentials):
            if credentials is not None:
                try:
                    credentials.renew_ahead(ahead)
                except outbound.TokenRefused as refused:
                    log.warning("probe: could not renew a token: %s", refused)

    def _aside(self, work: Callable[[], None]) -> None:
        """Run `work` off the sampling loop (in tests without `run`, inline)."""
        if self._side is None:
            work()
        else:
            self._side.submit(work)

    def _follow_incidents(self, sample: Recorded) -> None:
        current = self.store.current_incident()
        if sample.ok:
            if current is not None:
                self.store.close_incident(current.id, sample.at)
                self._notice(current.id, "incident.closed")
                lasted = (sample.at - current.started_at).total_seconds()
                log.warning("probe: outage over after %.1f s (incident %s)", lasted, current.id)
            return
        if current is not None:
            return
        recent = self.store.last_samples(2)
        if len(recent) == 2 and not recent[0].ok:
            first = self._first_failure()
            incident = self.store.open_incident(
                first, sample.at, f"outage detected by the probe: {sample.error}",
                sample.error, None,
            )  # fmt: skip
            log.error("probe: outage confirmed since %s (%s), incident %s",
                      first.isoformat(), sample.detail, incident.id)  # fmt: skip
            self._notice(incident.id, "incident.opened")

    def _notice(self, incident_id: int, event_type: str) -> None:
        """Queue the subscribers' notice of the probe's incident (sent after the sample)."""
        incident = self.store.incident(incident_id)
        if self.notices is not None and incident is not None:
            self.notices.queue(incident, event_type)

    def _first_failure(self) -> dt.datetime:
        row = self.store.db.execute(
            "SELECT min(at) FROM samples WHERE ok = 0 AND at > "
            "coalesce((SELECT max(at) FROM samples WHERE ok = 1), -1e18)"
        ).fetchone()
        return dt.datetime.fromtimestamp(float(row[0]), dt.UTC)

    def _deliver_queued(self) -> None:
        """Send every queued incident once, oldest first; one delivery round at a time."""
        if not self._delivering.acquire(blocking=False):
            return
        try:
            for incident in self.store.undelivered():
                if self.stopping:
                    return
                self._notify_service(incident.id)
        finally:
            self._delivering.release()

    def _notify_service(self, incident_id: int) -> bool:
        """Copy the incident to the watched service's /api/v1/incidents; True once accepted.

        The probe's own store is the record; the service copy (owner EC, `source: probe`,
        keyed by `ref`) is created when the service can be reached. Later the probe reads
        the copy back and sets only what it measured (`ended_at`), so that what an
        operator added there (description, expected recovery) stays. A POST whose answer
        was lost (409 on the next try: the `ref` exists) finds the copy by `ref`.
        The incident token is bound to the incident certificate (default: the sample's).
        Not accepted: the incident stays queued in the store and is sent again later.
        """
        auth = self.config.incident_bearer
        incident = self.store.incident(incident_id)
        if incident is None:
            return True
        body = {
            "owner": "EC",
            "ref": ref_of(incident),
            "component": "cdb",
            "description": incident.description,
            "started_at": incident.started_at.isoformat(),
            "detected_at": incident.detected_at.isoformat(),
            "expected_recovery_at": None,
            "ended_at": incident.ended_at.isoformat() if incident.ended_at else None,
            "source": "probe",
        }
        delivered = "open" if incident.ended_at is None else "closed"
        try:
            if isinstance(auth, outbound.BearerToken):
                token = auth.value()
                if token is None:
                    return False
                auth = outbound.BearerToken(token)
            with self._client(self.config.timeout_s, self.config.incident_tls) as client:
                if incident.remote_id is None:
                    response = client.post("/api/v1/incidents", json=body, auth=auth)
                    if response.status_code == 409:  # the `ref` exists: an earlier answer was lost
                        found = update_copy(client, auth, body, None)
                        response = response if found is None else found
                else:
                    found = update_copy(client, auth, body, incident.remote_id)
                    if found is None:  # the copy is gone (another database): post it again
                        found = client.post("/api/v1/incidents", json=body, auth=auth)
                    response = found
            if response.status_code in (200, 201):
                document = response.json()
                self.store.set_remote(
                    incident.id, document["id"], int(document["version"]), delivered
                )
                return True
            log.warning("probe: the service refused incident %s (queued, will retry): %s %s",
                        incident.id, response.status_code, response.text[:200])  # fmt: skip
        except Exception as exc:
            log.warning("probe: could not post incident %s (queued, will retry): %s",
                        incident.id, exc)  # fmt: skip
        return False

    def _refresh_subscribers(self) -> None:
        """Copy the registry's subscriptions while it answers (the incident credentials)."""
        assert self.notices is not None
        try:
            auth = self.config.incident_bearer
            with self._client(self.config.timeout_s, self.config.incident_tls) as client:
                found = client.get("/api/v1/subscriptions/relay", auth=auth)
                found.raise_for_status()
            self.notices.replace_subscribers(found.json()["items"])
        except Exception as exc:
            log.warning("probe: could not copy the subscriptions: %s", exc)

    def _refresh_windows(self) -> None:
        windows: list[Window] = []
        try:
            auth = self.config.sample_bearer
            with self._client(self.config.timeout_s) as client:
                params: dict[str, Any] = {"limit": 1000}
                while True:
                    page = client.get("/api/v1/maintenance-windows", params=params, auth=auth)
                    page.raise_for_status()
                    body = page.json()
                    windows += [window_of(item) for item in body["items"]]
                    if not body.get("next"):
                        break
                    params = {"limit": 1000, "cursor": body["next"]}
        except Exception as exc:
            log.warning("probe: could not fetch maintenance windows: %s", exc)
            return
        self.store.replace_windows(windows, dt.datetime.now(dt.UTC))
        self.windows_fetched = time.monotonic()

    def run(self, max_samples: int | None = None) -> None:
        self.store.set_meta("interval_s", str(self.config.interval_s))
        self.store.set_meta("timeout_s", str(self.budget_s))
        self.store.set_meta("latency_objective_ms", str(self.config.latency_objective_ms))
        self.store.set_meta("target", self.config.target)
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        interval = self.config.interval_s
        # Samples that overran keep finishing in the background (bounded by their own
        # timeouts), so a few workers are enough for a service that hangs.
        workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="probe-sample")
        self._side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="probe-notify")
        start = time.monotonic()
        tick = 0
        try:
            while not self.stopping and (max_samples is None or tick < max_samples):
                due = start + tick * interval
                while not self.stopping and time.monotonic() < due:
                    time.sleep(min(0.2, max(0.0, due - time.monotonic())))
                if self.stopping:
                    break
                at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=time.monotonic() - due)
                pending = workers.submit(self.take_sample, at)
                try:
                    sample = pending.result(timeout=self.budget_s + SAMPLE_GRACE_S)
                except FutureTimeout:
                    sample = Recorded(at, False, "timeout",
                                      f"no answer within {self.budget_s:g} s",
                                      round(self.budget_s * 1000, 1), False)  # fmt: skip
                self._record(sample)
                tick += 1
                behind = time.monotonic() - (start + tick * interval)
                if behind > interval:
                    # The probe itself was held (suspended, starved): the ticks it missed
                    # were not observed, so they stay a gap (unknown), not invented samples.
                    missed = int(behind // interval)
                    log.warning("probe: %d tick(s) missed by the probe itself", missed)
                    tick += missed
        finally:
            workers.shutdown(wait=False, cancel_futures=True)
            self._side.shutdown(wait=False, cancel_futures=True)
            self._side = None
