"""Robustness sets that need no download, so the embedded digits demo can be evaluated for OoD
detection and calibration under shift on any machine.

- ``image_patches`` (OoD): square crops of the two photographs scikit-learn ships
  (``sklearn.datasets.load_sample_images``: a Chinese temple and a flower), area-downsampled to
  the evaluated model's input shape, in grey when it takes one channel; crops with almost no
  texture (sky, walls) are drawn again.
- ``digits_c`` (shift): the run's own test split under six of CIFAR-10-C's corruptions, each at
  five severities with the parameters of Hendrycks & Dietterich's ``make_cifar_c.py``
  ("Benchmarking Neural Network Robustness to Common Corruptions and Perturbations", ICLR 2019;
  github.com/hendrycks/robustness): five of its 15 (the three noises, contrast, brightness)
  and its extra ``gaussian_blur``. The ten left out need texture images (snow, frost, fog), a
  JPEG codec, blur and warp kernels wider than an 8x8 image (defocus, glass, motion, zoom,
  elastic), or more pixels than 8x8 to reduce: pixelate keeps int(8c) = 7, 7, 6, 6, 5 pixels
  at its five severities, two pairs of them identical.

Both are seeded: the same call gives the same images on every machine.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from calibexp.data.bundle import Split
from calibexp.data.shifted import SHIFTED
from calibexp.errors import CalibexpError, require
from calibexp.registry import closest

PATCH_SOURCE_SCALE = 4  # a crop spans 4x the model's input side before it is downsampled
MIN_PATCH_STD = 8.0  # grey levels (of 255): a patch with less texture is drawn again
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 grey from RGB
# (images in [0, 1] [N, C, H, W], the severity's parameter, a seeded generator) -> corrupted
Corruption = Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]


def default_reference() -> Split:
    """The digits demo's test split: what these sets are built on when no run's is given."""
    from calibexp.data.registry import DATASETS

    return DATASETS.build("digits").test


@SHIFTED.register("image_patches", kind="ood")
def image_patches(reference: Split | None = None, *, count: int = 0, seed: int = 0) -> Split:
    """``count`` patches (0: as many as ``reference`` holds) of the reference's image shape."""
    reference = reference if reference is not None else default_reference()
    channels, height, width = reference.images.shape[1:]
    count = count or len(reference)
    require(count >= 1, "count", count, "an integer >= 1 (0: as many as the test split)")
    from sklearn.datasets import load_sample_images

    photos = [torch.tensor(p).permute(2, 0, 1).float() for p in load_sample_images().images]
    crop_h, crop_w = height * PATCH_SOURCE_SCALE, width * PATCH_SOURCE_SCALE
    rng = np.random.default_rng(seed)
    patches, sources = [], []
    while len(patches) < count:  # drawn in seeded order; flat crops (sky, walls) redrawn
        source = int(rng.integers(len(photos)))
        photo = photos[source]
        top = int(rng.integers(photo.shape[1] - crop_h + 1))
        left = int(rng.integers(photo.shape[2] - crop_w + 1))
        crop = photo[None, :, top : top + crop_h, left : left + crop_w]
        patch = F.interpolate(crop, size=(height, width), mode="area")[0]
        if patch.mean(dim=0).std() >= MIN_PATCH_STD:
            patches.append(patch)
            sources.append(source)
    pixels = torch.stack(patches)
    if channels == 1:
        pixels = (pixels * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    elif channels != 3:
        raise CalibexpError(f"image_patches: cannot make {channels}-channel patches; 1 or 3")
    images = pixels.round().clamp(0, 255).to(torch.uint8)
    return Split(images, torch.tensor(sources, dtype=torch.int64))  # label: which photograph


def _gaussian_noise(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    return x + c * torch.randn(x.shape, generator=g)


def _shot_noise(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    return torch.poisson(x * c, generator=g) / c


def _impulse_noise(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    # skimage.util.random_noise(mode="s&p", amount=c): a share c of the pixels, salt or pepper
    # with equal chance.
    hit = torch.rand(x.shape, generator=g) < c
    salt = torch.rand(x.shape, generator=g) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


def _gaussian_blur(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    # skimage.filters.gaussian as make_cifar_c.py calls it: truncated at 4 sigma, edges
    # extended with the nearest pixel. Written out because torchvision's gaussian_blur pads by
    # reflection, which on an 8x8 digit mirrors strokes back in from the border.
    radius = int(4 * c + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets / c) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    rows = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    columns = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    return F.conv2d(F.conv2d(padded, rows, groups=channels), columns, groups=channels)


def _contrast(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    means = x.mean(dim=(2, 3), keepdim=True)  # per image and channel, as np.mean(x, (0, 1))
    return (x - means) * c + means


def _brightness(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    if x.shape[1] == 1:
        return x + c
    # HSV's V is the largest channel: raising V by c at the same hue and saturation scales
    # every channel by (V + c) / V; a black pixel (V = 0, no saturation) becomes grey c.
    value = x.amax(dim=1, keepdim=True)
    raised = (value + c).clamp(max=1)
    return torch.where(value > 0, x * (raised / value.clamp(min=1e-8)), raised.expand_as(x))


# Each corruption, and make_cifar_c.py's parameter of it at severities 1..5 (images in [0, 1]).
DIGIT_CORRUPTIONS: dict[str, tuple[Corruption, tuple[float, ...]]] = {
    "gaussian_noise": (_gaussian_noise, (0.04, 0.06, 0.08, 0.09, 0.10)),  # noise std
    "shot_noise": (_shot_noise, (500, 250, 100, 75, 50)),  # photons per unit intensity
    "impulse_noise": (_impulse_noise, (0.01, 0.02, 0.03, 0.05, 0.07)),  # share of pixels hit
    "gaussian_blur": (_gaussian_blur, (0.4, 0.6, 0.7, 0.8, 1.0)),  # sigma in pixels
    "contrast": (_contrast, (0.75, 0.5, 0.4, 0.3, 0.15)),  # factor on distance to the mean
    "brightness": (_brightness, (0.05, 0.1, 0.15, 0.2, 0.3)),  # added to HSV's value
}


@SHIFTED.register("digits_c", kind="shift", corruptions=tuple(DIGIT_CORRUPTIONS), extra=())
def digits_c(
    reference: Split | None = None,
    *,
    corruption: str = "gaussian_noise",
    severity: int = 5,
    seed: int = 0,
) -> Split:
    """``reference`` (the run's test split) under ``corruption`` at ``severity``; labels kept."""
    if corruption not in DIGIT_CORRUPTIONS:
        raise CalibexpError(
            f"digits_c: unknown corruption '{corruption}'{closest(corruption, DIGIT_CORRUPTIONS)}"
            f"; known: {', '.join(DIGIT_CORRUPTIONS)}"
        )
    require(1 <= severity <= 5, "severity", severity, "an integer in 1..5")
    reference = reference if reference is not None else default_reference()
    names = list(DIGIT_CORRUPTIONS)
    generator = torch.Generator().manual_seed(seed * 1000 + names.index(corruption) * 10 + severity)
    x = reference.images.float() / 255
    corrupt, parameters = DIGIT_CORRUPTIONS[corruption]
    corrupted = corrupt(x, parameters[severity - 1], generator).clamp(0, 1)
    images = (corrupted * 255).round().to(torch.uint8)
    return Split(images, reference.labels.clone(), reference.domains)
