"""The MLflow store as the run registry: which worker trains which config, exactly once.

A config's *registry key* K is its run key (``calibexp.run_key``; a ``force``d run gets a key
of its own), looked up in the target experiment. What the store says about K decides:

- a FINISHED run with K: nothing to train;
- a run with K whose lease is live: held by another worker, nothing to train;
- a dead run (KILLED, FAILED, or RUNNING with an expired lease): claim the next attempt and
  resume it from its checkpoint into the same run, unless ``max_attempts`` are spent;
- nothing: claim attempt 1 and train a new run.

**Claims** are atomic in the store: attempt n of K is the experiment name
``calibexp-claim:<experiment id>:<K>:<n>``, and MLflow refuses a second experiment with a name
(``RESOURCE_ALREADY_EXISTS``), on SQLite, PostgreSQL and through ``mlflow server`` alike. The
claim is deleted at once: a deleted experiment keeps its name (until ``mlflow gc``), so it stays
claimed but out of the UI's experiment list. No search-then-decide: that elects 2-3 winners.

**Leases**: the holder of attempt n writes the tag ``calibexp.ops.lease.<n>`` (host, pid, where,
time, beat) every ``tracking.heartbeat_s`` from a timer thread, whatever the epoch length; one
tag per attempt, so a late write of a former holder never overwrites its successor's lease.
Times are on the store's clock (``StoreClock``: every worker of one ``mlflow server`` reads the
server's ``Date``), so clock skew between machines cannot make a live lease look expired; the
only error left is the offset's ~1 s estimate, far below ``stale_after_s``. A claim not yet
backed by a run counts from its creation time, which the store itself stamps. A worker that saw
the store go away judges no lease expired until the store has answered it again for
``stale_after_s``: the holders could not renew meanwhile.

**Fencing**: the holder of attempt n is fenced off as soon as claim n+1 exists. It checks that
before every try of every write (metrics, checkpoints, images, heartbeats) and stops writing for
good (``LeaseLost``) once it does: a worker paused past its lease (SIGSTOP, a partition, a
laptop lid) finds out at its next write, and one run never has two writers. (What remains is
one request already in flight when the takeover happens.)

**Attempts**: each takeover is a new attempt of the same run. A run is given up after
``tracking.max_attempts`` *failures*: attempts that ended FAILED, or died without a word
(SIGKILL, a lost machine); an attempt interrupted by SIGINT/SIGTERM (a preempted job) or
taken over from a paused worker is not a failure of the config.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from calibexp.errors import CalibexpError, LeaseLost
from calibexp.tracking.ops_tags import (
    ATTEMPT_TAG,
    CLAIM_TOKEN_TAG,
    FAILURES_TAG,
    HOST_TAG,
    LAST_WORKER_TAG,
    PID_TAG,
    WHERE_TAG,
    lease_tag,
)
from calibexp.tracking.store import (
    first_line,
    patient,
    permission_denied,
    set_experiment_tag,
    store_clock,
    transient,
)

CLAIM_PREFIX = "calibexp-claim"
KEY_TAG = "calibexp.registry_key"
FENCE_CACHE_S = 1.0  # a holder re-checks its fence at most this often (one GET)
RETRY_BEAT_S = 1.0  # after a beat the store did not take, try again this soon


def _machine() -> str:
    """Which kernel and PID namespace this process lives in: a holder's process id means
    something here only if both match (containers on one host may share its host name)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def worker_host() -> str:
    """This worker's identity: ``CALIBEXP_HOST`` if set (tests play several machines with it),
    else the host name."""
    return os.environ.get("CALIBEXP_HOST") or socket.gethostname()


def claim_name(experiment_id: str, key: str, attempt: int) -> str:
    return f"{CLAIM_PREFIX}:{experiment_id}:{key}:{attempt}"


def _attempt_of(run: Any) -> int:
    value = run.data.tags.get(ATTEMPT_TAG, "1")
    return int(value) if value.isdigit() else 1


def _failures_of(run: Any) -> int:
    value = run.data.tags.get(FAILURES_TAG, "0") if run is not None else "0"
    return int(value) if value.isdigit() else 0


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@dataclass
class KeyState:
    """What the store says about one registry key."""

    kind: str  # none | finished | held | dead | exhausted
    attempt: int  # the highest attempt claimed so far (0: never)
    run: Any = None  # the MLflow run of the key, if one exists
    host: str | None = None  # who holds (or last held) it
    age_s: float | None = None  # seconds since its holder last showed life (store clock)
    failures: int = 0  # failed attempts, this one's death included when it counts

    @property
    def last_error(self) -> str:
        tags = self.run.data.tags if self.run is not None else {}
        return tags.get("calibexp.end_reason") or "the worker died without a word (killed or lost)"


class Registry:
    """Claims, leases and the state of registry keys in one experiment."""

    def __init__(self, client: MlflowClient, experiment_id: str, settings: Any) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.settings = settings  # the run's TrackingConfig
        self.host = worker_host()
        self.pid = os.getpid()
        self.token = uuid.uuid4().hex  # tells our own claim from another's after a retry
        self.machine = _machine()
        self.clock = store_clock(client.tracking_uri)
        self._writable = False

    # ------------------------------------------------------------------ reading

    def runs(self, key: str) -> list[Any]:
        """The registry's runs of ``key`` in this experiment (evaluations, trials and launchers
        carry no registry key and are never among them)."""
        return self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{KEY_TAG}` = '{key}'",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=100,
        )

    def latest_claim(self, key: str, at_least: int = 0) -> tuple[int, Any]:
        """The highest claimed attempt of ``key`` (0: none) and its claim experiment."""
        attempt, claim = 0, None
        while True:
            found = self.client.get_experiment_by_name(
                claim_name(self.experiment_id, key, attempt + 1)
            )
            if found is None and attempt + 1 > at_least:
                return attempt, claim
            attempt, claim = attempt + 1, found

    def state(self, key: str) -> KeyState:
        runs = self.runs(key)
        finished = [r for r in runs if r.info.status == "FINISHED"]
        if finished:
            return KeyState("finished", _attempt_of(finished[0]), finished[0])
        run = max(runs, key=_attempt_of) if runs else None
        run_attempt = _attempt_of(run) if run is not None else 0
        attempt, claim = self.latest_claim(key, at_least=run_attempt)
        if attempt == 0:
            return KeyState("none", 0)
        lease, last, ended = self._last_sign_of_life(run, claim, attempt)
        age = None if last is None else self.clock.now() - last
        state = KeyState("dead", attempt, run, lease.get("host"), age, _failures_of(run))
        # A holder ends its lease, then its run: an ended lease on a run still RUNNING is a
        # holder writing its last status (``TrackedRun.finish``), held until it goes stale.
        ending = ended and run is not None and run.info.status == "RUNNING"
        if (not ended or ending) and last is not None and not self._dead_here(lease):
            # After an outage this worker saw, nobody could renew: judge leases by the time
            # since the store came back, not by what could not be written.
            since_back = self.client_up_for()
            if age < self.settings.stale_after_s or since_back < self.settings.stale_after_s:
                state.kind = "held"
                return state
        interrupted = ended and run is not None and run.info.status == "KILLED"
        if run is not None and _attempt_of(run) == attempt and not interrupted:
            state.failures += 1  # FAILED, or died without a word
        if state.failures >= self.settings.max_attempts:
            state.kind = "exhausted"
        return state

    def client_up_for(self) -> float:
        """Seconds the store has answered this worker since the last outage it saw."""
        since = getattr(self.client, "up_since", None)
        return float("inf") if since is None else time.monotonic() - since

    def _last_sign_of_life(
        self, run: Any, claim: Any, attempt: int
    ) -> tuple[dict[str, Any], float | None, bool]:
        """Host, pid and store time of the last heartbeat of attempt ``attempt``, and whether its
        holder ended it: from its lease tag on the run, else from the creation of its claim (a
        claimant opening or taking over the run). The run's status alone does not say: ``mlflow
        run`` marks the launcher run of a worker that was taken over FAILED under its new
        holder (``calibexp.tracking.launcher``)."""
        tags = run.data.tags if run is not None else {}
        if lease_tag(attempt) in tags:
            lease = json.loads(tags[lease_tag(attempt)])
            return lease, float(lease["time"]), bool(lease.get("ended"))
        if claim is not None:
            pid = claim.tags.get(PID_TAG, "")
            lease = {
                "host": claim.tags.get(HOST_TAG),
                "pid": int(pid) if pid.isdigit() else None,
                "where": claim.tags.get(WHERE_TAG),
            }
            return lease, claim.creation_time / 1000, False
        # a run from before the registry: its status is all there is
        return {}, None, run is not None and run.info.status != "RUNNING"

    def _dead_here(self, lease: dict[str, Any]) -> bool:
        """A holder on this very machine (same host, kernel and PID namespace) whose process
        is gone is dead now, lease or not."""
        pid = lease.get("pid")
        here = (
            lease.get("host") == self.host and self.machine and lease.get("where") == self.machine
        )
        return bool(here) and pid is not None and pid != self.pid and not _process_alive(pid)

    # ------------------------------------------------------------------ claiming

    def ensure_writable(self) -> None:
        """Prove this user may write to the experiment before claiming anything in it (a
        read-only user of a basic-auth server could otherwise claim keys it cannot train)."""
        if self._writable:
            return
        try:
            set_experiment_tag(self.client, self.experiment_id, LAST_WORKER_TAG, self.host)
        except MlflowException as err:
            if not permission_denied(err):  # any other refusal is not about this user's rights
                raise
            user = os.environ.get("MLFLOW_TRACKING_USERNAME", "(none)")
            raise CalibexpError(
                f"user {user} may not write to experiment {self.experiment_id} "
                f"({first_line(err)}); it can read runs but not claim or train them: ask the "
                "server's admin for EDIT permission on the experiment"
            ) from None
        self._writable = True

    def claim(self, key: str, attempt: int) -> bool:
        """Try to take attempt ``attempt`` of ``key``; True for exactly one caller."""
        self.ensure_writable()
        name = claim_name(self.experiment_id, key, attempt)
        tags = {
            CLAIM_TOKEN_TAG: self.token,
            HOST_TAG: self.host,
            PID_TAG: str(self.pid),
            WHERE_TAG: self.machine,
            "calibexp.run_key": key,
            ATTEMPT_TAG: str(attempt),
        }
        try:
            claim_id = self.client.create_experiment(name, tags=tags)
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            # Ours if an earlier try of this very call committed before its answer was lost.
            existing = self.client.get_experiment_by_name(name)
            if existing is None or existing.tags.get(CLAIM_TOKEN_TAG) != self.token:
                return False
            claim_id = existing.experiment_id
        try:  # out of the UI's experiment list; the name stays taken
            self.client.delete_experiment(claim_id)
        except MlflowException:
            pass  # already deleted by our earlier try
        return True

    def lease(self, run_id: str, key: str, attempt: int) -> "Lease":
        return Lease(self, run_id, key, attempt)


class Lease:
    """Attempt ``attempt``'s hold on run ``run_id``: renewed from a timer thread, fenced by the
    existence of claim ``attempt + 1``. Its store calls use the plain client: a failed one
    raises at once, so each retry (``patient``) checks the fence again and stamps a fresh time."""

    def __init__(self, registry: Registry, run_id: str, key: str, attempt: int) -> None:
        self.registry, self.run_id, self.key, self.attempt = registry, run_id, key, attempt
        self.client = getattr(registry.client, "raw", registry.client)
        self.lost = False
        self.taken_by: str | None = None
        self._checked = -FENCE_CACHE_S  # monotonic time of the last fence check that passed
        self._stop = threading.Event()
        self._lock = threading.Lock()  # a beat and stop() never overlap
        self._thread: threading.Thread | None = None
        self.beats = 0

    def tag(self, ended: bool = False) -> dict[str, str]:
        value: dict[str, Any] = {
            "host": self.registry.host,
            "pid": self.registry.pid,
            "where": self.registry.machine,
            "time": round(self.registry.clock.now(), 3),
            "beat": self.beats,
        }
        if ended:
            value["ended"] = True
        return {lease_tag(self.attempt): json.dumps(value)}

    def held(self) -> bool:
        """Whether no later attempt was claimed (one GET at most every ``FENCE_CACHE_S``)."""
        if self.lost:
            return False
        if time.monotonic() - self._checked < FENCE_CACHE_S:
            return True
        name = claim_name(self.registry.experiment_id, self.key, self.attempt + 1)
        successor = self.client.get_experiment_by_name(name)
        if successor is not None:
            self.lost = True
            self.taken_by = successor.tags.get(HOST_TAG, "another worker")
            return False
        self._checked = time.monotonic()
        return True

    def assert_held(self) -> None:
        if not self.held():
            raise LeaseLost(
                f"run {self.run_id} was taken over by {self.taken_by} (attempt "
                f"{self.attempt + 1}) while this worker was silent; it stopped writing to it"
            )

    def fenced(self, call: Any, timeout_s: float) -> Any:
        """``call()`` (a write with the plain client), the fence checked before every try."""

        def once() -> Any:
            self.assert_held()
            return call()

        return patient(once, timeout_s, f"the tracking store (run {self.run_id[:8]})")

    def beat(self, ended: bool = False) -> None:
        """Renew the lease once (``ended``: the holder ends the attempt itself)."""
        with self._lock:
            if self._stop.is_set() and not ended:
                return
            self.assert_held()
            self.beats += 1
            self.client.set_tag(self.run_id, *self.tag(ended).popitem())
            if ended:
                return
            status = self.client.get_run(self.run_id).info.status
            if status in ("FAILED", "KILLED"):
                # Ended under a live holder by someone else: `mlflow run` marking the run of a
                # worker that was taken over. The holder is alive, so the run is RUNNING.
                self.client.update_run(self.run_id, status="RUNNING")

    def start(self) -> "Lease":
        self._thread = threading.Thread(target=self._loop, name="calibexp-lease", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        wait = self.registry.settings.heartbeat_s
        while not self._stop.wait(wait):
            try:
                self.registry.clock.measure()
                self.beat()
                wait = self.registry.settings.heartbeat_s
            except LeaseLost:
                return
            except Exception as err:  # noqa: BLE001 - the store is away: beat again soon
                wait = RETRY_BEAT_S if transient(err) else self.registry.settings.heartbeat_s

    def stop(self) -> None:
        self._stop.set()
        with self._lock:  # a beat in flight lands before stop() returns; none starts after
            pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
