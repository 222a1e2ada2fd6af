"""A small CNN for the embedded digits demo and for fast tests."""

from __future__ import annotations

from torch import nn

from calibexp.errors import require
from calibexp.models.registry import BACKBONES


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


@BACKBONES.register("small_cnn")
def small_cnn(num_classes: int, in_channels: int, *, width: int = 32) -> nn.Module:
    """Three 3x3 conv-BN-ReLU blocks (width, 2·width, 4·width; max-pool after the second),
    global average pooling, one linear layer. Any input size >= 2x2."""
    require(width >= 1, "model.width", width, "an integer >= 1")
    return nn.Sequential(
        *_conv_bn_relu(in_channels, width),
        *_conv_bn_relu(width, 2 * width),
        nn.MaxPool2d(2),
        *_conv_bn_relu(2 * width, 4 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, num_classes),
    )
