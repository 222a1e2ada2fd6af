"""The paper matrix: ``configs/<dataset>/<model>/<loss>.yaml`` for every dataset x backbone x
loss of the calibration papers, composed from one table (``configs/matrix.yaml``) instead of a
hundred near-identical files.

A cell is the dataset's ``_base_`` pieces (data, schedule), the model's and the loss's, the
protocol the loss's published numbers were trained with (``calibexp.protocols``) with what that
protocol's reference did differently on the dataset, the loss's per-dataset values and the
experiment name; a file at the cell's path, where there is
one, is merged on top (it holds only values of its own, such as dual focal's per-setting γ).
Aliases keep the names other repositories use (``wd_ce``, ``label_smooth``, ``safcl_nostop``).

    python -m calibexp.matrix            # every cell path, one per line
"""

from __future__ import annotations

import fnmatch
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from calibexp.errors import CalibexpError
from calibexp.registry import closest
from calibexp.yaml_files import read_yaml_mapping

MATRIX_FILE = "matrix.yaml"


@dataclass(frozen=True)
class Matrix:
    folder: Path  # the configs folder the table lives in
    table: dict[str, Any]

    @property
    def datasets(self) -> dict[str, Any]:
        return self.table["datasets"]

    @property
    def losses(self) -> dict[str, Any]:
        return self.table["losses"]

    @property
    def aliases(self) -> dict[str, str]:
        return self.table.get("aliases") or {}

    def cells(self, aliases: bool = True) -> list[Path]:
        """Every cell's path, dataset by dataset; ``aliases=False`` leaves out the cells that are
        another cell under a second name."""
        names = [*self.losses, *(self.aliases if aliases else ())]
        return [
            self.folder / dataset / model / f"{loss}.yaml"
            for dataset, entry in self.datasets.items()
            for model in entry["models"]
            for loss in names
        ]

    def compose(self, dataset: str, model: str, loss: str) -> dict[str, Any]:
        """The cell as a config mapping with ``_base_`` paths relative to the cell's folder."""
        where = f"{self.folder / MATRIX_FILE}: no cell {dataset}/{model}/{loss}"
        if dataset not in self.datasets:
            raise CalibexpError(
                f"{where}: dataset '{dataset}'{closest(dataset, self.datasets)}; "
                f"datasets: {', '.join(self.datasets)}"
            )
        entry = self.datasets[dataset]
        if model not in entry["models"]:
            raise CalibexpError(
                f"{where}: model '{model}'{closest(model, entry['models'])}; "
                f"{dataset} models: {', '.join(entry['models'])}"
            )
        loss = self.aliases.get(loss, loss)
        if loss not in self.losses:
            names = [*self.losses, *self.aliases]
            raise CalibexpError(
                f"{where}: loss '{loss}'{closest(loss, names)}; losses: {', '.join(names)}"
            )
        spec = self.losses[loss] or {}
        up = "../../"  # from <configs>/<dataset>/<model>/ back to <configs>/
        bases = [
            *entry["bases"],
            self.table["models"].format(model=model),
            self.table["losses_base"].format(loss=loss),
        ]
        cell: dict[str, Any] = {"_base_": [up + base for base in bases]}
        # The protocol the loss's published numbers were trained with, on the papers' datasets
        # (a dataset may fix one for every loss: the digits demo keeps calibexp's own), then
        # what that protocol's reference did differently on this dataset.
        protocol = entry.get("protocol") or spec.get("protocol")
        layers = []
        if protocol:
            cell["protocol"] = protocol
            layers.append((entry.get("protocol_set") or {}).get(protocol) or {})
        if dataset in spec.get("set_on", self.datasets):
            layers.append(spec.get("set") or {})
        cell.update(OmegaConf.to_container(OmegaConf.merge({}, *layers)))
        experiment = entry.get("experiment") or self.table["experiment"]
        cell["tracking"] = {"experiment": experiment.format(dataset=dataset, model=model)}
        return cell


@functools.cache
def _matrix_in(folder: Path) -> Matrix | None:
    table_path = folder / MATRIX_FILE
    if not table_path.is_file():
        return None
    table, _ = read_yaml_mapping(table_path, "paper matrix", "configs/matrix.yaml")
    return Matrix(folder, table)


def cell_of(path: Path) -> dict[str, Any] | None:
    """The composed cell ``path`` names (``<configs>/<dataset>/<model>/<loss>.yaml`` with the
    table in ``<configs>/``), or None when it names none. A path that is no file and sits under
    a table must be a cell: what it gets wrong is named, with the nearest valid name."""
    path = path.resolve()
    if path.suffix != ".yaml" or len(path.parents) < 4:
        return None
    matrix = _matrix_in(path.parents[2])
    dataset = path.parents[1].name
    if matrix is None or (dataset not in matrix.datasets and path.is_file()):
        return None
    return matrix.compose(dataset, path.parent.name, path.stem)


def matching_cells(pattern: str | Path) -> list[Path]:
    """Cells whose path matches a glob (``configs/cifar10/resnet50/*.yaml``), for sweeps. A
    wildcard matches each configuration once, not again under its alias; a path without
    wildcards matches itself, alias or not."""
    wildcard = any(char in str(pattern) for char in "*?[")
    pattern = Path(pattern)
    parts = pattern.parts
    if len(parts) < 4:
        return []
    matrix = _matrix_in(Path(*parts[:-3]).resolve())
    if matrix is None:
        return []
    return [
        Path(*parts[:-3], *cell.parts[-3:])
        for cell in matrix.cells(aliases=not wildcard)
        if fnmatch.fnmatchcase("/".join(cell.parts[-3:]), "/".join(parts[-3:]))
    ]


def main() -> None:
    matrix = _matrix_in(Path("configs").resolve())
    if matrix is None:
        raise SystemExit(f"no configs/{MATRIX_FILE} under {Path.cwd()}")
    for cell in matrix.cells():
        print(cell.relative_to(Path.cwd().resolve()))


if __name__ == "__main__":
    main()
