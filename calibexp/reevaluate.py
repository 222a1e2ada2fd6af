"""Re-evaluate a run's checkpoint into a new MLflow run linked to it (the ``evaluate`` entry).

The new run carries the tags ``calibexp.source_run_id`` and ``mlflow.parentRunId`` (the UI
nests it under the source when both are in one experiment), the source's config and params,
and exactly the end-of-run evaluation that ``train`` logs.
"""

from __future__ import annotations

from calibexp.engine import autocast_for, resolve_device
from calibexp.evaluation import evaluate_and_log
from calibexp.parts import build_data, build_model
from calibexp.run import (
    RunResult,
    describe,
    guarded,
    record_config,
    require_same_split,
    run_tags,
    source_config,
)
from calibexp.seeding import seed_everything
from calibexp.tracking.checkpoints import load_checkpoint
from calibexp.tracking.names import evaluation_name
from calibexp.tracking.run import TrackedRun, get_run, host_tags, tracking_client


def reevaluate(run_id: str, checkpoint: str | None = None) -> RunResult:
    client = tracking_client()
    source = get_run(client, run_id)
    cfg = source_config(client, run_id)
    which = checkpoint or cfg.eval.test_checkpoint
    state = load_checkpoint(client, run_id, f"checkpoints/{which}.pt")

    device = resolve_device(cfg.device)
    seed_everything(cfg.seed, cfg.deterministic)
    data, (_, val_loader, test_loader) = build_data(cfg, device)
    require_same_split(run_id, source.data.tags, data)
    model = build_model(cfg, data, device)
    model.load_state_dict(state["model"])

    tags = {
        **run_tags(cfg, data),
        **host_tags(),
        "calibexp.source_run_id": run_id,
        "mlflow.parentRunId": run_id,
        "calibexp.checkpoint": which,
        "calibexp.checkpoint_epoch": str(state["epoch"]),
    }
    run = TrackedRun.for_this_command(
        client,
        lambda: source.info.experiment_id,
        evaluation_name(source.info.run_name or run_id[:8]),
        tags,
    )
    record_config(run, cfg, data)
    print(
        f"calibexp: evaluating run {run_id} ({which} checkpoint, epoch {state['epoch'] + 1}) "
        f"into MLflow run {run.run_id}",
        flush=True,
    )

    def evaluate() -> RunResult:
        metrics = evaluate_and_log(
            run,
            model,
            val_loader,
            test_loader,
            autocast_for(device, cfg.train.precision),
            bins=cfg.eval.ece_bins,
            calibrators=cfg.eval.calibrators,
            step=int(state["epoch"]),
            domain_names=data.domain_names,
            seen_domains=data.seen_domains,
        )
        describe(run, cfg, metrics)
        return RunResult(run.run_id, metrics)

    return guarded(run, evaluate)
