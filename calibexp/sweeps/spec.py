"""Sweep specs (``studies/sweep_*.yaml``): a grid of run configs, validated in full before
anything trains.

    name: sweep-demo
    configs: [configs/digits/small_cnn/ce.yaml, configs/digits/small_cnn/focal.yaml]
    # paths or globs, relative to the repository; a glob also matches the paper matrix's
    # cells (configs/cifar10/resnet50/*.yaml: every loss on that backbone)
    seeds: [0, 1, 2]                   # every config once per seed (seed=N)
    overrides: [train.epochs=3]        # applied to every cell
    axes:                              # more grid dimensions: dotted key -> values
      optim.lr: [0.05, 0.1]

The grid is configs x seeds x the product of the axes; each cell is one config, trained exactly
once by whichever worker the registry gives it to (``calibexp.sweeps.worker``).
"""

from __future__ import annotations

import glob
import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibexp.config import ExperimentConfig, load_config, override
from calibexp.errors import CalibexpError
from calibexp.matrix import matching_cells
from calibexp.yaml_files import read_yaml_mapping, require_known_keys

TOP_KEYS = ("name", "configs", "seeds", "overrides", "axes")


@dataclass(frozen=True)
class Cell:
    """One config of the grid."""

    label: str  # what the table shows: config path, seed and axis values
    config: Path
    overrides: tuple[str, ...]
    cfg: ExperimentConfig


@dataclass(frozen=True)
class SweepSpec:
    name: str
    cells: tuple[Cell, ...]
    digest: str  # of the spec file's content


def load_sweep(path: str | Path, root: Path | None = None) -> SweepSpec:
    path, root = Path(path), (root or Path.cwd())
    where = f"sweep spec {path}"
    raw, text = read_yaml_mapping(path, "sweep spec", "studies/sweep_demo.yaml")
    require_known_keys(raw, TOP_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise CalibexpError(f"{where}: 'name' is required (a string)")
    configs = _configs(raw.get("configs"), root, where)
    seeds = raw.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise CalibexpError(f"{where}: seeds {seeds!r}, expected a non-empty list of distinct ints")
    overrides = raw.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise CalibexpError(f"{where}: overrides {overrides!r}, expected a list of key=value")
    axes = raw.get("axes") or {}
    if not isinstance(axes, dict) or not all(
        isinstance(v, list) and v and len(set(map(repr, v))) == len(v) for v in axes.values()
    ):
        raise CalibexpError(
            f"{where}: axes {axes!r}, expected dotted keys mapped to non-empty lists of "
            "distinct values (e.g. optim.lr: [0.05, 0.1])"
        )
    cells = []
    for config in configs:
        for seed in seeds:
            for values in itertools.product(*axes.values()):
                chosen = dict(zip(axes, values))
                extra = [f"seed={seed}", *(override(k, v) for k, v in chosen.items())]
                label = " ".join([_relative(config, root), *extra])
                try:
                    cfg = load_config(config, [*overrides, *extra])
                except CalibexpError as err:
                    raise CalibexpError(f"{where}: cell '{label}': {err}") from None
                cells.append(Cell(label, config, (*overrides, *extra), cfg))
    return SweepSpec(name, tuple(cells), hashlib.sha256(text.encode()).hexdigest()[:16])


def _configs(value: Any, root: Path, where: str) -> list[Path]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise CalibexpError(f"{where}: 'configs' is required: run config paths or globs")
    found: list[Path] = []
    for pattern in value:
        files = [Path(p) for p in glob.glob(str(root / str(pattern)))]
        cells = matching_cells(root / str(pattern))  # the paper matrix's cells are paths too
        matches = sorted({*files, *cells})
        if not matches:
            raise CalibexpError(
                f"{where}: configs entry '{pattern}' matches no file or paper-matrix cell under "
                f"{root}"
            )
        found += [m for m in matches if m not in found]
    return found


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
