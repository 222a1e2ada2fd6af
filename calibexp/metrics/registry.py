"""The metric registry, ``metric(predictions, **params) -> 0-d tensor``, and the one function
that spells a metric's logged name.

Every metric is registered with ``binned=`` saying whether it has an estimator setting, the bin
count M: a binned metric carries M in its logged name (``ece`` at 15 bins is logged as
``ece_15``, at 10 bins as ``ece_10``), so two runs that estimate differently never share a
column. The suite, the end-of-run evaluation, the study-spec check and the tests all spell names
through ``logged_name``.
"""

from calibexp.registry import Registry

METRICS = Registry("metric")


def logged_name(name: str, bins: int) -> str:
    """``name`` as logged by a run that bins confidences into ``bins`` bins."""
    return f"{name}_{bins}" if METRICS.info(name)["binned"] else name


def metric_key(split: str, name: str, bins: int) -> str:
    """The MLflow metric key ``{split}/{logged name}`` (``val/ece_15``, ``test_ts/nll``)."""
    return f"{split}/{logged_name(name, bins)}"
