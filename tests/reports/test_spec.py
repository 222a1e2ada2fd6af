"""calibexp.reports.spec: the ``select`` forms, report spec files and command-line overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from calibexp.errors import CalibexpError
from calibexp.reports.spec import (
    DEFAULT_COMPARE_WITHIN,
    DEFAULT_FIGURE_METRICS,
    DEFAULT_GROUP_BY,
    ReportSpec,
    Selection,
    load_report_spec,
    parse_selection,
    report_spec,
)

REPO = Path(__file__).resolve().parents[2]
SWEEP = REPO / "studies" / "sweep_demo.yaml"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- parse_selection: the forms ---------------------------------------------------------------


def test_sweep_form_resolves_against_root():
    """sweep:<path> is the sweep spec's path under root."""
    assert parse_selection("sweep:studies/sweep_demo.yaml", REPO) == Selection(sweep=SWEEP)


def test_study_form():
    assert parse_selection("study:focal-gamma", REPO) == Selection(study="focal-gamma")


def test_experiment_form_splits_names_at_commas():
    """experiment:a,b names two experiments; blanks and empty names are dropped."""
    assert parse_selection("experiment:a,b", REPO) == Selection(experiments=("a", "b"))
    assert parse_selection(" experiment: a , b , ", REPO) == Selection(experiments=("a", "b"))


def test_filter_form_keeps_colons_in_the_filter():
    """Only the first ':' separates kind and value."""
    text = "filter:tags.note = 'a:b' and metrics.`test/acc` > 0.9"
    assert parse_selection(text, REPO) == Selection(
        filter="tags.note = 'a:b' and metrics.`test/acc` > 0.9"
    )


def test_experiment_and_filter_split_at_the_semicolon():
    """experiment:x; filter:… gives both parts, the backticks kept in the filter."""
    got = parse_selection("experiment:x; filter:tags.`calibexp.loss` = 'ce'", REPO)
    assert got == Selection(experiments=("x",), filter="tags.`calibexp.loss` = 'ce'")


def test_semicolon_inside_quotes_stays_in_the_filter():
    """A quoted ';' is part of the filter, not a separator (spec._parts' docstring).

    FAILS with the current code: shlex (posix=False) treats a quote as a quote only at the
    start of a token, and with whitespace="" the whole part is one token, so the text splits
    into "filter:tags.note = 'a" and "b'" and raises "select part \"b'\": expected <kind>:<value>".
    """
    got = parse_selection("experiment:x; filter:tags.note = 'a;b'", REPO)
    assert got == Selection(experiments=("x",), filter="tags.note = 'a;b'")
    got = parse_selection('filter:tags.note = "a;b"', REPO)
    assert got == Selection(filter='tags.note = "a;b"')


def test_empty_parts_between_semicolons_are_dropped():
    """'study:a; ;filter:x' and 'study:a;;filter:x' both give a study and a filter.

    The second FAILS with the current code: shlex groups ';;' into one punctuation token that
    is not ';', so the whole text is one part and the study is named 'a;;filter:x'.
    """
    expected = Selection(study="a", filter="x")
    assert parse_selection("study:a; ;filter:x", REPO) == expected
    assert parse_selection("study:a;;filter:x", REPO) == expected


def test_bare_sweep_spec_path_is_a_sweep(tmp_path):
    """The bare path of a YAML with configs: is Selection(sweep=…)."""
    assert parse_selection("studies/sweep_demo.yaml", REPO) == Selection(sweep=SWEEP)
    write(tmp_path / "mine.yml", "name: s\nconfigs: [a.yaml]\nseeds: [0]\n")
    assert parse_selection("mine.yml", tmp_path) == Selection(sweep=tmp_path / "mine.yml")


def test_bare_report_spec_path_is_returned(tmp_path, monkeypatch):
    """A YAML without configs: is a report spec: its path comes back, relative to the cwd
    when no root is given."""
    write(tmp_path / "r.yaml", "name: r\nselect: study:x\n")
    assert parse_selection("r.yaml", tmp_path) == tmp_path / "r.yaml"
    monkeypatch.chdir(tmp_path)
    assert parse_selection("r.yaml") == tmp_path / "r.yaml"


# --- parse_selection: errors ------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_select(text):
    with pytest.raises(CalibexpError, match="select is empty"):
        parse_selection(text, REPO)


def test_unknown_kind_names_the_kinds_and_the_closest():
    with pytest.raises(
        CalibexpError,
        match=r"kind one of sweep, study, experiment, filter \(did you mean 'experiment'\?\)",
    ):
        parse_selection("experiments:a", REPO)
    with pytest.raises(CalibexpError, match=r"did you mean 'sweep'\?"):
        parse_selection("sweeep:studies/sweep_demo.yaml", REPO)


def test_part_without_kind():
    with pytest.raises(CalibexpError, match=r"select part 'calibexp-demo': expected <kind>"):
        parse_selection("calibexp-demo", REPO)


def test_kind_without_value():
    with pytest.raises(CalibexpError, match="study: needs a value"):
        parse_selection("study:", REPO)


def test_kind_given_twice():
    with pytest.raises(CalibexpError, match="select names study: twice"):
        parse_selection("study:a; study:b", REPO)


def test_sweep_and_study_together():
    with pytest.raises(CalibexpError, match="a sweep or a study, not both"):
        parse_selection("sweep:studies/sweep_demo.yaml; study:a", REPO)


def test_missing_sweep_file(tmp_path):
    with pytest.raises(CalibexpError, match="sweep spec not found: .*nope.yaml"):
        parse_selection("sweep:nope.yaml", tmp_path)


def test_missing_bare_spec_file(tmp_path):
    with pytest.raises(CalibexpError, match="report or sweep spec not found"):
        parse_selection("nope.yaml", tmp_path)


# --- load_report_spec -------------------------------------------------------------------------

FULL = """\
name: my-report
select: experiment:a,b; filter:params.`loss.name` = 'focal'
group_by: [dataset, model, loss.gamma]
compare_within: [dataset]
columns: [error, "test/nll:max"]
published: false
alpha: 0.1
figures: {epochs: [9, 0, 9, 4], metrics: [val/nll]}
"""


def test_every_key_is_read(tmp_path):
    """Each key of the file lands in the spec; epochs sorted and deduplicated."""
    path = write(tmp_path / "full.yaml", FULL)
    assert load_report_spec(path, tmp_path) == ReportSpec(
        name="my-report",
        selection=Selection(experiments=("a", "b"), filter="params.`loss.name` = 'focal'"),
        group_by=("dataset", "model", "loss.gamma"),
        compare_within=("dataset",),
        columns=("error", "test/nll:max"),
        published=False,
        alpha=0.1,
        figure_epochs=(0, 4, 9),
        figure_metrics=("val/nll",),
    )
    assert load_report_spec(path, tmp_path).spec_file == path


def test_defaults_and_a_sweep_relative_to_root(tmp_path):
    """Only select given: the name is the file's stem, the rest the defaults."""
    path = write(tmp_path / "minimal.yaml", "select: sweep:studies/sweep_demo.yaml\n")
    spec = load_report_spec(path, REPO)
    assert spec == ReportSpec(name="minimal", selection=Selection(sweep=SWEEP))
    assert spec.group_by == DEFAULT_GROUP_BY == ("dataset", "model", "loss", "protocol")
    assert spec.compare_within == DEFAULT_COMPARE_WITHIN == ("dataset", "model")
    assert spec.figure_metrics == DEFAULT_FIGURE_METRICS == ("val/ece_15", "val/nll")
    assert (spec.columns, spec.published, spec.alpha, spec.figure_epochs) == ((), True, 0.05, ())


def test_the_repository_report_demo(tmp_path):
    """studies/report_demo.yaml reads as the demo sweep with the default settings."""
    spec = load_report_spec(REPO / "studies" / "report_demo.yaml", REPO)
    assert spec == ReportSpec(name="report-demo", selection=Selection(sweep=SWEEP))


BAD_SPECS = [
    ("select: study:x\ngrup_by: [dataset]\n",
     r"unknown key 'grup_by' \(did you mean 'group_by'\?\)"),
    ("name: r\n", "'select' is required"),
    *((f"select: study:x\nalpha: {alpha}\n", r"'alpha' .*expected a number in \(0, 1\)")
      for alpha in ("0", "1", "1.5", "-0.1", "'0.05'", "true")),
    *((f"select: study:x\nfigures: {{epochs: {epochs}}}\n",
       "figures.epochs .*expected 0-based epoch numbers")
      for epochs in ("[-1]", "[1.5]", "5", "[true]", "['3']")),
    ("select: study:x\nfigures: {epoch: [1]}\n", "figures .*expected keys"),
    ("select: study:x\ngroup_by: [dataset, loss]\ncompare_within: [dataset, model]\n",
     r"compare_within \['model'\] not in group_by"),
    ("select: study:x\ngroup_by: [dataset, seed]\n", "group_by names seed"),
    ("select: study:x\ngroup_by: [dataset, dataset]\n", "names a key twice"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD_SPECS)
def test_a_bad_report_spec_is_one_clear_error(tmp_path, text, message):
    path = write(tmp_path / "r.yaml", text)
    with pytest.raises(CalibexpError, match=message) as err:
        load_report_spec(path, tmp_path)
    assert "\n" not in str(err.value)


def test_select_naming_another_report_spec(tmp_path):
    write(tmp_path / "other.yaml", "select: study:x\n")
    path = write(tmp_path / "r.yaml", "select: other.yaml\n")
    with pytest.raises(CalibexpError, match="select names another report spec"):
        load_report_spec(path, tmp_path)


# --- report_spec: command-line settings -------------------------------------------------------


def test_command_line_overrides_the_spec_file(tmp_path):
    """Each non-empty setting replaces the file's; alpha and figures stay the file's."""
    path = write(tmp_path / "full.yaml", FULL)
    spec = report_spec(
        str(path),
        name="cli-name",
        group_by="dataset,loss protocol",
        columns="test/nll, test/ece_15",
        compare_within="dataset loss",
        published="True",
        root=tmp_path,
    )
    assert spec.name == "cli-name"
    assert spec.group_by == ("dataset", "loss", "protocol")
    assert spec.columns == ("test/nll", "test/ece_15")
    assert spec.compare_within == ("dataset", "loss")
    assert spec.published is True
    assert (spec.alpha, spec.figure_epochs, spec.figure_metrics) == (0.1, (0, 4, 9), ("val/nll",))


def test_empty_command_line_settings_keep_the_file(tmp_path):
    path = write(tmp_path / "full.yaml", FULL)
    assert report_spec(str(path), root=tmp_path) == load_report_spec(path, tmp_path)


def test_relative_spec_path_from_the_cwd(tmp_path, monkeypatch):
    write(tmp_path / "full.yaml", FULL)
    monkeypatch.chdir(tmp_path)
    assert report_spec("full.yaml", columns="default").columns == ()


def test_default_names_without_a_spec_file():
    assert report_spec("study:fl", root=REPO).name == "report-fl"
    assert report_spec("experiment:a,b", root=REPO).name == "report-a+b"
    assert report_spec("sweep:studies/sweep_demo.yaml", root=REPO).name == "report-sweep_demo"
    assert report_spec("filter:tags.x = 'y'", root=REPO).name == "report"
    assert report_spec("study:fl", name="mine", root=REPO).name == "mine"


def test_group_by_override_trims_compare_within():
    """A group_by given alone keeps the blocks' keys it still names (model dropped here)."""
    spec = report_spec("study:fl", group_by="dataset loss", root=REPO)
    assert (spec.group_by, spec.compare_within) == (("dataset", "loss"), ("dataset",))


def test_command_line_checks():
    """Overrides are checked like the file: compare_within inside group_by, no seed."""
    with pytest.raises(CalibexpError, match=r"compare_within \['model'\] not in group_by"):
        report_spec("study:fl", group_by="dataset loss", compare_within="dataset model", root=REPO)
    with pytest.raises(CalibexpError, match="group_by names seed"):
        report_spec("study:fl", group_by="dataset model seed", root=REPO)
    with pytest.raises(CalibexpError, match="'published' 'yes', expected true or false"):
        report_spec("study:fl", published="yes", root=REPO)
