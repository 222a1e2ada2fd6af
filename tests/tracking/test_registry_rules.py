"""The run registry's rules on a real store (SQLite, in-process; the multi-machine behaviour is
in test_registry_workers.py): claims won once, the state of a key from its claims, runs and
leases, fencing, heartbeats that keep coming through an epoch longer than the lease, attempts
capped with the last error, and a store that cannot be reached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import torch.nn.functional as F
from mlflow.tracking import MlflowClient

from calibexp.config import TrackingConfig, load_config, run_key
from calibexp.errors import LeaseLost
from calibexp.losses.base import CalibrationLoss
from calibexp.losses.registry import LOSSES
from calibexp.run import run_experiment
from calibexp.tracking.registry import (
    ATTEMPT_TAG,
    FAILURES_TAG,
    FENCE_CACHE_S,
    KEY_TAG,
    Registry,
    claim_name,
    lease_tag,
)
from calibexp.tracking.run import TrackedRun
from calibexp.tracking.store import open_store
from tests.support import ROOT, subprocess_env

# leases short enough to expire within a test, long enough for a loaded CI machine
FAST = TrackingConfig(heartbeat_s=0.5, stale_after_s=2.0, max_attempts=2)
DEMO = ROOT / "configs/demo.yaml"
FAST_RUN = ["model.width=8", "train.epochs=2", "train.progress=false", "eval.diagram_every=0"]


@pytest.fixture
def registry(tracking_store):
    client = open_store()
    return Registry(client, client.create_experiment("registry"), FAST)


def other(registry: Registry) -> Registry:
    """A second worker on the same store (another claim token)."""
    return Registry(registry.client, registry.experiment_id, registry.settings)


def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    return int(done.stdout)


def lease(registry: Registry, **fields) -> str:
    value = {"host": registry.host, "pid": os.getpid(), "where": registry.machine}
    return json.dumps({**value, "time": time.time(), **fields})


def make_run(registry: Registry, key: str, attempt: int) -> str:
    tags = {KEY_TAG: key, ATTEMPT_TAG: str(attempt), lease_tag(attempt): lease(registry)}
    return registry.client.create_run(registry.experiment_id, tags=tags).info.run_id


def test_a_claim_is_won_once_and_stays_out_of_the_ui(registry):
    rival = other(registry)
    assert registry.claim("k", 1) is True
    assert rival.claim("k", 1) is False
    assert registry.claim("k", 1) is True  # the winner's own retry (a lost answer) is still its
    assert rival.claim("k", 2) is True  # the next attempt is a new name
    names = [e.name for e in registry.client.search_experiments()]
    assert claim_name(registry.experiment_id, "k", 1) not in names  # deleted: hidden
    claim = registry.client.get_experiment_by_name(claim_name(registry.experiment_id, "k", 1))
    assert claim.lifecycle_stage == "deleted"
    assert claim.tags["calibexp.ops.claim_token"] == registry.token


def test_the_state_of_a_key(registry):
    rival = other(registry)
    assert registry.state("k").kind == "none"
    assert rival.claim("k", 1)
    held = registry.state("k")  # claimed, no run yet: the claim's own time is its lease
    assert (held.kind, held.attempt, held.host) == ("held", 1, rival.host)
    time.sleep(FAST.stale_after_s + 0.1)
    assert registry.state("k").kind == "dead"  # the claimant never made its run

    # a run of attempt 1 with a fresh lease: held; the same lease by a dead local process: dead
    run = "r"
    assert registry.state(run).kind == "none"
    assert rival.claim(run, 1)
    run_id = make_run(rival, run, 1)
    assert registry.state(run).kind == "held"
    client = registry.client
    client.set_tag(run_id, lease_tag(1), lease(registry, pid=dead_pid()))
    assert registry.state(run).kind == "dead"
    # ... unless that process lives in another PID namespace or kernel (a container)
    client.set_tag(run_id, lease_tag(1), lease(registry, pid=dead_pid(), where="other"))
    assert registry.state(run).kind == "held"

    # its holder ended the lease and is writing the run's status: held until that lands,
    # dead if it never does (the holder died in between)
    client.set_tag(run_id, lease_tag(1), lease(registry, host="elsewhere", ended=True))
    assert registry.state(run).kind == "held"
    client.set_tag(run_id, lease_tag(1), lease(registry, host="elsewhere", ended=True, time=0))
    assert registry.state(run).kind == "dead"
    # FAILED by mlflow run under a live holder (lease fresh, not ended): still held
    client.set_tag(run_id, lease_tag(1), lease(registry, host="elsewhere", pid=1))
    client.set_terminated(run_id, "FAILED")
    assert registry.state(run).kind == "held"
    # ended FAILED by its holder: dead at once, one failure
    client.set_tag(run_id, "calibexp.end_reason", "RuntimeError: boom")
    client.set_tag(run_id, lease_tag(1), lease(registry, host="elsewhere", ended=True))
    dead = registry.state(run)
    assert (dead.kind, dead.attempt, dead.failures) == ("dead", 1, 1)
    # attempt 2 claimed and being opened: held by its claimant, whatever the run's status
    assert rival.claim(run, 2)
    assert registry.state(run).kind == "held"
    # the claimant took it over (as run.py does: attempt, failures so far, its lease) ...
    client.set_tag(run_id, ATTEMPT_TAG, "2")
    client.set_tag(run_id, FAILURES_TAG, "1")
    client.set_tag(run_id, lease_tag(2), lease(registry, host="elsewhere"))
    # ... and a late write of attempt 1's holder changes nothing: leases are per attempt
    client.set_tag(run_id, lease_tag(1), lease(registry, host="elsewhere", time=0))
    assert registry.state(run).kind == "held"
    # interrupted (SIGTERM: KILLED by its holder) is not a failure of the config
    client.set_tag(run_id, lease_tag(2), lease(registry, host="elsewhere", ended=True))
    client.set_terminated(run_id, "KILLED")
    assert (registry.state(run).kind, registry.state(run).failures) == ("dead", 1)
    # failing again is the second failure: max_attempts=2 spent, given up with the last error
    client.set_terminated(run_id, "FAILED")
    spent = registry.state(run)
    assert (spent.kind, spent.failures, spent.last_error) == ("exhausted", 2, "RuntimeError: boom")
    client.set_terminated(run_id, "FINISHED")
    assert registry.state(run).kind == "finished"


def test_a_lease_is_fenced_by_the_next_claim(registry):
    assert registry.claim("k", 1)
    run_id = make_run(registry, "k", 1)
    run = TrackedRun(registry.client, run_id)
    lease = registry.lease(run_id, "k", 1)
    run.hold(lease)
    run.set_tags({"before": "1"})  # held: written
    lease.beat()
    assert other(registry).claim("k", 2)  # taken over
    time.sleep(FENCE_CACHE_S + 0.05)
    with pytest.raises(LeaseLost, match="taken over by .* \\(attempt 2\\)"):
        run.set_tags({"after": "1"})
    with pytest.raises(LeaseLost):
        lease.beat()
    tags = registry.client.get_run(run_id).data.tags
    assert "before" in tags and "after" not in tags
    assert json.loads(tags[lease_tag(1)])["beat"] == 1  # no heartbeat after the takeover


def test_a_holder_restores_running_when_its_run_is_ended_under_it(registry):
    """`mlflow run` marks the launcher run of a worker that was taken over FAILED when that
    worker exits; the run's live holder sets it back to RUNNING at its next beat."""
    assert registry.claim("k", 1)
    run_id = make_run(registry, "k", 1)
    lease = registry.lease(run_id, "k", 1).start()
    registry.client.set_terminated(run_id, "FAILED")
    time.sleep(FAST.heartbeat_s * 4)
    lease.stop()
    assert registry.client.get_run(run_id).info.status == "RUNNING"


class SlowCE(CalibrationLoss):
    """CE that sleeps in every batch: an epoch far longer than the lease."""

    def forward(self, logits, targets):
        time.sleep(0.3)
        return F.cross_entropy(logits, targets)


class Boom(CalibrationLoss):
    def forward(self, logits, targets):
        raise RuntimeError("boom")


@pytest.fixture
def test_losses(monkeypatch):
    for name, cls in (("slow_ce", SlowCE), ("boom", Boom)):
        monkeypatch.setitem(LOSSES._builders, name, lambda cls=cls: cls())
        monkeypatch.setitem(LOSSES._info, name, {})


@pytest.mark.slow
def test_heartbeats_keep_coming_through_a_long_epoch(tracking_store, test_losses):
    cfg = load_config(
        DEMO,
        [
            "loss.name=slow_ce",  # 8 batches x 0.3 s: 2.4 s epochs
            "train.epochs=2",
            "model.width=8",
            "train.progress=false",
            "eval.diagram_every=0",
            "tracking.heartbeat_s=0.2",
            "tracking.stale_after_s=1.5",
        ],
    )
    client = open_store()
    key = run_key(cfg)
    seen: list[tuple[str, int]] = []
    done = threading.Event()

    def watch() -> None:  # another worker's view, all along
        while not done.is_set():
            runs = client.search_runs(
                [e.experiment_id for e in client.search_experiments()],
                f"tags.`{KEY_TAG}` = '{key}'",
            )
            if runs and runs[0].info.status == "RUNNING":
                observer = Registry(client, runs[0].info.experiment_id, cfg.tracking)
                state = observer.state(key)
                beat = json.loads(runs[0].data.tags[lease_tag(1)])["beat"]
                seen.append((state.kind, beat))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        outcome = run_experiment(cfg)
    finally:
        done.set()
        watcher.join()
    assert outcome.state == "trained"
    assert len(seen) > 20
    # never judged dead while it trained (the last look may see it finish)
    assert {kind for kind, _ in seen[:-1]} == {"held"} and seen[-1][0] in ("held", "finished")
    beats = [beat for _, beat in seen]
    assert beats[-1] - beats[0] >= 10  # ~5 s at 0.2 s: renewed inside the epochs, by the timer


def test_a_run_failing_max_attempts_times_is_refused_with_its_last_error(
    tracking_store, test_losses, monkeypatch, capsys
):
    cfg = load_config(
        DEMO, ["loss.name=boom", "model.width=8", "train.progress=false", "tracking.max_attempts=3"]
    )
    client = MlflowClient(tracking_store)
    for attempt in (1, 2, 3):  # the first trains, the next two resume the same run
        with pytest.raises(RuntimeError, match="boom"):
            run_experiment(cfg)
        (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert run.info.status == "FAILED" and run.data.tags[ATTEMPT_TAG] == str(attempt)
    outcome = run_experiment(cfg)
    assert outcome.state == "gave_up" and outcome.run_id == run.info.run_id
    assert "failed 3 times (tracking.max_attempts)" in outcome.message
    assert "Last error: RuntimeError: boom" in outcome.message
    assert len(client.search_runs([run.info.experiment_id])) == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "uri, named",
    [
        ("http://127.0.0.1:1", "http://127.0.0.1:1"),
        ("postgresql+psycopg2://calibexp:secret@127.0.0.1:1/mlflow", "calibexp@127.0.0.1:1"),
        ("htp://127.0.0.1:5000", "htp://127.0.0.1:5000"),
    ],
)
@pytest.mark.parametrize("entry", ["train", "sweep"])
def test_an_unreachable_store_fails_fast_with_one_line(uri, named, entry, tmp_path):
    args = (
        ["--config", str(DEMO)]
        if entry == "train"
        else ["--spec", str(ROOT / "studies/sweep_demo.yaml")]
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(ROOT / f"entrypoints/{entry}.py"), *args],
        env=subprocess_env(uri),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    seconds = time.monotonic() - started
    # Waiting on the store would take tracking.store_timeout_s (900 s) or an HTTP timeout
    # (120 s); 30 s leaves room for ~10 s of imports on a loaded CI machine.
    assert done.returncode == 2 and seconds < 30, (seconds, done.stderr[-2000:])
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("calibexp: error: ") and named in line and "secret" not in line
    assert "MLflow run" not in done.stdout and "KILLED" not in done.stderr + done.stdout
    assert not (tmp_path / "mlruns").exists()


def test_a_run_that_died_after_its_evaluation_is_finished_not_evaluated_again(tracking_store):
    cfg = load_config(DEMO, [*FAST_RUN, "tracking.heartbeat_s=0.1", "tracking.stale_after_s=0.5"])
    first = run_experiment(cfg)
    client = MlflowClient(tracking_store)
    # as if killed between its last metrics and its end: RUNNING, the lease left to expire
    client.update_run(first.run_id, status="RUNNING")
    time.sleep(0.6)
    again = run_experiment(cfg)
    assert (again.state, again.run_id) == ("trained", first.run_id)
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags[ATTEMPT_TAG] == "2"
    for key in ("test/acc", "test_ts/nll", "ts/temperature"):
        assert len(client.get_metric_history(first.run_id, key)) == 1, key
    assert run.data.tags[FAILURES_TAG] == "1"  # it died without a word: that counts
