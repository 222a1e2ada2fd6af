"""The one exception type a user ever sees.

Entry points print ``calibexp: error: <message>`` for it and exit non-zero without a traceback;
anything else that escapes is a bug in calibexp and keeps its traceback.
"""


class CalibexpError(Exception):
    """A problem with the user's input or environment, stated in one line: what was wrong and
    what would be right."""


def require(ok: bool, key: str, value: object, expected: str) -> None:
    """Raise ``config key '<key>': got <value>, expected <expected>`` unless ``ok``."""
    if not ok:
        raise CalibexpError(f"config key '{key}': got {value!r}, expected {expected}")


class EarlyStop(Exception):
    """Training stopped on purpose before its last epoch (a study pruned the trial); the run ends
    FINISHED with this message as its reason, everything trained so far recorded."""


class LeaseLost(Exception):
    """This worker's hold on a run was taken over by another worker (it was paused or cut off
    past its lease). It must not write to the run again: the run is not ended by it either."""
