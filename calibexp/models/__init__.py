"""Backbones: registration happens at import, one module per family."""

from calibexp.models import cifar_resnet, library_nets, small_cnn, wide_resnet  # noqa: F401
from calibexp.models.registry import BACKBONES

__all__ = ["BACKBONES"]
