"""A real `mlflow server --app-name basic-auth`, set up as the README's *Several machines* says
(Flask-WTF, MLFLOW_FLASK_SERVER_SECRET_KEY, MLFLOW_AUTH_ADMIN_PASSWORD; workers log in with
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD): a worker without credentials stops with
one line; a user who may only read cannot claim; the admin trains."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from calibexp.tracking.registry import CLAIM_PREFIX
from tests.support import ROOT, run_id_from, subprocess_env
from tests.support.mlflow_server import Server

pytestmark = pytest.mark.slow
ADMIN = ("admin", "admin-password-0123")
READER = ("reader", "reader-password-0123")
TINY = ["model.width=4", "train.epochs=1", "train.progress=false", "eval.diagram_every=0"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("auth-server")
    env = {
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "calibexp-test-secret",
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
    }
    srv = Server(f"sqlite:///{folder}/server.db", folder, app="basic-auth", env=env).start()
    api = f"{srv.uri}/api/2.0/mlflow"
    requests.post(
        f"{api}/users/create", json={"username": READER[0], "password": READER[1]}, auth=ADMIN
    ).raise_for_status()
    # owned by the admin; every other user has the default permission on it: READ
    requests.post(
        f"{api}/experiments/create", json={"name": "shared"}, auth=ADMIN
    ).raise_for_status()
    yield srv
    srv.stop()


def train_as(server: Server, user: tuple[str, str] | None, cwd) -> subprocess.CompletedProcess:
    env = subprocess_env(server.uri)
    env["MLFLOW_EXPERIMENT_NAME"] = "shared"
    if user:
        env.update(MLFLOW_TRACKING_USERNAME=user[0], MLFLOW_TRACKING_PASSWORD=user[1])
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "entrypoints/train.py"),
            "--config",
            str(ROOT / "configs/demo.yaml"),
            *TINY,
        ],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def admin_client(server: Server, monkeypatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    return MlflowClient(server.uri)


def claims(client: MlflowClient) -> list[str]:
    everything = client.search_experiments(view_type=ViewType.ALL)
    return [e.name for e in everything if e.name.startswith(CLAIM_PREFIX)]


def test_a_worker_without_credentials_stops_with_one_line(server, tmp_path):
    done = train_as(server, None, tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "requires a login (HTTP 401)" in line and "MLFLOW_TRACKING_USERNAME" in line


def test_a_read_only_user_cannot_claim(server, tmp_path, monkeypatch):
    done = train_as(server, READER, tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert "user reader may not write to experiment" in line and "EDIT permission" in line
    client = admin_client(server, monkeypatch)
    assert claims(client) == []
    shared = client.get_experiment_by_name("shared").experiment_id
    assert client.search_runs([shared]) == []


def test_the_admin_trains(server, tmp_path, monkeypatch):
    done = train_as(server, ADMIN, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    client = admin_client(server, monkeypatch)
    run = client.get_run(run_id_from(done.stdout))
    assert run.info.status == "FINISHED" and "test/acc" in run.data.metrics
    assert len(claims(client)) == 1
