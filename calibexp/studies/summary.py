"""What a study leaves on its parent run: the best trial(s), every trial as CSV and JSON, the
optimisation history, parameter importances and, for two objectives, the Pareto front."""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from calibexp.studies.spec import StudySpec

# fANOVA importances (Hutter et al., ICML 2014) fit a random forest to the completed trials;
# with fewer than about ten points the ranking is mostly noise, and the figure says so.
IMPORTANCE_MIN_TRIALS = 10


def importance_caveat(complete: int) -> str | None:
    if complete >= IMPORTANCE_MIN_TRIALS:
        return None
    return (
        f"only {complete} complete trials: importances are unreliable below "
        f"~{IMPORTANCE_MIN_TRIALS}"
    )


def log_summary(client: MlflowClient, study: optuna.Study, spec: StudySpec, parent: str) -> None:
    trials = study.get_trials(deepcopy=False)
    counts = {state.name: sum(t.state == state for t in trials) for state in TrialState}
    for state, count in counts.items():
        client.log_metric(parent, f"study/trials_{state.lower()}", count)
    best = [
        {
            "number": t.number,
            "values": t.values,
            "params": t.params,
            "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
        }
        for t in study.best_trials
    ]
    if len(study.best_trials) == 1:  # one best, also when a Pareto front is one trial
        trial = study.best_trials[0]
        for metric, value in zip(spec.metrics, trial.values):
            client.log_metric(parent, f"best/{metric}", value)
        client.set_tag(parent, "calibexp.best_trial", str(trial.number))
        client.set_tag(parent, "calibexp.best_run_id", trial.user_attrs.get("mlflow_run_id", ""))
        for key, value in trial.params.items():
            client.set_tag(parent, f"best.{key}", str(value))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "best_trials.json").write_text(json.dumps(best, indent=1))
        frame = study.trials_dataframe()
        frame.to_csv(folder / "trials.csv", index=False)
        (folder / "trials.json").write_text(
            frame.to_json(orient="records", indent=1, date_format="iso")
        )
        complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        caveat = importance_caveat(complete)
        if caveat:
            client.set_tag(parent, "calibexp.importance_caveat", caveat)
        for name, path in _plots(study, spec, folder, caveat).items():
            client.log_artifact(parent, str(path), "plots")
            del name
        for name in ("best_trials.json", "trials.csv", "trials.json"):
            client.log_artifact(parent, str(folder / name), "study")


def _plots(
    study: optuna.Study, spec: StudySpec, folder: Path, caveat: str | None
) -> dict[str, Path]:
    """optuna.visualization.matplotlib's figures, as PNGs. Importances need two finished
    trials with more than one distinct value (and carry ``caveat`` in their title); the Pareto
    front needs two objectives."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    names = [m.replace("/", "_") for m in spec.metrics]
    makers = {}
    if spec.multi_objective:
        makers["pareto_front"] = lambda: plots.plot_pareto_front(study, target_names=names)
        for i, name in enumerate(names):
            makers[f"optimization_history_{name}"] = lambda i=i, name=name: (
                plots.plot_optimization_history(
                    study, target=lambda t: t.values[i], target_name=name
                )
            )
    else:
        makers["optimization_history"] = lambda: plots.plot_optimization_history(
            study, target_name=names[0]
        )
        makers["intermediate_values"] = lambda: plots.plot_intermediate_values(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) >= 2 and len({str(t.params) for t in complete}) >= 2:
        target = (lambda t: t.values[0]) if spec.multi_objective else None
        makers["param_importances"] = lambda: plots.plot_param_importances(
            study, target=target, target_name=names[0]
        )
    written = {}
    for name, make in makers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental" warnings of the matplotlib backend
            axes = make()
        first = axes.flat[0] if hasattr(axes, "flat") else axes
        if name == "param_importances" and caveat:
            first.set_title(f"{first.get_title()}\n({caveat})", fontsize=9)
        figure = first.figure
        figure.set_size_inches(7, 4.5)
        figure.tight_layout()
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written[name] = path
    return written
