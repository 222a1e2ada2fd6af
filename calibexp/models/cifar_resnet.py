"""He et al.'s CIFAR ResNets (Deep Residual Learning, CVPR 2016, §4.2): neither timm nor
torchvision has them.

A 3x3 conv to 16 channels, then three stages of n basic blocks at 16, 32 and 64 channels
(stride 2 at the start of stages 2 and 3), global average pooling and a linear layer: depth
6n + 2. Shortcuts are option A, the paper's CIFAR choice: identity, with stride-2 subsampling and
zero-padded channels where the shape changes, so they add no parameters. Published sizes:
ResNet-20 0.27 M, -32 0.46 M, -44 0.66 M, -56 0.85 M, -110 1.7 M (tests/models/test_backbones.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from calibexp.models.registry import BACKBONES


class BasicBlock(nn.Module):
    """conv-BN-ReLU, conv-BN, + shortcut, ReLU. Where the shape changes the shortcut is option A
    (subsample and zero-pad channels; He et al. on CIFAR) or a 1x1 conv + BN (``conv_shortcut``,
    torrvision's WRN)."""

    def __init__(self, cin: int, cout: int, stride: int, conv_shortcut: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin
        changes = stride != 1 or cin != cout
        self.projection = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if conv_shortcut and changes
            else None
        )

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.projection is not None:
            return self.projection(x)
        if self.stride == 1 and self.extra == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int, in_channels: int) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        blocks, cin = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(n):
                blocks.append(BasicBlock(cin, width, 2 if stage > 0 and i == 0 else 1))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def _register(depth: int) -> None:
    def build(num_classes: int, in_channels: int) -> nn.Module:
        return CifarResNet(depth, num_classes, in_channels)

    build.__doc__ = f"He et al.'s CIFAR ResNet-{depth}: {(depth - 2) // 6} blocks per stage."
    BACKBONES.register(f"cifar_resnet{depth}")(build)


for _depth in (20, 32, 44, 56, 110):
    _register(_depth)
