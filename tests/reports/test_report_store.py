"""The report on constructed runs with known values, written straight into the test's store:
what is counted, what is flagged, which entries are bold, what the LaTeX compiles to, and that
the same store gives byte-identical files."""

from __future__ import annotations

import math
import shutil
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from calibexp.errors import CalibexpError
from calibexp.reports import make_report, report_spec
from calibexp.reports.selection import REPORT_TAG

EXPERIMENT = "report-test"
# ECE-15 per seed of four methods on one (dataset, model) block. focal is best; ce differs from
# it by -0.001, +0.0005, -0.0015 (a paired t-test cannot separate them: p ≈ 0.42); mmce is worse
# on every seed by 0.020, 0.022, 0.020 (t ≈ -31, p ≈ 0.001, Holm ×2 ≈ 0.002 < 0.05); brier has
# only seeds 0 and 1, so it is not tested (and flagged as missing seed 2).
ECE = {
    "focal": {0: 0.010, 1: 0.012, 2: 0.011},
    "ce": {0: 0.011, 1: 0.0115, 2: 0.0125},
    "mmce": {0: 0.030, 1: 0.034, 2: 0.031},
    "brier": {0: 0.012, 1: 0.0135},
}
ACC = {
    "focal": {0: 0.95, 1: 0.951, 2: 0.949},
    "ce": {0: 0.96, 1: 0.962, 2: 0.9605},
    "mmce": {0: 0.9502, 1: 0.9498, 2: 0.951},
    "brier": {0: 0.95, 1: 0.95},
}


def make_run(client, experiment, loss, seed, metrics, status="FINISHED", tags=None, **params):
    values = {"data.name": "cifar10", "model.name": "resnet50", "loss.name": loss,
              "protocol": "torrvision", "seed": str(seed), "eval.ece_bins": "15",
              "meta.name": "none", "train.epochs": "350", **params}  # fmt: skip
    if loss == "focal":
        values.setdefault("loss.gamma", "3.0")
    run = client.create_run(
        experiment,
        tags={
            "calibexp.run_key": f"{loss}-{seed}-{params}",
            "mlflow.source.git.commit": "c0ffee",
            "mlflow.runName": f"{loss}-s{seed}",
            **(tags or {}),
        },  # fmt: skip
    )
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in values.items()],
    )
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


@pytest.fixture
def store():
    client = MlflowClient()
    experiment = client.create_experiment(EXPERIMENT)
    ids = {}
    for loss in ECE:
        for seed in ECE[loss]:
            ids[loss, seed] = make_run(
                client, experiment, loss, seed,
                {"test/ece_15": ECE[loss][seed], "test/acc": ACC[loss][seed],
                 "test/nll": 0.2 + ECE[loss][seed], "test_ts_grid/ece_15": ECE[loss][seed] / 2,
                 "ts_grid/temperature": 1.0 + seed / 10},
            )  # fmt: skip
    # never counted: a launcher run, a failed run, a forced duplicate of ce seed 0
    client.set_tag(
        make_run(client, experiment, "ce", 0, {"test/acc": 0.1}), "calibexp.launcher_of", "x"
    )
    failed = make_run(client, experiment, "ce", 3, {"test/acc": 0.2}, status="FAILED")
    forced = make_run(client, experiment, "ce", 0, {"test/acc": 0.3, "test/ece_15": 0.5},
                      tags={"calibexp.forced": "true"})  # fmt: skip
    return client, experiment, ids, failed, forced


def bold_cells(markdown: str) -> set[tuple[str, str]]:
    """(loss, header) of every bold cell of the Markdown table."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    found = set()
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for name, cell in zip(head, cells):
            if cell.startswith("**"):
                found.add((cells[head.index("loss")], name))
    return found


def test_bold_is_the_best_and_what_a_paired_test_cannot_separate(store, tmp_path):
    spec = report_spec(f"experiment:{EXPERIMENT}", columns="test/ece_15 error test/nll")
    report = make_report(spec, tmp_path / "out")
    markdown = (tmp_path / "out/table.md").read_text()
    assert bold_cells(markdown) == {
        ("focal", "ECE-15 %"), ("ce", "ECE-15 %"),  # best, and within noise
        ("focal", "NLL"), ("ce", "NLL"),  # NLL = 0.2 + ECE: the same verdicts
        ("ce", "Error %"),  # best error; focal and mmce are worse on every seed (below)
    }  # fmt: skip
    # the adjusted p-values, against a written-out paired t-test and Holm over 2 comparisons
    frame = pd.read_csv(tmp_path / "out/table.csv")

    def p_paired(a, b):
        d = np.array(a) - np.array(b)
        t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
        from scipy.stats import t as student

        return 2 * student.sf(abs(t), len(d) - 1)

    raw = {loss: p_paired(list(ECE["focal"].values()), list(ECE[loss].values()))
           for loss in ("ce", "mmce")}  # fmt: skip
    assert raw["ce"] > 0.05 and raw["mmce"] < 0.025
    holm_mmce, holm_ce = 2 * raw["mmce"], max(2 * raw["mmce"], raw["ce"])
    ece = frame[frame["column"] == "test/ece_15"].set_index("loss")
    assert ece.loc["mmce", "p_holm"] == pytest.approx(holm_mmce, rel=1e-9)
    assert ece.loc["ce", "p_holm"] == pytest.approx(holm_ce, rel=1e-9)
    assert not ece.loc["brier", "tested"] and not ece.loc["brier", "bold"]
    assert "†" in markdown.split("| brier")[1].splitlines()[0]  # marked as not tested
    error = frame[frame["column"] == "error"].set_index("loss")
    for loss in ("focal", "mmce"):
        assert not error.loc[loss, "bold"] and error.loc[loss, "p_holm"] < 0.05
    assert report.run_id


def test_means_stds_flags_and_what_is_not_counted(store, tmp_path):
    client, _, ids, failed, forced = store
    make_report(report_spec(f"experiment:{EXPERIMENT}"), tmp_path / "out")
    frame = pd.read_csv(tmp_path / "out/table.csv")
    for loss, seeds in ECE.items():
        row = frame[(frame["loss"] == loss) & (frame["column"] == "test/ece_15")].iloc[0]
        values = np.array(list(seeds.values()))
        assert row["mean"] == pytest.approx(values.mean(), abs=1e-15)
        assert row["std"] == pytest.approx(values.std(ddof=1), abs=1e-15)
        assert row["n"] == len(values)
        error = frame[(frame["loss"] == loss) & (frame["column"] == "error")].iloc[0]
        assert error["mean"] == pytest.approx(
            np.mean([1 - a for a in ACC[loss].values()]), abs=1e-15
        )
        grid = frame[(frame["loss"] == loss) & (frame["column"] == "test_ts_grid/ece_15")].iloc[0]
        assert grid["temperature"] == pytest.approx(np.mean([1 + s / 10 for s in seeds]), abs=1e-12)
    markdown = (tmp_path / "out/table.md").read_text()
    assert "cifar10/resnet50/brier/torrvision: missing seed(s) 2: n = 2 of 3" in markdown
    assert f"run {failed} (seed 3) FAILED: not counted" in markdown
    assert (
        f"run {forced} (seed 0) duplicate of seed 0 (run {ids['ce', 0]}): not counted" in markdown
    )
    assert "1 launcher run(s) left out" in markdown
    runs = pd.read_csv(tmp_path / "out/runs.csv")
    assert set(runs[runs["counted"]]["run_id"]) == set(ids.values())
    assert set(runs["git_commit"]) == {"c0ffee"}
    # published numbers beside ours (Mukhoti et al. 2020, CIFAR-10 ResNet-50): CE error 4.95
    head = markdown.split("\n")[2]
    assert "published Error %" in head
    ce_row = next(
        line for line in markdown.splitlines() if line.startswith("| cifar10 | resnet50 | ce ")
    )
    ours = 100 * np.mean([1 - a for a in ACC["ce"].values()])
    assert "| 4.95 " in ce_row and f"{ours - 4.95:+.2f}" in ce_row
    assert "| 1.35 (2.5) " in ce_row  # ECE after the grid temperature, with its T
    brier_row = next(line for line in markdown.splitlines() if "| brier " in line)
    assert "| 5.00 " in brier_row  # Brier's published error
    mmce_row = next(line for line in markdown.splitlines() if "| mmce " in line)
    assert "| 4.99 " not in mmce_row  # MMCE's row needs lam = 2, which these runs do not log


def test_same_store_same_bytes_and_the_report_run(store, tmp_path):
    client = store[0]
    spec = report_spec(f"experiment:{EXPERIMENT}")
    first = make_report(spec, tmp_path / "a")
    second = make_report(spec, tmp_path / "b")  # its own report run is never selected
    for name in first.written:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    run = client.get_run(second.run_id)
    assert run.info.status == "FINISHED" and run.data.tags[REPORT_TAG] == spec.name
    logged = {f.path for f in client.list_artifacts(second.run_id, "report")}
    assert logged == {f"report/{name}" for name in second.written}
    assert run.data.tags["mlflow.note.content"] == (tmp_path / "b/table.md").read_text()


def compile_or_parse(tex: str, folder) -> None:
    """pdflatex where installed (CI installs it from Debian's texlive packages), else a LaTeX
    parser's reading of the table: every row has as many cells as the header."""
    if shutil.which("pdflatex"):
        (folder / "doc.tex").write_text(
            "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
            f"\\begin{{document}}\n{tex}\\end{{document}}\n"
        )
        done = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
            cwd=folder, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:]
        assert (folder / "doc.pdf").stat().st_size > 1000
        return
    from pylatexenc.latexwalker import LatexEnvironmentNode, LatexWalker

    nodes, _, _ = LatexWalker(tex).get_latex_nodes()
    tabular = [n for n in _walk(nodes) if isinstance(n, LatexEnvironmentNode)
               and n.environmentname == "tabular"]  # fmt: skip
    assert len(tabular) == 1
    body = tabular[0].latex_verbatim()
    rows = [r for r in body.split("\\\\")[:-1]]
    cells = {r.count("&") for r in rows}
    assert len(cells) == 1


def _walk(nodes):
    for node in nodes or []:
        yield node
        yield from _walk(getattr(node, "nodelist", None))


def test_latex_compiles_and_bolds_exactly_the_bold_entries(store, tmp_path):
    spec = report_spec(f"experiment:{EXPERIMENT}", columns="test/ece_15 error test/nll")
    make_report(spec, tmp_path / "out", draw=False)
    tex = (tmp_path / "out/table.tex").read_text()
    compile_or_parse(tex, tmp_path / "out")
    markdown = (tmp_path / "out/table.md").read_text()
    rows = [r for r in tex.split("\\midrule")[1].split("\\bottomrule")[0].split("\\\\") if "&" in r]
    head = [h.strip() for h in tex.split("\\toprule")[1].split("\\\\")[0].split("&")]
    bold = set()
    for row in rows:
        cells = [c.strip() for c in row.split("&")]
        bold |= {(cells[2], head[i]) for i, c in enumerate(cells) if c.startswith("\\bfseries")}
    expected = {(loss, header.replace("%", "\\%")) for loss, header in bold_cells(markdown)}
    assert bold == expected and len(bold) == 5


BAD_INPUT = [
        ("experiment:nope", {},
         r"experiment 'nope' is not in the store; experiments in the store: "
         r".*report-test \(14 calibexp runs\)"),
        (f"experiment:{EXPERIMENT}; filter:params.`loss.name` = 'dece'", {}, "matched no runs"),
        (f"experiment:{EXPERIMENT}", {"columns": "test/ece_10"},
         r"column 'test/ece_10': no selected run logged 'test/ece_10' "
         r"\(did you mean 'test/ece_15'\?\); logged: "),
        (f"experiment:{EXPERIMENT}", {"group_by": "dataset los"},
         r"group key 'los' \(los\) is no param of the selected runs "
         r"\(did you mean 'loss.name'\?\)"),
        ("study:missing-study", {}, "matched no runs"),
        ("sweep:no-such-sweep", {},
         r"no sweep named 'no-such-sweep' in the store \(and no spec file at that path\); "
         r"sweeps: none$"),
]  # fmt: skip


@pytest.mark.parametrize(("select", "extra", "message"), BAD_INPUT)
def test_bad_input_is_one_line_naming_what_exists(store, tmp_path, select, extra, message):
    with pytest.raises(CalibexpError, match=message) as err:
        make_report(report_spec(select, **extra), tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing written
    assert not MlflowClient().search_runs(
        [e.experiment_id for e in MlflowClient().search_experiments()], f"tags.`{REPORT_TAG}` != ''"
    )  # and no report run


def test_configs_are_never_averaged_as_seeds(tmp_path):
    """Runs differing in a config key besides the seed are two rows: the default group_by is
    extended with the key (and says so); a group_by the user gave is refused naming it."""
    client = MlflowClient()
    experiment = client.create_experiment(EXPERIMENT)
    for seed in (0, 1):
        for gamma, acc in (("1.0", 0.9), ("3.0", 0.8)):
            make_run(client, experiment, "focal", seed, {"test/acc": acc + seed / 100},
                     **{"loss.gamma": gamma})  # fmt: skip
    make_report(report_spec(f"experiment:{EXPERIMENT}"), tmp_path / "out", draw=False)
    markdown = (tmp_path / "out/table.md").read_text()
    assert "group_by extended with loss.gamma: they vary within rows (loss.gamma = 1.0, 3.0)" in (
        markdown
    )
    frame = pd.read_csv(tmp_path / "out/table.csv")
    assert list(frame["loss.gamma"]) == [1.0, 3.0] and set(frame["n"]) == {2}
    assert list(frame["mean"]) == pytest.approx([1 - 0.905, 1 - 0.805], abs=1e-15)
    assert "duplicate" not in markdown
    with pytest.raises(CalibexpError, match=(
        r"^group_by dataset model loss averages different configs as seeds: "
        r"loss.gamma = 1.0, 3.0; add loss.gamma to group_by, or narrow the selection with filter:$"
    )):  # fmt: skip
        make_report(
            report_spec(f"experiment:{EXPERIMENT}", group_by="dataset model loss"), tmp_path / "x"
        )


def test_curves_take_one_value_per_epoch_and_seed(tmp_path):
    """A resumed run that logged an epoch twice counts it once (the later value), and the band
    data are each method's seeds, per block."""
    from calibexp.reports.figures import CURVES, figure_jobs
    from calibexp.reports.selection import select_runs
    from calibexp.reports.table import build_table

    client = MlflowClient()
    experiment = client.create_experiment(EXPERIMENT)
    first = make_run(client, experiment, "ce", 0, {"test/acc": 0.9})
    second = make_run(client, experiment, "ce", 1, {"test/acc": 0.9})
    client.log_batch(
        first,
        metrics=[
            Metric("val/nll", 2.0, 1, 0),
            Metric("val/nll", 1.0, 2, 1),
            Metric("val/nll", 0.8, 3, 1),
        ],
    )  # epoch 1 again, resumed
    client.log_batch(second, metrics=[Metric("val/nll", 1.0, 1, 0), Metric("val/nll", 0.6, 2, 1)])
    spec = report_spec(f"experiment:{EXPERIMENT}", columns="error")
    table = build_table(select_runs(client, spec.selection), spec)
    jobs = dict(figure_jobs(client, table))
    _, (curves, keys, _) = jobs[CURVES]
    assert keys == ["val/nll"]
    assert curves == {"cifar10/resnet50": {"ce/torrvision": {"val/nll": [
        [(0, 2.0), (1, 0.8)], [(0, 1.0), (1, 0.6)]]}}}  # fmt: skip
    assert (
        jobs["reliability_evolution.png"] == "the runs of seed 0 share no logged val diagram epoch"
    )


def test_a_pruned_trial_is_no_row_and_one_seed_shows_no_std(tmp_path):
    client = MlflowClient()
    experiment = client.create_experiment(EXPERIMENT)
    make_run(client, experiment, "ce", 0, {"test/acc": 0.9})
    pruned = make_run(client, experiment, "focal", 0, {"test/acc": 0.5},
                      tags={"calibexp.trial_state": "PRUNED"})  # fmt: skip
    make_report(
        report_spec(f"experiment:{EXPERIMENT}", columns="error"), tmp_path / "o", draw=False
    )
    markdown = (tmp_path / "o/table.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| cifar10")]
    assert (
        len(rows) == 1 and "| ce " in rows[0] and "| **10.00** " in rows[0] and "±" not in rows[0]
    )
    assert "1 pruned trial(s) not counted (runs.csv lists them)" in markdown
    assert pruned not in markdown
    runs = pd.read_csv(tmp_path / "o/runs.csv").set_index("run_id")
    assert runs.loc[pruned, "why_not"] == "pruned trial: not counted"


def test_a_sweep_by_name_takes_its_most_complete_worker_view(tmp_path):
    """Before every config settled the summary run holds only its workers' views: the one with
    the most FINISHED configs lists the runs."""
    from calibexp.sweeps.worker import SUMMARY_TAG

    client = MlflowClient()
    experiment = client.create_experiment(EXPERIMENT)
    ids = [make_run(client, experiment, "ce", seed, {"test/acc": 0.9}) for seed in (0, 1)]
    summary = client.create_run(experiment, tags={SUMMARY_TAG: "grid"}).info.run_id
    head = "config,run_id,status,attempts,host\n"
    client.log_text(
        summary, head + f"a,{ids[0]},FINISHED,1,h\nb,-,-,0,-\n", "sweep/workers/h-1.csv"
    )
    client.log_text(summary, head + f"a,{ids[0]},FINISHED,1,h\nb,{ids[1]},FINISHED,1,h\n",
                    "sweep/workers/h-2.csv")  # fmt: skip
    make_report(report_spec("sweep:grid", columns="error"), tmp_path / "o", draw=False)
    runs = pd.read_csv(tmp_path / "o/runs.csv")
    assert sorted(runs["run_id"]) == sorted(ids) and runs["counted"].all()


def test_only_config_keys_split_rows(tmp_path):
    """``mlflow run`` logs its entry point's parameters (config, overrides, force) on the run it
    trains in, and a plain run's meta.* values are not part of its config (its run key leaves
    them out): neither makes two seeds two rows."""
    client = MlflowClient()
    experiment = client.create_experiment(EXPERIMENT)
    for seed in (0, 1):
        make_run(client, experiment, "ce", seed, {"test/acc": 0.9 + seed / 100},
                 config="configs/cifar10/resnet50/ce.yaml", overrides=f"seed={seed}",
                 force="true" if seed else "false", **{"meta.beta": str(0.5 + seed)})  # fmt: skip
    spec = report_spec(f"experiment:{EXPERIMENT}", columns="error")
    report = make_report(spec, tmp_path / "o", draw=False)
    (group,) = report.table.groups
    assert report.table.spec.group_by == ("dataset", "model", "loss", "protocol")
    assert sorted(group.runs) == [0, 1] and "extended" not in (tmp_path / "o/table.md").read_text()
