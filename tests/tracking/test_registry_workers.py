"""Several machines against one real `mlflow server` (PostgreSQL backend store, proxied
artifacts, HTTP only): every config trained exactly once by concurrent workers; a SIGKILLed
worker's run resumed by another machine whose data lives elsewhere; a SIGSTOPped worker fenced
off once its lease was taken over; the server killed and restarted mid-sweep; a finished sweep
trains nothing; 16 claimants racing for 50 keys elect exactly one winner each.

Each worker is a process of its own, with its own working directory and ``CALIBEXP_HOST``, so
the cross-host path (lease on the store's clock, not a pid) is what runs."""

from __future__ import annotations

import collections
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from calibexp.config import run_key
from calibexp.sweeps import load_sweep
from calibexp.sweeps.worker import SUMMARY_TAG
from calibexp.tracking.registry import ATTEMPT_TAG, KEY_TAG, claim_name, lease_tag
from tests.support import ROOT, subprocess_env
from tests.support.fake_datasets import write_cifar10
from tests.support.mlflow_server import Server, upgrade_schema
from tests.support.postgres import Cluster

pytestmark = pytest.mark.slow
PER_EPOCH = ["train/loss", "train/acc", "val/acc", "val/nll", "val/ece_15", "lr"]
EPOCH_LINE = re.compile(r"^epoch \d+/\d+ ", re.M)
LEASE = ["tracking.heartbeat_s=1", "tracking.stale_after_s=3"]  # fast leases for the tests
EVERY_EPOCH = ["tracking.flush_every_s=0", "tracking.checkpoint_every_s=0"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cluster = Cluster().start()
    upgrade_schema(cluster.url("mlflow"))
    srv = Server(cluster.url("mlflow"), tmp_path_factory.mktemp("mlflow-server")).start()
    yield srv
    srv.stop()
    cluster.stop()


def env_for(uri: str, host: str, experiment: str) -> dict[str, str]:
    env = subprocess_env(uri)
    env.update(CALIBEXP_HOST=host, MLFLOW_EXPERIMENT_NAME=experiment)
    # One torch thread per worker: several workers x torch's default 2 threads on 2 cores spin
    # against each other and the server; every worker of a test (and its reference run) gets
    # the same, so runs still compare equal.
    env["OMP_NUM_THREADS"] = "1"
    return env


def start(args: list[str], uri: str, host: str, experiment: str, folder: Path) -> subprocess.Popen:
    """A worker process in its own working directory; stdout to a file read back later."""
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, *args],
        env=env_for(uri, host, experiment),
        cwd=folder,
        stdout=open(folder / "stdout.txt", "w"),
        stderr=open(folder / "stderr.txt", "w"),
        text=True,
    )


def sweep(spec: Path, *extra: str) -> list[str]:
    return [str(ROOT / "entrypoints/sweep.py"), "--spec", str(spec), *extra]


def train(config: Path, *overrides: str) -> list[str]:
    return [str(ROOT / "entrypoints/train.py"), "--config", str(config), *overrides]


def output(folder: Path) -> str:
    return (folder / "stdout.txt").read_text()


def wait_for(folder: Path, pattern: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if re.search(pattern, output(folder), re.M):
            return
        assert proc.poll() is None, (folder / "stderr.txt").read_text()[-3000:]
        time.sleep(0.05)
    raise AssertionError(f"no '{pattern}' in {folder}: {output(folder)[-2000:]}")


def finish(proc: subprocess.Popen, folder: Path, code: int = 0) -> str:
    proc.wait(timeout=600)
    assert proc.returncode == code, (folder / "stderr.txt").read_text()[-3000:]
    return output(folder)


def experiment_runs(client: MlflowClient, name: str) -> list:
    experiment = client.get_experiment_by_name(name)
    return client.search_runs([experiment.experiment_id], max_results=1000)


def histories(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in PER_EPOCH
    }


def assert_each_epoch_once(client: MlflowClient, run_id: str, epochs: int) -> None:
    for key, points in histories(client, run_id).items():
        assert [step for step, _ in points] == list(range(epochs)), key


def write_config(path: Path, base: str, *overrides: str) -> Path:
    """A run config file: ``base`` plus ``overrides`` as YAML (a user's own experiment file)."""
    raw: dict = {"_base_": [str(ROOT / base)]}
    for item in overrides:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    path.write_text(yaml.safe_dump(raw))
    return path


def test_three_workers_train_every_config_once_and_a_rerun_trains_nothing(server, tmp_path):
    spec = ROOT / "studies/sweep_demo.yaml"
    cells = load_sweep(spec, root=ROOT).cells
    epochs = cells[0].cfg.train.epochs
    client = MlflowClient(server.uri)
    client.create_experiment("three")  # once, before fanning out
    folders = [tmp_path / f"worker-{i}" for i in range(3)]
    workers = [
        start(sweep(spec), server.uri, f"machine-{i}", "three", f) for i, f in enumerate(folders)
    ]
    outputs = [finish(w, f) for w, f in zip(workers, folders)]

    assert sum(len(EPOCH_LINE.findall(out)) for out in outputs) == len(cells) * epochs
    runs = experiment_runs(client, "three")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    registered = [r for r in runs if KEY_TAG in r.data.tags]
    keys = collections.Counter(r.data.tags[KEY_TAG] for r in registered)
    assert keys == collections.Counter(run_key(c.cfg) for c in cells)  # one run per config
    assert all(r.info.status == "FINISHED" for r in registered)
    for run in registered:
        assert_each_epoch_once(client, run.info.run_id, epochs)
        assert "test_ts/ece_15" in run.data.metrics
        names = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
        assert names == ["checkpoints/best.pt", "checkpoints/last.pt"]  # via the server
    (summary,) = [r for r in runs if r.data.tags.get(SUMMARY_TAG) == "sweep-demo"]
    assert summary.info.status == "FINISHED" and summary.data.metrics["sweep/finished"] == 12
    table = client.download_artifacts(summary.info.run_id, "sweep/table.csv", str(tmp_path))
    assert sum("FINISHED" in line for line in open(table)) == len(cells)

    # (e) a finished sweep, started again, trains nothing and says so
    again_folder = tmp_path / "again"
    again = finish(start(sweep(spec), server.uri, "machine-3", "three", again_folder), again_folder)
    assert not EPOCH_LINE.findall(again)
    assert again.count("already FINISHED as run") == len(cells)
    assert f"{len(cells)}/{len(cells)} FINISHED" in again
    assert len(experiment_runs(client, "three")) == len(runs)


@pytest.mark.parametrize("checkpoint_every_s", [0, 1000], ids=["checkpoint-each-epoch", "none"])
def test_a_killed_workers_run_is_resumed_by_another_machine(server, tmp_path, checkpoint_every_s):
    """Machine a trains, is SIGKILLed after epoch 3 of 8 and its disk is gone; machine b, whose
    CIFAR-10 files live under another root, takes the very run over once a's lease expired.
    Without a checkpoint (cadence 1000 s) b trains from the start, logging only the epochs a
    had not logged; either way the run equals an uninterrupted one."""
    experiment = f"killed-{checkpoint_every_s}"
    roots = {host: tmp_path / f"data-{host}" for host in ("a", "b")}
    for root in roots.values():
        write_cifar10(root, seed=3)  # the same files on both machines
    config = write_config(
        tmp_path / "cifar.yaml",
        "configs/digits/small_cnn/ce.yaml",
        "data.name=cifar10",
        "data.val_size=10",
        "model.width=8",
        "train.epochs=8",
        "train.progress=false",
        "schedule.milestones=[4]",
        "tracking.flush_every_s=0",
        f"tracking.checkpoint_every_s={checkpoint_every_s}",
        *LEASE,
    )
    client = MlflowClient(server.uri)
    a_folder = tmp_path / "a"
    a = start(train(config, f"data.root={roots['a']}"), server.uri, "a", experiment, a_folder)
    wait_for(a_folder, r"^epoch 3/8 ", a)
    run_id = re.search(r"calibexp: MLflow run (\w+)", output(a_folder)).group(1)
    if checkpoint_every_s == 0:
        # Checkpoints upload on a's background thread: on a loaded machine epoch 3 can print
        # before the first last.pt has left the queue. Kill once one is in the store, so this
        # case is the resume from a checkpoint it means to test.
        deadline = time.monotonic() + 60
        while not any(
            f.path == "checkpoints/last.pt" for f in client.list_artifacts(run_id, "checkpoints")
        ):
            assert time.monotonic() < deadline, "no checkpoint reached the store within 60 s"
            time.sleep(0.05)
    a.send_signal(signal.SIGKILL)
    a.wait()
    shutil.rmtree(roots["a"])
    assert client.get_run(run_id).info.status == "RUNNING"  # nobody could mark it

    spec = tmp_path / "one.yaml"
    spec.write_text(
        yaml.safe_dump(
            {"name": "one", "configs": [str(config)], "overrides": [f"data.root={roots['b']}"]}
        )
    )
    b_folder = tmp_path / "b"
    b_out = finish(
        start(sweep(spec, "--wait", "true"), server.uri, "b", experiment, b_folder), b_folder
    )
    assert f"resuming MLflow run {run_id}" in b_out
    assert ("from its start" in b_out) == (checkpoint_every_s == 1000)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[ATTEMPT_TAG] == "2" and run.data.tags["calibexp.ops.host"] == "b"
    assert json.loads(run.data.tags[lease_tag(2)])["host"] == "b"
    assert_each_epoch_once(client, run_id, 8)

    # the same config uninterrupted (in another experiment, so the registry trains it)
    ref_folder = tmp_path / "ref"
    ref_out = finish(
        start(
            train(config, f"data.root={roots['b']}"),
            server.uri,
            "c",
            experiment + "-ref",
            ref_folder,
        ),
        ref_folder,
    )
    ref_id = re.search(r"calibexp: MLflow run (\w+)", ref_out).group(1)
    assert histories(client, run_id) == histories(client, ref_id)
    reference = client.get_run(ref_id).data.metrics
    for key in ("test/acc", "test/nll", "test/ece_15", "test_ts/nll", "ts/temperature"):
        assert run.data.metrics[key] == reference[key], key


def test_a_paused_worker_is_fenced_off_once_taken_over(server, tmp_path):
    """a is SIGSTOPped past its lease; b takes the run over; a, continued while b trains,
    finds out at its next write, writes nothing more and exits 3; each epoch is logged once."""
    experiment, epochs = "paused", 40
    config = write_config(
        tmp_path / "long.yaml",
        "configs/digits/small_cnn/ce.yaml",
        "model.width=8",
        f"train.epochs={epochs}",
        "train.progress=false",
        "eval.diagram_every=0",
        *EVERY_EPOCH,
        *LEASE,
    )
    client = MlflowClient(server.uri)
    a_folder, b_folder = tmp_path / "a", tmp_path / "b"
    a = start(train(config), server.uri, "a", experiment, a_folder)
    wait_for(a_folder, rf"^epoch 2/{epochs} ", a)
    a.send_signal(signal.SIGSTOP)
    run_id = re.search(r"calibexp: MLflow run (\w+)", output(a_folder)).group(1)
    spec = tmp_path / "one.yaml"
    spec.write_text(yaml.safe_dump({"name": "paused", "configs": [str(config)]}))
    b = start(sweep(spec, "--wait", "true"), server.uri, "b", experiment, b_folder)
    wait_for(b_folder, rf"^epoch {epochs // 4}/{epochs} ", b)  # b is well into the run
    a.send_signal(signal.SIGCONT)
    finish(a, a_folder, code=3)
    assert "was taken over by b (attempt 2)" in (a_folder / "stderr.txt").read_text()
    finish(b, b_folder)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags[ATTEMPT_TAG] == "2"
    assert_each_epoch_once(client, run_id, epochs)
    assert json.loads(run.data.tags[lease_tag(2)])["host"] == "b"
    assert not [r for r in experiment_runs(client, experiment) if r.info.status == "RUNNING"]


def test_workers_wait_out_a_server_restart(server, tmp_path):
    spec = tmp_path / "restart.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "restart",
                "configs": [
                    "configs/digits/small_cnn/ce.yaml",
                    "configs/digits/small_cnn/brier.yaml",
                ],
                "seeds": [0, 1],
                "overrides": [
                    "model.width=8",
                    "train.epochs=12",
                    "train.progress=false",
                    "eval.diagram_every=0",
                    *EVERY_EPOCH,
                ],
            }
        )
    )
    cells = load_sweep(spec, root=ROOT).cells
    folders = [tmp_path / host for host in ("x", "y")]
    workers = [start(sweep(spec), server.uri, f.name, "restart", f) for f in folders]
    # Both workers connected first: a worker that starts while the store is down cannot tell
    # it from a wrong URI and stops with one line (open_store); waiting out an outage is for
    # workers already at work.
    wait_for(folders[1], r"^epoch 1/12 ", workers[1])
    wait_for(folders[0], r"^epoch 4/12 ", workers[0])
    server.stop(signal.SIGKILL)  # mid-run: its workers' next writes are refused
    time.sleep(3)
    server.start()
    outputs = [finish(w, f) for w, f in zip(workers, folders)]
    assert any("is not answering" in out for out in outputs)  # the outage was noticed
    client = MlflowClient(server.uri)
    runs = experiment_runs(client, "restart")
    registered = [r for r in runs if KEY_TAG in r.data.tags]
    assert sorted(r.data.tags[KEY_TAG] for r in registered) == sorted(run_key(c.cfg) for c in cells)
    assert all(r.info.status == "FINISHED" for r in registered)
    for run in registered:
        assert_each_epoch_once(client, run.info.run_id, 12)
    assert not [r for r in runs if r.info.status == "RUNNING"]


def race(server, tmp_path, support: str, args: list[str], experiment: str) -> list[dict]:
    """16 contenders of ``tests.support.<support>`` (``claimant``, ``tag_setter``) racing from
    one moment: real processes, each with its own connection to the server, PID and host name,
    forked after one import of calibexp (``fork_contenders``) instead of 16 (a minute of CPU on
    2 cores before any race). Returns each one's host, pid, exit status, stdout and stderr."""
    go = tmp_path / f"go-{support}-{args[0]}"  # one per race: args[0] is the experiment id
    assert not go.exists()
    parent = subprocess.Popen(
        [sys.executable, "-m", f"tests.support.{support}", *args[:2], str(go), *args[2:]]
        + ["--fork", "16"],
        env=env_for(server.uri, support, experiment),
        cwd=ROOT,  # python -m tests.support...
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = parent.stdout.readline()
    if ready.strip() != "ready":
        out, err = parent.communicate(timeout=60)
        raise AssertionError(f"not all 16 ready: {(ready + out)[-3000:]} {err[-2000:]}")
    go.touch()  # all 16 do the same writes in the same order, from now
    out, err = parent.communicate(timeout=600)
    assert parent.returncode == 0, err[-2000:]
    contenders = json.loads(out.strip().splitlines()[-1])
    assert len({c["pid"] for c in contenders}) == len(contenders) == 16  # 16 processes
    return contenders


def test_sixteen_claimants_fifty_keys_one_winner_each(server, tmp_path):
    client = MlflowClient(server.uri)
    experiment = client.create_experiment("claims")
    keys = [f"key{i:02d}" for i in range(50)]
    wins = {}
    for c in race(server, tmp_path, "claimant", [experiment, json.dumps(keys)], "claims"):
        assert c["returncode"] == 0, c["stderr"][-2000:]
        wins[c["host"]] = json.loads(c["stdout"].strip().splitlines()[-1])
    assert sorted(wins) == sorted(f"claimant-{i}" for i in range(16))
    counts = collections.Counter(k for won in wins.values() for k in won)
    assert counts == collections.Counter(keys)  # every key won, and exactly once
    for host, won in wins.items():
        for key in won:  # the store agrees on who won
            claim = client.get_experiment_by_name(claim_name(experiment, key, 1))
            assert claim.tags["calibexp.ops.host"] == host and claim.lifecycle_stage == "deleted"
    assert len({h for h, won in wins.items() if won}) > 1  # a real race, not one fast worker


def race_tag_setters(server, tmp_path, experiment: str, keys: int, *flags: str) -> list:
    """16 processes set the same ``keys`` new experiment tags (with ``--datasets``: log the same
    new datasets) in the same order, from one moment; returns each one's host, exit status,
    stdout and stderr (``race``)."""
    return race(server, tmp_path, "tag_setter", [experiment, str(keys), *flags], "tags")


def test_sixteen_writers_of_one_new_experiment_tag_all_succeed(server, tmp_path):
    """MLflow writes an experiment tag as read-then-insert, so writers racing on a new key lose
    with a unique-key violation (the CI failure of ensure_writable's tag); calibexp's
    set_experiment_tag retries the lost insert as the update it is."""
    client = MlflowClient(server.uri)
    experiment = client.create_experiment("tag-race")
    for setter in race_tag_setters(server, tmp_path, experiment, 30):
        assert setter["returncode"] == 0 and setter["stdout"].strip() == "done", setter["stderr"]
    tags = client.get_experiment(experiment).tags
    setters = {f"setter-{i}" for i in range(16)}
    assert all(tags[f"race.k{i:02d}"] in setters for i in range(30))  # a writer's value each


def test_mlflow_own_experiment_tag_write_loses_the_race(server, tmp_path):
    """The race above is real: through MLflow's own call some of the 16 writers are refused.
    A race is a matter of timing, so up to three rounds (each on a fresh experiment) may run
    before one shows it; every refusal must be the unique-key violation."""
    client = MlflowClient(server.uri)
    lost: list[str] = []
    for round_number in range(3):
        experiment = client.create_experiment(f"tag-race-raw-{round_number}")
        finished = race_tag_setters(server, tmp_path, experiment, 30, "--raw")
        lost = [setter["stderr"] for setter in finished if setter["returncode"] != 0]
        if lost:
            break
    assert lost and all("duplicate key value violates unique constraint" in e for e in lost), [
        e[-500:] for e in lost
    ]


def test_sixteen_loggers_of_one_new_dataset_all_succeed(server, tmp_path):
    """MLflow logs a dataset input as read-then-insert of the dataset row, so the first runs of
    several workers on one experiment and split race there; calibexp's log_inputs retries the
    lost insert, and every run is linked to the one dataset row of each digest."""
    client = MlflowClient(server.uri)
    experiment = client.create_experiment("dataset-race")
    for logger in race_tag_setters(server, tmp_path, experiment, 30, "--datasets"):
        assert logger["returncode"] == 0 and logger["stdout"].strip() == "done", logger["stderr"]
    runs = client.search_runs([experiment], max_results=100)
    assert len(runs) == 16
    for run in runs:
        digests = sorted(d.dataset.digest for d in run.inputs.dataset_inputs)
        assert digests == [f"digest{i:02d}" for i in range(30)], run.info.run_name


def test_mlflow_own_dataset_log_loses_the_race(server, tmp_path):
    """The race above is real: through MLflow's own log_inputs some of the 16 loggers are
    refused (up to three rounds, each on a fresh experiment), each with the dataset_pk
    violation."""
    client = MlflowClient(server.uri)
    lost: list[str] = []
    for round_number in range(3):
        experiment = client.create_experiment(f"dataset-race-raw-{round_number}")
        finished = race_tag_setters(server, tmp_path, experiment, 30, "--datasets", "--raw")
        lost = [logger["stderr"] for logger in finished if logger["returncode"] != 0]
        if lost:
            break
    assert lost and all("duplicate key value violates unique constraint" in e for e in lost), [
        e[-500:] for e in lost
    ]
