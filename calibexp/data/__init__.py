"""Datasets: registration happens at import, one module per dataset family."""

from calibexp.data import digits  # noqa: F401  (registers "digits")
from calibexp.data.bundle import DataBundle, Split
from calibexp.data.loader import DeviceLoader
from calibexp.data.registry import DATASETS

__all__ = ["DATASETS", "DataBundle", "DeviceLoader", "Split"]
