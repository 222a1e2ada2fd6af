"""Docstrings and comments speak to a user of the package: they cite papers and public
repositories, never a document outside this repository, and never call the source projects "the
seeds"."""

from __future__ import annotations

import functools
import re
import subprocess

import pytest

from tests.support import ROOT

SOURCES = sorted(
    p for folder in ("calibexp", "entrypoints", "benchmarks") for p in (ROOT / folder).rglob("*.py")
)
DOCUMENT = re.compile(r"[\w./-]+\.md\b")
# Markdown files calibexp writes (a report's table), named where they are written: not citations.
WRITTEN = frozenset({"table.md", "report/table.md"})


@functools.cache  # one `git ls-files` for all the sources checked
def shipped_documents() -> frozenset[str]:
    listed = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return frozenset({*listed, *(path.rsplit("/", 1)[-1] for path in listed)})


def outside_citations(text: str, shipped: frozenset[str]) -> list[str]:
    cited = {m.group(0).removeprefix("./") for m in DOCUMENT.finditer(text)}
    return sorted(c for c in cited if "../" in c or c not in shipped | WRITTEN)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_source_cites_a_document_outside_the_repository(path):
    text = path.read_text()
    assert outside_citations(text, shipped_documents()) == []
    assert "the seeds" not in text.lower() and "seeds'" not in text.lower()


def test_the_check_finds_what_it_looks_for():
    shipped = shipped_documents()
    assert "README.md" in shipped and "studies/README.md" in shipped
    text = "(calibration.md §2; ../shared/design.md) and README.md"
    assert outside_citations(text, shipped) == ["../shared/design.md", "calibration.md"]
