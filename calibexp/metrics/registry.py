"""The metric registry: ``metric(predictions, **params) -> 0-d tensor``.

A metric with an estimator setting carries it in its logged name (``ece`` with bins=15 is
logged as ``ece_15``); see ``calibexp.metrics.suite``.
"""

from calibexp.registry import Registry

METRICS = Registry("metric")
