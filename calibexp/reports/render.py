"""The table as Markdown, LaTeX (booktabs, through pandas' ``Styler.to_latex``) and CSV, plus the
companion ``runs.csv`` (every listed run: group, seed, run id, git commit, counted or why not).

Everything is sorted and carries no time stamp: the same runs give byte-identical files.
"""

from __future__ import annotations

import io
import math

import pandas as pd

from calibexp.reports.columns import Column
from calibexp.reports.published import SOURCE, Published
from calibexp.reports.selection import TAG
from calibexp.reports.table import Entry, Group, Table

UNTESTED = "†"  # not tested against the best: other seeds, or fewer than 2
CONFIDENCE_MARKS = {"paper": "", "third-party": "*", "unverified": "?"}
PUBLISHED_COLUMNS = {"error": "error", "ece": "ece", "ece_ts": "ece_ts"}
GIT_TAG = "mlflow.source.git.commit"


def number(value: float, percent: bool) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{2 if percent else 3}f}"


def cell_parts(entry: Entry, column: Column, runs: int) -> tuple[str, str, str]:
    """(mean, std, suffix) as shown: units of the header, T in parentheses, † if untested, and
    the entry's n where it is not the row's ``runs``."""
    mean = number(column.shown(entry.mean), column.percent) if entry.n else "–"
    std = number(column.shown(entry.std), column.percent) if entry.n else ""
    suffix = f" ({entry.temperature:.2f})" if entry.temperature is not None and entry.n else ""
    if entry.n and column.better and not entry.verdict.best and not entry.verdict.tested:
        suffix += f" {UNTESTED}"
    if entry.n and entry.n != runs:  # a seed logged no value: the entry's own n
        suffix += f" (n={entry.n})"
    return mean, std, suffix


def published_of(column: Column, bins_15: bool) -> str | None:
    """Which published number matches ``column`` (ECE only at 15 bins, as published)."""
    if column.key == "error":
        return "error"
    if bins_15 and column.key == "test/ece_15":
        return "ece"
    if bins_15 and column.key == "test_ts_grid/ece_15":
        return "ece_ts"
    return None


def published_columns(table: Table) -> list[tuple[Column, str]]:
    if not any(g.published for g in table.groups):
        return []
    return [(c, p) for c in table.columns if (p := published_of(c, True))]


def published_cells(group: Group, column: Column, which: str) -> tuple[str, str]:
    """(published value with its mark, ours − published) for one group, or blanks."""
    found: Published | None = group.published
    value = getattr(found, which) if found else None
    if found is None or value is None:
        return "", ""
    mark = CONFIDENCE_MARKS[found.confidence_of(which)]
    shown = f"{value:.2f}" + (f" ({found.temperature:.1f})" if which == "ece_ts" else "") + mark
    entry = group.entries[column.key]
    delta = column.shown(entry.mean) - value if entry.n else math.nan
    return shown, ("–" if math.isnan(delta) else f"{delta:+.2f}")


def header(table: Table) -> list[str]:
    names = [*table.spec.group_by, *(c.label for c in table.columns), "n"]
    for column, _ in published_columns(table):
        names += [f"published {column.label}", f"Δ {column.label.removesuffix(' (T)')}"]
    return names


def rows(table: Table, bold: callable, pm: str) -> list[list[str]]:  # type: ignore[valid-type]
    out = []
    for group in table.groups:
        row = [*(v or "–" for v in group.key)]
        for column in table.columns:
            entry = group.entries[column.key]
            mean, std, suffix = cell_parts(entry, column, len(group.runs))
            spread = f"{pm}{std}" if entry.n > 1 else ""  # no std of one seed
            text = f"{mean}{spread}{suffix}" if entry.n else "–"
            row.append(bold(text) if entry.verdict.bold else text)
        row.append(str(len(group.runs)))
        for column, which in published_columns(table):
            row += list(published_cells(group, column, which))
        out.append(row)
    return out


def notes(table: Table) -> list[str]:
    spec = table.spec
    within = ", ".join(spec.compare_within) or "the whole table"
    lines = [
        "Mean ± sample standard deviation (ddof = 1; none for n = 1) over the n seeds of each row; "
        "% columns are 100 × the logged fractions, NLL in nats; (T) is the mean temperature "
        "of that calibrator.",
        f"Bold: the best mean within each block of equal {within}, and every entry of the "
        "block that a two-sided paired t-test over matched seeds cannot separate from it "
        f"(Holm-corrected over the block's comparisons, α = {spec.alpha:g}). {UNTESTED}: not "
        "tested, its seeds differ from the best's or n < 2.",
    ]
    if published_columns(table):
        lines.append(
            f"Published: {SOURCE}, ECE-15 after torrvision's grid temperature (T); Δ = ours − "
            "published. * checked by a third party against arXiv v2; ? not verified."
        )
    for group in table.groups:
        lines += [f"{group.label()}: {flag}" for flag in group.flags]
    lines += table.notes
    counted = table.runs[table.runs["counted"]]
    commits = counted.get(TAG + GIT_TAG, pd.Series(dtype=object)).fillna("unknown")
    tally = ", ".join(f"{c[:12]} ({n})" for c, n in sorted(commits.value_counts().items()))
    lines.append(f"Runs: {len(counted)} counted of {len(table.runs)} listed (runs.csv); "
                 f"git commits: {tally or 'none recorded'}.")  # fmt: skip
    return lines


def markdown(table: Table) -> str:
    head = [_cell(h) for h in header(table)]
    body = [[_cell(c) for c in row] for row in rows(table, lambda t: f"**{t}**", " ± ")]
    widths = [max(len(r[i]) for r in (head, *body)) for i in range(len(head))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    lines = [f"# {table.spec.name}", "", line(head),
             "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body), ""]  # fmt: skip
    lines += [f"- {note}" for note in notes(table)]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """A Markdown table cell: a ``|`` inside a value (a config value, a filter) escaped."""
    return text.replace("|", "\\|")


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                 "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                 "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$", "α": r"$\alpha$",
                 "†": r"$^\dagger$", "×": r"$\times$", "−": "-", "–": "--",
                 "≥": r"$\geq$", "<": r"$<$", ">": r"$>$"}  # fmt: skip


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def latex(table: Table) -> str:
    """A ``table`` environment with a booktabs ``tabular`` scaled to the line width (needs
    ``\\usepackage{booktabs}`` and ``\\usepackage{graphicx}``), the
    bold entries in ``\\bfseries``, and the notes beneath."""
    marker = "\x00"
    head = [latex_escape(h) for h in header(table)]
    marked = rows(table, lambda t: marker + t, " ± ")
    body = [[latex_escape(c.removeprefix(marker)) for c in row] for row in marked]
    bold = [[c.startswith(marker) for c in row] for row in marked]
    frame = pd.DataFrame(body, columns=pd.Index(head))
    styles = pd.DataFrame([["font-weight: bold" if b else "" for b in row] for row in bold],
                          columns=frame.columns)  # fmt: skip
    styler = frame.style.hide(axis="index").apply(lambda _: styles, axis=None)
    tabular = styler.to_latex(
        hrules=True, convert_css=True, column_format="l" * len(table.spec.group_by)
        + "r" * (len(head) - len(table.spec.group_by)),
    )  # fmt: skip
    caption = latex_escape(f"{table.spec.name}: mean ± std over seeds.")
    # Notes as paragraphs: an itemize bullet at \scriptsize needs a TS1 font that a bare TeX
    # install generates with METAFONT on first use.
    foot = "\n\n".join(latex_escape(n) for n in notes(table))
    return (
        "% calibexp report; needs \\usepackage{booktabs} and \\usepackage{graphicx}\n"
        "\\begin{table}[t]\n\\centering\n\\footnotesize\n"
        f"\\caption{{{caption}}}\n\\resizebox{{\\linewidth}}{{!}}{{%\n{tabular}}}\n"
        f"\\par\\smallskip{{\\scriptsize\\raggedright\n{foot}\\par}}\n\\end{{table}}\n"
    )


def stats_csv(table: Table) -> str:
    """One row per group and column: the logged-unit mean, std (ddof = 1) and n, the verdict
    and the published value (shown units) where there is one."""
    records = []
    published = dict((c.key, w) for c, w in published_columns(table))
    for group in table.groups:
        for column in table.columns:
            entry = group.entries[column.key]
            which = published.get(column.key)
            pub = getattr(group.published, which) if group.published and which else None
            records.append({
                **dict(zip(table.spec.group_by, group.key)),
                "column": column.key, "label": column.label, "percent": column.percent,
                "n": entry.n, "mean": entry.mean, "std": entry.std,
                "seeds": " ".join(map(str, sorted(entry.values))),
                "temperature": entry.temperature, "best": entry.verdict.best,
                "bold": entry.verdict.bold, "tested": entry.verdict.tested,
                "p_holm": entry.verdict.p_adjusted, "published": pub,
                "flags": "; ".join(group.flags),
            })  # fmt: skip
    buffer = io.StringIO()
    pd.DataFrame(records).to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def runs_csv(table: Table) -> str:
    frame = table.runs
    out = pd.DataFrame({
        **{name: [g[i] for g in frame["group"]] for i, name in enumerate(table.spec.group_by)},
        "seed": frame["seed"], "run_id": frame["run_id"],
        "run_name": frame.get(TAG + "mlflow.runName"), "experiment_id": frame["experiment_id"],
        "status": frame["status"], "counted": frame["counted"], "why_not": frame["why"],
        "git_commit": frame.get(TAG + GIT_TAG),
    })  # fmt: skip
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()
