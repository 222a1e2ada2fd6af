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
    assert distances[-1] > distances[0]  # severity 5 moves the images further than 1


def test_contrast_and_brightness_follow_make_cifar_c(reference):
    x = reference.images.float() / 255
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    expected = (((x - mean) * 0.15 + mean).clamp(0, 1) * 255).round().to(torch.uint8)
    got = SHIFTED.build("digits_c", reference, corruption="contrast", severity=5).images
    assert torch.equal(got, expected)
    expected = (((x + 0.3).clamp(0, 1)) * 255).round().to(torch.uint8)
    got = SHIFTED.build("digits_c", reference, corruption="brightness", severity=5).images
    assert torch.equal(got, expected)


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
