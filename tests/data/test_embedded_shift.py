"""The robustness sets that need no download: digits_c (the test split under CIFAR-10-C's
corruptions, checked against each corruption's formula) and image_patches (sample-photograph
crops of the model's input shape); both seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calibexp.data import DATASETS, SHIFTED, Split
from calibexp.data.embedded_shift import DIGIT_CORRUPTIONS
from calibexp.errors import CalibexpError


@pytest.fixture(scope="module")
def reference() -> Split:
    return DATASETS.build("digits").test


def test_registered_with_their_kind_and_the_digits_default():
    assert SHIFTED.info("digits_c")["kind"] == "shift"
    assert SHIFTED.info("digits_c")["corruptions"] == tuple(DIGIT_CORRUPTIONS)
    assert SHIFTED.info("image_patches")["kind"] == "ood"
    assert DATASETS.info("digits")["robustness"] == ("image_patches", "digits_c")
    for name in DATASETS.names():  # every default set exists
        assert set(DATASETS.info(name)["robustness"]) <= set(SHIFTED.names())


@pytest.mark.parametrize("corruption", list(DIGIT_CORRUPTIONS))
def test_each_corruption_is_seeded_keeps_labels_and_grows_with_severity(reference, corruption):
    distances = []
    for severity in range(1, 6):
        shifted = SHIFTED.build("digits_c", reference, corruption=corruption, severity=severity)
        again = SHIFTED.build("digits_c", reference, corruption=corruption, severity=severity)
        assert torch.equal(shifted.images, again.images)
        assert torch.equal(shifted.labels, reference.labels)
        assert shifted.images.shape == reference.images.shape
        distances.append((shifted.images.float() - reference.images.float()).abs().mean().item())
    assert distances[0] > 0
    # each severity moves the images further than the one before
    assert distances == sorted(distances) and len(set(distances)) == 5


def test_contrast_and_brightness_follow_make_cifar_c(reference):
    x = reference.images.float() / 255
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    expected = (((x - mean) * 0.15 + mean).clamp(0, 1) * 255).round().to(torch.uint8)
    got = SHIFTED.build("digits_c", reference, corruption="contrast", severity=5).images
    assert torch.equal(got, expected)
    expected = (((x + 0.3).clamp(0, 1)) * 255).round().to(torch.uint8)
    got = SHIFTED.build("digits_c", reference, corruption="brightness", severity=5).images
    assert torch.equal(got, expected)


def test_rgb_contrast_and_brightness_against_make_cifar_c_per_pixel():
    # make_cifar_c.py: contrast uses each channel's mean over the image; brightness converts to
    # HSV (skimage.color.rgb2hsv), adds c to V, clips and converts back: here colorsys.
    import colorsys

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 4, 4), generator=generator, dtype=torch.uint8)
    images[0, :, 0, 0] = 0  # a black pixel: V = 0
    rgb = Split(images, torch.zeros(3, dtype=torch.int64))
    x = images.double().numpy() / 255
    means = x.mean(axis=(2, 3), keepdims=True)
    expected = np.rint(np.clip((x - means) * 0.15 + means, 0, 1) * 255)
    got = SHIFTED.build("digits_c", rgb, corruption="contrast", severity=5).images.numpy()
    assert np.abs(got - expected).max() <= 1  # float32 against float64 at a rounding edge
    got = SHIFTED.build("digits_c", rgb, corruption="brightness", severity=5).images.numpy()
    for n, i, j in [(0, 0, 0), (0, 1, 2), (1, 3, 3), (2, 2, 1)]:
        h, sat, v = colorsys.rgb_to_hsv(*x[n, :, i, j])
        pixel = np.rint(np.array(colorsys.hsv_to_rgb(h, sat, min(v + 0.3, 1.0))) * 255)
        assert np.abs(got[n, :, i, j] - pixel).max() <= 1, (n, i, j)


def test_gaussian_blur_is_scipys_filter_with_nearest_edges(reference):
    from scipy.ndimage import gaussian_filter

    x = reference.images.double().numpy() / 255
    for severity, sigma in ((1, 0.4), (5, 1.0)):
        expected = np.stack(
            [gaussian_filter(image[0], sigma, mode="nearest", truncate=4.0) for image in x]
        )[:, None]
        expected = np.rint(np.clip(expected, 0, 1) * 255)
        got = SHIFTED.build("digits_c", reference, corruption="gaussian_blur", severity=severity)
        assert np.abs(got.images.numpy() - expected).max() <= 1


def test_impulse_noise_hits_about_its_share_of_pixels(reference):
    got = SHIFTED.build("digits_c", reference, corruption="impulse_noise", severity=5).images
    changed = got != reference.images
    extreme = (got == 0) | (got == 255)
    assert bool(extreme[changed].all())  # every changed pixel is salt or pepper
    assert 0.02 < changed.float().mean().item() < 0.07  # 7% hit, some already 0 or 255


def test_gaussian_noise_has_the_severity_standard_deviation(reference):
    got = SHIFTED.build("digits_c", reference, corruption="gaussian_noise", severity=5).images
    inside = (reference.images > 40) & (reference.images < 215)  # away from clipping
    noise = (got.float() - reference.images.float())[inside] / 255
    assert noise.std().item() == pytest.approx(0.10, rel=0.1)


def test_unknown_corruption_and_severity_are_one_line_errors(reference):
    with pytest.raises(CalibexpError, match="unknown corruption 'gausian_noise'.*gaussian_noise"):
        SHIFTED.build("digits_c", reference, corruption="gausian_noise")
    with pytest.raises(CalibexpError, match="severity"):
        SHIFTED.build("digits_c", reference, severity=6)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_image_patches_take_the_reference_shape_and_are_seeded(shape):
    reference = Split(torch.zeros(7, *shape, dtype=torch.uint8), torch.zeros(7, dtype=torch.int64))
    patches = SHIFTED.build("image_patches", reference)
    assert patches.images.shape == (7, *shape)
    assert torch.equal(patches.images, SHIFTED.build("image_patches", reference).images)
    other = SHIFTED.build("image_patches", reference, seed=1).images
    assert not torch.equal(patches.images, other)
    # photographs, not blank frames: every patch has texture
    per_patch_std = patches.images.float().flatten(1).std(dim=1)
    assert bool((per_patch_std > 4).all()), per_patch_std
    assert set(np.unique(patches.labels.numpy())) <= {0, 1}  # which photograph
