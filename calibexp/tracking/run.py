"""One MLflow run, addressed by id through ``MlflowClient`` (no fluent active-run stack: it is
thread-local, and our uploads happen on a worker thread). Every create, attach, write and finish
of a run goes through here.

Every write that can wait goes through the ordered background worker; params and tags that
define the run are written at once. Each write is *patient* (retried while the store is away,
for up to ``tracking.store_timeout_s``, training going on meanwhile) and *fenced* (a run held
under a registry lease is written only while the lease is held; ``calibexp.tracking.registry``).
Conventions: metric keys ``{split}/{metric}`` with step = epoch; tags
``calibexp.*``; artifacts ``config.yaml``, ``checkpoints/``, ``logits/``, ``plots/``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import mlflow
import numpy as np
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from calibexp.errors import CalibexpError, EarlyStop, LeaseLost
from calibexp.tracking.background import OrderedWorker
from calibexp.tracking.launcher import take_launcher
from calibexp.tracking.ops_tags import CREATE_TOKEN_TAG, HOST_TAG, PID_TAG
from calibexp.tracking.store import (
    first_line,
    log_inputs,
    open_store,
    patient,
    permission_denied,
    set_experiment_tag,
    transient,
)

if TYPE_CHECKING:
    from calibexp.diagrams import FrameBudget

MAX_METRICS_PER_CALL = 1000  # MLflow's log_batch limits
MAX_PARAMS_PER_CALL = 100


def tracking_client() -> MlflowClient:
    """A client on MLflow's own URI resolution that has proven it can reach the store."""
    return open_store()


class TrackedRun:
    """Writes to one existing MLflow run."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client  # waits out an outage by itself (PatientClient)
        self.raw = getattr(client, "raw", client)  # for writes retried here, fence by fence
        self.run_id = run_id
        self.worker = OrderedWorker()
        self.staging = Path(tempfile.mkdtemp(prefix=f"calibexp-{run_id[:8]}-"))
        self.logged_through = -1  # epochs <= this already hold metrics (set on resume)
        self.drawn: set[int] = set()  # steps of the val image series already stored (resume)
        self._uploads = 0
        self._artifact_dir: Path | None | bool = False  # resolved on the first upload
        self._metrics: list[Metric] = []  # logged by the next queued write
        self.lease: Any = None  # a registry Lease: every write is fenced by it

    # ------------------------------------------------------------------ opening

    @classmethod
    def create(
        cls, client: Any, experiment_id: str, run_name: str | None, tags: dict[str, str]
    ) -> "TrackedRun":
        """A new run with ``tags`` and the resolved context tags (user, source, git commit).
        Retried by a token while the store is away: a create whose answer was lost must not
        leave a second run behind."""
        from mlflow.tracking.context.registry import resolve_tags  # user, source, git commit

        token = uuid.uuid4().hex
        tags = resolve_tags({**tags, CREATE_TOKEN_TAG: token})
        raw = getattr(client, "raw", client)
        deadline = time.monotonic() + getattr(client, "timeout_s", 0)
        while True:
            try:
                run = raw.create_run(experiment_id, run_name=run_name, tags=tags)
                return cls(client, run.info.run_id)
            except Exception as err:  # noqa: BLE001 - classified below
                if not transient(err) or time.monotonic() > deadline:
                    raise
            time.sleep(2)
            made = client.search_runs([experiment_id], f"tags.`{CREATE_TOKEN_TAG}` = '{token}'")
            if made:
                return cls(client, made[0].info.run_id)

    @classmethod
    def for_this_command(
        cls,
        client: MlflowClient,
        experiment_id: Callable[[], str],
        run_name: str | None,
        tags: dict[str, str],
    ) -> "TrackedRun":
        """The run ``mlflow run`` created for this command (a run that cannot be taken over:
        an evaluation, a study's parent, a sweep's summary), or else a new one in
        ``experiment_id()``; tagged either way, with the same resolved tags as any run."""
        from mlflow.tracking.context.registry import resolve_tags

        launched = take_launcher()
        if not launched:
            return cls.create(client, experiment_id(), run_name, tags)
        run = cls.attach(client, launched)
        context = {k: v for k, v in resolve_tags({}).items() if k.startswith("mlflow.source.git")}
        run.set_tags({**context, **tags})
        return run

    @classmethod
    def attach(cls, client: MlflowClient, run_id: str) -> "TrackedRun":
        get_run(client, run_id)
        client.update_run(run_id, status="RUNNING")
        return cls(client, run_id)

    def hold(self, lease: Any) -> None:
        """Write only while ``lease`` is held."""
        self.lease = lease

    def _fence(self) -> None:
        if self.lease is not None:
            self.lease.assert_held()

    def check_lease(self) -> None:
        """Raise ``LeaseLost`` if the lease is known to be lost (no store call)."""
        if self.lease is not None and self.lease.lost:
            self.lease.assert_held()

    @property
    def timeout_s(self) -> float:
        return getattr(self.client, "timeout_s", 0.0)

    def _fenced(self, call: Callable[[], Any]) -> Any:
        """A write with the plain client, retried while the store is away, and under a lease
        fenced before every try (a write never lands after this worker was taken over)."""
        if self.lease is not None:
            return self.lease.fenced(call, self.timeout_s)
        return patient(call, self.timeout_s)

    # ------------------------------------------------------------------ writing

    def log_params(self, params: dict[str, str]) -> None:
        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS_PER_CALL):
            batch = items[i : i + MAX_PARAMS_PER_CALL]
            self._fenced(lambda b=batch: self.raw.log_batch(self.run_id, params=b))

    def log_dataset(self, dataset: Any) -> None:
        """Record ``dataset`` (an ``mlflow.entities.DatasetInput``) as the run's input."""
        self._fenced(lambda: log_inputs(self.raw, self.run_id, [dataset]))

    def set_tags(self, tags: dict[str, Any]) -> None:
        items = [RunTag(k, str(v)) for k, v in tags.items()]
        for i in range(0, len(items), MAX_PARAMS_PER_CALL):
            batch = items[i : i + MAX_PARAMS_PER_CALL]
            self._fenced(lambda b=batch: self.raw.log_batch(self.run_id, tags=b))

    def log_epoch(self, metrics: dict[str, float], epoch: int, stamp_ms: int | None = None) -> None:
        """``log_metrics`` for one epoch, unless that epoch was logged before the run was
        resumed (``logged_through``): every epoch is logged exactly once. ``stamp_ms`` is the
        epoch's own timestamp (from the checkpoint, on a resume): MLflow stores a metric
        (key, step, timestamp, value) once, so the same epoch written by a taken-over worker's
        last request in flight and by its successor is one point, not two."""
        if epoch > self.logged_through:
            self.log_metrics(metrics, step=epoch, stamp_ms=stamp_ms)

    def log_metrics(
        self, metrics: dict[str, float], step: int, stamp_ms: int | None = None
    ) -> None:
        """Buffered until the next ``write_metrics``, ``flush`` or ``finish``, then written in
        as few ``log_batch`` calls as MLflow's 1,000-metric limit allows."""
        now = stamp_ms if stamp_ms is not None else int(time.time() * 1000)
        self._metrics += [Metric(k, float(v), now, step) for k, v in metrics.items()]

    def write_metrics(self) -> None:
        """Queue the buffered metrics as one write, after what is queued."""
        items, self._metrics = self._metrics, []
        if items:
            self.worker.submit(self._log_batch, items)

    def _log_batch(self, items: list[Metric]) -> None:
        for i in range(0, len(items), MAX_METRICS_PER_CALL):
            batch = items[i : i + MAX_METRICS_PER_CALL]
            self._fenced(lambda b=batch: self.raw.log_batch(self.run_id, metrics=b))

    def stage(self, artifact_path: str) -> Path:
        """A fresh local file path to write an artifact into before ``upload`` queues it."""
        self._uploads += 1
        folder = self.staging / str(self._uploads)
        folder.mkdir()
        return folder / Path(artifact_path).name

    def upload(self, local_file: Path, artifact_path: str) -> None:
        """Queue ``local_file`` (from ``stage``) to become the artifact ``artifact_path``."""
        self.worker.submit(self._upload, local_file, artifact_path)

    def _upload(self, local_file: Path, artifact_path: str) -> None:
        parent = Path(artifact_path).parent
        if self._artifact_dir is False:
            self._artifact_dir = self._fenced(lambda: _local_artifact_dir(self.raw, self.run_id))
        destination = self._artifact_dir
        try:
            if destination is not None:
                # Local store: copy beside the target, then rename over it, so a reader (or a
                # resume after a crash) never sees a half-written checkpoint.
                target = destination / artifact_path
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
                self._fence()
                shutil.copyfile(local_file, partial)
                os.replace(partial, target)
            else:
                folder = None if str(parent) == "." else parent.as_posix()
                self._fenced(lambda: self.raw.log_artifact(self.run_id, str(local_file), folder))
        except (OSError, MlflowException) as err:
            where = destination if destination is not None else "the artifact store"
            raise CalibexpError(
                f"cannot write artifact {artifact_path} to {where}: {first_line(err)}; "
                "point the experiment's artifact location at a writable place"
            ) from None
        shutil.rmtree(local_file.parent, ignore_errors=True)

    def log_text(self, text: str, artifact_path: str) -> None:
        path = self.stage(artifact_path)
        path.write_text(text)
        self.upload(path, artifact_path)

    def log_arrays(self, arrays: dict[str, Any], artifact_path: str) -> None:
        """Store NumPy arrays by name as one ``.npz`` artifact."""
        path = self.stage(artifact_path)
        np.savez_compressed(path, **arrays)
        self.upload(path, artifact_path)

    def log_json(self, obj: Any, artifact_path: str) -> None:
        self.log_text(json.dumps(obj, indent=1), artifact_path)

    def log_figure(self, build: Callable[[], Any], artifact_path: str) -> None:
        """Queue ``build()`` (a matplotlib ``Figure``) to be drawn and stored as a PNG.

        Drawing happens on the worker thread, so a diagram (~0.15 s on a CPU) overlaps training
        instead of pausing it. Safe because every calibexp figure is built and drawn there,
        with the object API (no pyplot): matplotlib only ever runs on that one thread."""
        path = self.stage(artifact_path)
        self.worker.submit(self._draw_and_upload, build, path, artifact_path)

    def _draw_and_upload(self, build: Callable[[], Any], path: Path, artifact_path: str) -> None:
        from calibexp.plots import figure_png

        path.write_bytes(figure_png(build()))
        self._upload(path, artifact_path)

    def log_image_series(
        self, render: Callable[[], Any], key: str, step: int, budget: FrameBudget, last: bool
    ) -> None:
        """Queue ``render()`` (an RGB uint8 array) to be drawn into the step-indexed image series
        ``key`` (``MlflowClient.log_image(key=, step=)``: the UI shows it as a slider over
        steps), if the ``budget`` ``allows(last)`` it when its turn comes; its time is charged
        to the budget."""
        self.worker.submit(self._draw_and_log_image, render, key, step, budget, last)

    def _draw_and_log_image(
        self, render: Callable[[], Any], key: str, step: int, budget: FrameBudget, last: bool
    ) -> None:
        if not budget.allows(last):
            return
        began = time.monotonic()
        try:
            pixels = render()
            self._fenced(
                lambda: self.raw.log_image(
                    self.run_id, pixels, key=key, step=step, synchronous=True
                )
            )
        except (OSError, MlflowException) as err:
            raise CalibexpError(
                f"cannot log image {key} step {step}: {first_line(err)}; "
                "point the experiment's artifact location at a writable place"
            ) from None
        budget.charge(time.monotonic() - began)

    def image_steps(self, key: str) -> set[int]:
        """The steps of the image series ``key`` already in the store."""
        prefix = key.replace("/", "~") + "+step+"
        steps = set()
        for entry in self._fenced(lambda: self.raw.list_artifacts(self.run_id, "images")):
            name = Path(entry.path).name
            if name.startswith(prefix) and name.endswith(".png"):
                steps.add(int(name[len(prefix) :].split("+")[0]))
        return steps

    # ------------------------------------------------------------------ closing

    def flush(self) -> None:
        """Write everything buffered and queued; re-raise the first failure."""
        self.write_metrics()
        self.worker.flush()

    def finish(self, status: str, reason: str | None = None) -> None:
        """Drain the queue, then mark the run ``status`` (FINISHED / FAILED / KILLED); a run
        whose last writes failed is FAILED with that reason, never FINISHED."""
        try:
            self.flush()
        except BaseException as err:
            if status == RunStatus.to_string(RunStatus.FINISHED):
                status = RunStatus.to_string(RunStatus.FAILED)
                reason = reason or f"{type(err).__name__}: {err}"
            raise
        finally:
            self.worker.close()
            shutil.rmtree(self.staging, ignore_errors=True)
            if reason:
                self._fenced(
                    lambda: self.raw.set_tag(self.run_id, "calibexp.end_reason", reason[:5000])
                )
            if self.lease is not None:  # the holder itself says the attempt is over
                self.lease.stop()
                self.lease.fenced(lambda: self.lease.beat(ended=True), self.timeout_s)
            self._fenced(lambda: self.raw.set_terminated(self.run_id, status))

    def release(self) -> None:
        """Write nothing more through this handle and drop what is queued: the run was taken
        over (``LeaseLost``), or it is ended elsewhere (a study's parent, a sweep's summary)."""
        if self.lease is not None:
            self.lease.stop()
        self.worker.close(cancel=True)
        shutil.rmtree(self.staging, ignore_errors=True)


def end_run(client: Any, run_id: str, status: str, reason: str | None = None) -> None:
    """End a run this process does not hold a ``TrackedRun`` of (a dead trial's, a study's
    parent, a sweep's summary): the reason first, then the status, if it is still RUNNING."""
    if get_run(client, run_id).info.status != "RUNNING":
        return
    if reason:
        client.set_tag(run_id, "calibexp.end_reason", reason[:5000])
    client.set_terminated(run_id, status)


def get_run(client: MlflowClient, run_id: str) -> Any:
    try:
        return client.get_run(run_id)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(err).lower():
            raise CalibexpError(
                f"no MLflow run with id '{run_id}' in {mlflow.get_tracking_uri()}; "
                "copy the id from the MLflow UI or `mlflow runs list`"
            ) from None
        raise


# MLflow 3's UI opens an experiment on the page its kind names; one without the tag opens on the
# GenAI traces page. Classifier training belongs on the run table.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def experiment_id_for(client: MlflowClient, default_name: str) -> str:
    """The experiment MLflow was told to use (``MLFLOW_EXPERIMENT_ID`` / ``MLFLOW_EXPERIMENT_NAME``,
    as ``mlflow run --experiment-name`` sets them), else ``default_name``, created if needed;
    either way of the kind whose UI opens on the run table (``EXPERIMENT_KIND``), unless the
    user gave it another."""
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        experiment = client.get_experiment(os.environ["MLFLOW_EXPERIMENT_ID"])
    else:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or default_name
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return client.create_experiment(name, tags=EXPERIMENT_KIND)
            except MlflowException:
                experiment = client.get_experiment_by_name(name)
                if experiment is None:  # not a concurrent creation: the store refused
                    raise
    ((key, kind),) = EXPERIMENT_KIND.items()
    if key not in experiment.tags:  # made by `mlflow run` or by hand
        try:
            set_experiment_tag(client, experiment.experiment_id, key, kind)
        except MlflowException as err:
            # The tag only picks the UI's landing page. A user without EDIT permission goes
            # on to the registry, whose claim refuses it with the line naming that permission.
            if not permission_denied(err):
                raise
    return experiment.experiment_id


def _local_artifact_dir(client: MlflowClient, run_id: str) -> Path | None:
    uri = client.get_run(run_id).info.artifact_uri
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else uri)
    return None


def host_tags() -> dict[str, str]:
    """Who runs this (``CALIBEXP_HOST`` or the host name, and the process)."""
    from calibexp.tracking.registry import worker_host

    return {HOST_TAG: worker_host(), PID_TAG: str(os.getpid())}


def terminal_status(exc: BaseException | None) -> str:
    """FINISHED for a run that did what was asked, pruned by its study (``EarlyStop``) included;
    KILLED for one stopped from outside; FAILED for one that broke."""
    if exc is None or isinstance(exc, EarlyStop):
        return RunStatus.to_string(RunStatus.FINISHED)
    if isinstance(exc, (KeyboardInterrupt, LeaseLost)):
        return RunStatus.to_string(RunStatus.KILLED)
    return RunStatus.to_string(RunStatus.FAILED)
