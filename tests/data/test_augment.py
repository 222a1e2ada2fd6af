"""The batched crop-and-flip: each output image is a window of the zero-padded input (mirrored
or not), every offset and both flips occur, and the same generator gives the same batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from calibexp.data import DeviceLoader, Split
from calibexp.data.augment import crop_and_flip, horizontal_flip, random_crop
from calibexp.seeding import epoch_generator


def images(n: int = 64, size: int = 8) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )


def test_crop_is_a_window_of_the_padded_image():
    x = images()
    out = random_crop(2)(x, torch.Generator().manual_seed(1))
    padded = F.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(x)):
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 8, dx : dx + 8])
        ]
        assert found, i  # a window of the zero-padded image, never anything else
        offsets.update(found)
    assert len(offsets) > 15  # the offsets vary over the 25 possible


def test_flip_mirrors_about_half():
    x = images(400)
    out = horizontal_flip(x, torch.Generator().manual_seed(2))
    flipped = torch.tensor([torch.equal(o, i.flip(2)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert (flipped | kept).all() and 150 < int(flipped.sum()) < 250


def test_augmented_epoch_is_deterministic_under_its_seed():
    split = Split(images(100), torch.arange(100))
    loader = DeviceLoader(split, 32, torch.device("cpu"), (0.5,) * 3, (0.25,) * 3, crop_and_flip(4))

    def epoch(seed: int, number: int):
        return list(loader.batches(epoch_generator(seed, number, torch.device("cpu"))))

    a, b, c = epoch(0, 3), epoch(0, 3), epoch(0, 4)
    assert all(torch.equal(x, y) and torch.equal(u, v) for (x, u), (y, v) in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])
    assert sorted(torch.cat([labels for _, labels in a]).tolist()) == list(range(100))
