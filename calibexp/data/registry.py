"""The dataset registry: ``builder(**hyper-parameters) -> DataBundle``; each registered with
the ``robustness`` sets (``calibexp.data.shifted``) a run on it is evaluated on by default."""

from calibexp.registry import Registry

DATASETS = Registry("dataset")
