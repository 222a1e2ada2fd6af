"""One way in for every YAML file calibexp reads: run configs, the paper matrix, study specs and
sweep specs. Each problem is one line naming the file, the line and what would be right;
PyYAML's own messages run to seven lines with a caret drawing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from calibexp.errors import CalibexpError
from calibexp.registry import closest


def read_yaml_mapping(path: str | Path, what: str, example: str) -> tuple[dict[str, Any], str]:
    """The mapping in ``path`` and the file's text (for a digest). ``what`` names the kind of
    file in messages ("config", "study spec"); ``example`` is a path that would work."""
    path = Path(path)
    if not path.is_file():
        raise CalibexpError(f"{what} not found: {path}; pass an existing file such as {example}")
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise CalibexpError(f"{what} {path}{line}: not valid YAML ({problem})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CalibexpError(
            f"{what} {path}: expected a YAML mapping of keys, got a {type(data).__name__}"
        )
    return data, text


def require_known_keys(raw: dict[str, Any], valid: tuple[str, ...], where: str) -> None:
    """Refuse the first key of ``raw`` not in ``valid``, naming the closest valid one."""
    for key in raw:
        if key not in valid:
            raise CalibexpError(
                f"{where}: unknown key '{key}'{closest(str(key), valid)}; valid: {', '.join(valid)}"
            )
