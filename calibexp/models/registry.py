"""The backbone registry: ``builder(num_classes, in_channels, **hyper-parameters) -> nn.Module``
returning logits [B, num_classes]."""

from calibexp.registry import Registry

BACKBONES = Registry("backbone")
