"""Datasets: registration happens at import, one module per dataset family."""

from calibexp.data import (  # noqa: F401  (register the datasets)
    cifar,
    cifar_domains,
    digits,
    embedded_shift,
    rotated_digits,
    tiny_imagenet,
)
from calibexp.data.bundle import DataBundle, Split
from calibexp.data.loader import DeviceLoader
from calibexp.data.registry import DATASETS
from calibexp.data.shifted import SHIFTED

__all__ = ["DATASETS", "SHIFTED", "DataBundle", "DeviceLoader", "Split"]
