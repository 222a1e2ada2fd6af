"""Backbones from torchvision and timm, with the CIFAR stem the references use.

``cifar_stem: true`` (the default for the torchvision families, which are ImageNet networks)
replaces the 7x7 stride-2 first conv by a 3x3 stride-1 one with the same width and removes the
first max-pool (DenseNet: ``conv0`` and ``pool0``), so 32x32 and 64x64 inputs are not shrunk 4x
before the first block (the stem of kuangliu/pytorch-cifar, torrvision/focal_calibration and
the SA-FCL repository).

- torchvision: ``resnet18/34/50/101/152``, ``resnet110`` (the focal-loss papers' "ResNet-110":
  ImageNet-width Bottleneck blocks [3, 4, 26, 3], not He et al.'s CIFAR net, which is
  ``cifar_resnet110``), ``wide_resnet50_2``, ``densenet121/161/169/201``.
- ``timm``: any timm model by name (``model.arch``), with ``cifar_stem`` where its first conv is
  known (``pretrained_cfg["first_conv"]``). Pretrained weights need the network.
"""

from __future__ import annotations

from functools import partial

from torch import nn

from calibexp.errors import CalibexpError, require
from calibexp.models.registry import BACKBONES


def _cifar_conv(old: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, old.out_channels, 3, 1, 1, bias=old.bias is not None)


def _resnet(model: nn.Module, in_channels: int, cifar_stem: bool, head_pool: int) -> nn.Module:
    if cifar_stem:
        model.conv1, model.maxpool = _cifar_conv(model.conv1, in_channels), nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, model.conv1.out_channels, 7, 2, 3, bias=False)
    if head_pool != 1:
        # torrvision's Tiny-ImageNet ResNet-50 (Net/resnet_tiny_imagenet.py): the last feature
        # map pooled to head_pool x head_pool and flattened channel-major into the FC.
        model.avgpool = nn.AdaptiveAvgPool2d(head_pool)
        model.fc = nn.Linear(model.fc.in_features * head_pool**2, model.fc.out_features)
    return model


def _register_resnet(name: str, make) -> None:
    def build(
        num_classes: int, in_channels: int, *, cifar_stem: bool = True, head_pool: int = 1
    ) -> nn.Module:
        require(head_pool >= 1, "model.head_pool", head_pool, "an integer >= 1")
        return _resnet(make(num_classes=num_classes), in_channels, cifar_stem, head_pool)

    build.__doc__ = (
        f"torchvision {name}, randomly initialised; cifar_stem by default; head_pool > 1 pools "
        "the last feature map to head_pool x head_pool before the FC (torrvision's "
        "Tiny-ImageNet ResNet-50 uses 2)."
    )
    BACKBONES.register(name)(build)


def _torchvision_resnets() -> None:
    from torchvision import models
    from torchvision.models.resnet import Bottleneck, ResNet

    for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2"):
        _register_resnet(name, partial(getattr(models, name)))
    _register_resnet("resnet110", partial(ResNet, Bottleneck, [3, 4, 26, 3]))

    for name in ("densenet121", "densenet161", "densenet169", "densenet201"):
        _register_densenet(name, getattr(models, name))


def _register_densenet(name: str, make) -> None:
    def build(num_classes: int, in_channels: int, *, cifar_stem: bool = True) -> nn.Module:
        model = make(num_classes=num_classes)
        conv0 = model.features.conv0
        if cifar_stem:
            model.features.conv0 = _cifar_conv(conv0, in_channels)
            model.features.pool0 = nn.Identity()
        elif in_channels != 3:
            model.features.conv0 = nn.Conv2d(in_channels, conv0.out_channels, 7, 2, 3, bias=False)
        return model

    build.__doc__ = f"torchvision {name}, randomly initialised; cifar_stem by default."
    BACKBONES.register(name)(build)


_torchvision_resnets()


@BACKBONES.register("timm")
def timm_model(
    num_classes: int,
    in_channels: int,
    *,
    arch: str = "resnet18",
    pretrained: bool = False,
    cifar_stem: bool = False,
) -> nn.Module:
    """``timm.create_model(arch, num_classes, in_chans)``; ``cifar_stem`` swaps its first conv
    for a 3x3 stride-1 one and drops a ``maxpool`` if the model has one."""
    import timm

    if arch not in timm.list_models():
        from calibexp.registry import closest

        raise CalibexpError(
            f"model.arch: unknown timm model '{arch}'{closest(arch, timm.list_models())}"
        )
    model = timm.create_model(
        arch, pretrained=pretrained, num_classes=num_classes, in_chans=in_channels
    )
    if cifar_stem:
        first = model.pretrained_cfg.get("first_conv")
        parent, _, leaf = (first or "").rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        old = getattr(owner, leaf, None) if first else None
        # A transformer's patch embedding is a conv too, but its stride sets the token count
        # the position embedding was made for: only convolutional stems are swapped.
        patchify = hasattr(model, "pos_embed") or (
            isinstance(old, nn.Conv2d) and old.kernel_size[0] > 7
        )
        if not isinstance(old, nn.Conv2d) or patchify:
            raise CalibexpError(
                f"model.cifar_stem: timm model '{arch}' has no plain first conv to replace "
                "(a patch embedding or none); use cifar_stem=false"
            )
        setattr(owner, leaf, _cifar_conv(old, in_channels))
        if isinstance(getattr(model, "maxpool", None), nn.Module):
            model.maxpool = nn.Identity()
    return model
