"""Wide ResNets for CIFAR (Zagoruyko & Komodakis, BMVC 2016), which neither timm nor
torchvision has at CIFAR scale.

- ``wrn28_10``: the paper's network: a 3x3 conv to 16 channels, three stages of
  n = (depth − 4) / 6 pre-activation blocks (BN-ReLU-conv ×2, optional dropout between) at
  16k, 32k and 64k channels, 1x1 conv shortcuts where the shape changes; 36.5 M parameters.
- ``wrn26_10``: the focal-loss papers' WRN-26-10 (torrvision ``Net/wide_resnet.py``):
  post-activation basic blocks (conv-BN-ReLU), n = (depth − 2) / 6 = 4 per stage, 1x1 conv + BN
  shortcuts, no dropout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from calibexp.errors import require
from calibexp.models.cifar_resnet import BasicBlock
from calibexp.models.registry import BACKBONES


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = (
            None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        out = F.dropout(F.relu(self.bn2(out)), self.dropout, self.training)
        out = self.conv2(out)
        return out + (x if self.shortcut is None else self.shortcut(pre))


def _stages(block, n: int, widen: int, **kwargs) -> tuple[nn.Sequential, int]:
    layers, cin = [], 16
    for stage, base in enumerate((16, 32, 64)):
        for i in range(n):
            layers.append(block(cin, base * widen, 2 if stage > 0 and i == 0 else 1, **kwargs))
            cin = base * widen
    return nn.Sequential(*layers), cin


def _head(width: int, num_classes: int, preact: bool) -> nn.Sequential:
    norm = [nn.BatchNorm2d(width), nn.ReLU()] if preact else []
    return nn.Sequential(
        *norm, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes)
    )


@BACKBONES.register("wrn28_10")
def wrn28_10(
    num_classes: int, in_channels: int, *, depth: int = 28, widen: int = 10, dropout: float = 0.0
) -> nn.Module:
    """Zagoruyko & Komodakis' WRN-d-k (pre-activation, depth 6n + 4); WRN-28-10 by default."""
    require(
        (depth - 4) % 6 == 0 and depth >= 10, "model.depth", depth, "6n + 4 (10, 16, 22, 28, …)"
    )
    require(widen >= 1, "model.widen", widen, "an integer >= 1")
    require(0 <= dropout < 1, "model.dropout", dropout, "a probability in [0, 1)")
    blocks, width = _stages(PreActBlock, (depth - 4) // 6, widen, dropout=dropout)
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), blocks, _head(width, num_classes, True)
    )


@BACKBONES.register("wrn26_10")
def wrn26_10(num_classes: int, in_channels: int, *, depth: int = 26, widen: int = 10) -> nn.Module:
    """torrvision's WRN (post-activation, depth 6n + 2, no dropout); WRN-26-10 by default."""
    require((depth - 2) % 6 == 0 and depth >= 8, "model.depth", depth, "6n + 2 (8, 14, 20, 26, …)")
    require(widen >= 1, "model.widen", widen, "an integer >= 1")
    blocks, width = _stages(BasicBlock, (depth - 2) // 6, widen, conv_shortcut=True)
    stem = nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
    )
    return nn.Sequential(stem, blocks, _head(width, num_classes, False))
