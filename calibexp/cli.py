"""What every entry point shares: one-line errors, exit codes, SIGTERM handled like Ctrl-C.

Exit codes: 0 done (also: nothing to do, the config was trained or is held by a live worker);
2 bad input (a ``CalibexpError``: one line, no traceback); 3 this worker's run was taken over
by another worker while it was paused (it stopped writing; the run goes on elsewhere); 130
interrupted (SIGINT or SIGTERM; the run is marked KILLED and its last checkpoint kept).
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from mlflow.exceptions import MlflowException

from calibexp.errors import CalibexpError, LeaseLost


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def add_flag(parser: Any, name: str, help: str) -> None:
    """A true/false option as MLflow passes it (``--force true``; MLproject parameters are
    strings), also usable bare (``--force``). Read it as ``args.<name> == "true"``."""
    parser.add_argument(
        name, default="false", nargs="?", const="true", choices=("true", "false"), help=help
    )


def split_overrides(text: str, extra: list[str]) -> list[str]:
    """``-P overrides="a=1 b=2"`` arrives as one string; extra CLI words are overrides too."""
    return [*shlex.split(text or ""), *extra]


def main_guard(body: Callable[[], object]) -> NoReturn:
    signal.signal(signal.SIGTERM, _terminate)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per checkpoint
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        body()
    except CalibexpError as err:
        print(f"calibexp: error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    except MlflowException as err:  # the store refused (a permission, a bad value): one line
        text = str(err).strip().splitlines()
        print(
            f"calibexp: error: the MLflow store refused: {text[0][:300] if text else err!r}",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(2)
    except LeaseLost as err:
        print(f"calibexp: {err}", file=sys.stderr, flush=True)
        sys.exit(3)
    except KeyboardInterrupt:
        print(
            "calibexp: interrupted; the run is marked KILLED, its last checkpoint is kept "
            "(continue it with -P resume=<run id>)",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(130)
    sys.exit(0)
