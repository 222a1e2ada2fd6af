"""The dataset registry: ``builder(**hyper-parameters) -> DataBundle``."""

from calibexp.registry import Registry

DATASETS = Registry("dataset")
