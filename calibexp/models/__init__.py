"""Backbones: registration happens at import, one module per family."""

from calibexp.models import small_cnn  # noqa: F401  (registers "small_cnn")
from calibexp.models.registry import BACKBONES

__all__ = ["BACKBONES"]
