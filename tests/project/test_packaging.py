"""conda.yaml lists exactly pyproject's dependencies, so `mlflow run .` with conda gets the same
environment as `pip install -e .`."""

from __future__ import annotations

import tomllib

import yaml
from packaging.requirements import Requirement

from tests.support import ROOT


def normalised(requirements: list[str]) -> dict[str, str]:
    parsed = [Requirement(r) for r in requirements]
    return {r.name.lower().replace("_", "-"): str(r.specifier) for r in parsed}


def test_conda_pip_section_matches_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip_section = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert normalised(pip_section) == normalised(pyproject["project"]["dependencies"])
    assert "pip" in conda["dependencies"]
    python = next(d for d in conda["dependencies"] if isinstance(d, str) and d.startswith("python"))
    minimum = pyproject["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))


def test_mlflow_pin_admits_the_tested_range():
    deps = normalised(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    )
    spec = Requirement(f"mlflow{deps['mlflow']}").specifier
    assert "3.17.2" in spec and "3.14.0" in spec and "3.18.0" not in spec
