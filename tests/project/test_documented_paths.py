"""Every config path a user reads (in the README, the study and sweep specs, the MLproject
defaults) loads, and every study and sweep spec the README names is shipped."""

from __future__ import annotations

import glob
import re

import pytest
import yaml

from calibexp.config import load_config
from calibexp.matrix import matching_cells
from tests.support import ROOT

PATH = re.compile(r"configs/[\w/*.{},-]+\.yaml")


def documented() -> list[str]:
    texts = [(ROOT / "README.md").read_text(), (ROOT / "MLproject").read_text()]
    texts += [p.read_text() for p in sorted((ROOT / "studies").glob("*"))]
    found = {m.group(0) for text in texts for m in PATH.finditer(text)}
    # {a,b} shell patterns are checked word by word below; my_loss is the README's example of a
    # component to add; matrix.yaml is the table, not a run config
    return sorted(
        p for p in found if "{" not in p and "my_" not in p and p != "configs/matrix.yaml"
    )


def expand(pattern: str) -> list[str]:
    files = glob.glob(str(ROOT / pattern))
    cells = [str(p) for p in matching_cells(ROOT / pattern)]
    return sorted({*files, *cells})


def test_the_readme_names_paths():
    assert len(documented()) >= 20


@pytest.mark.parametrize("pattern", documented())
def test_every_documented_config_path_loads(pattern):
    paths = expand(pattern)
    assert paths, f"{pattern} names no file and no cell of configs/matrix.yaml"
    for path in paths:  # a _base_ piece is documented to compose with a run config
        load_config([ROOT / "configs/demo.yaml", path] if "_base_" in path else path)


def test_the_readme_brace_patterns_expand_to_cells():
    text = (ROOT / "README.md").read_text()
    for match in re.finditer(r"configs/\{([\w,]+)\}/\{([\w,]+)\}/<name>\.yaml", text):
        for dataset in match.group(1).split(","):
            for model in match.group(2).split(","):
                assert expand(f"configs/{dataset}/{model}/*.yaml"), (dataset, model)


def test_every_spec_base_and_sweep_config_loads():
    for spec in sorted((ROOT / "studies").glob("*.yaml")):
        raw = yaml.safe_load(spec.read_text())
        for entry in raw.get("configs", []) + raw.get("base", "").split():
            assert expand(entry), (spec.name, entry)
