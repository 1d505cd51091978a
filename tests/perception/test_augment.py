"""Dense-aware augmentations: hand-computed views, exact inverses, seeded draws."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import perception
from perception import DenseAugment, View, augment, restore

torch.set_num_threads(1)


def image(n: int = 2, h: int = 8, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, 3, h, w), generator=torch.Generator().manual_seed(seed))


def test_photometric_views_match_torchvision_formulas_by_hand():
    x = image(1)
    v = View(box=(0, 0, 8, 16), size=(8, 16), brightness=1.3, contrast=0.7, saturation=1.4,
             gamma=0.8)  # fmt: skip
    got = augment(x, [v])
    gray = lambda t: (0.2989 * t[:, 0] + 0.587 * t[:, 1] + 0.114 * t[:, 2])[:, None]  # noqa: E731
    y = (x * 1.3).clamp(0, 1)
    y = (0.7 * y + 0.3 * gray(y).mean()).clamp(0, 1)
    y = (1.4 * y + (1 - 1.4) * gray(y)).clamp(0, 1)
    y = y.clamp(1e-8, 1) ** 0.8
    torch.testing.assert_close(got, y, rtol=0, atol=1e-6)


def test_geometric_view_crops_resizes_and_flips():
    x = image(1)
    v = View(box=(2, 4, 4, 8), size=(8, 16), flip=True)
    expected = F.interpolate(x[:, :, 2:6, 4:12], size=(8, 16), mode="bilinear").flip(-1)
    torch.testing.assert_close(augment(x, [v]), expected, rtol=0, atol=0)


def test_restore_undoes_flip_and_scale_exactly_for_whole_frame_views():
    x = image(2)
    views = [View(box=(0, 0, 8, 16), size=(8, 16), flip=True), View((0, 0, 8, 16), (8, 16))]
    back, covered = restore(augment(x, views), views, (8, 16))
    torch.testing.assert_close(back, x, rtol=0, atol=0)  # a flip is its own inverse
    assert torch.equal(covered, torch.ones(2, 1, 8, 16))
    # a 2x upscale followed by its 2x downscale is the identity on piecewise-constant maps
    blocky = torch.arange(2 * 19 * 4 * 8, dtype=torch.float32).reshape(2, 19, 4, 8)
    up = [View((0, 0, 4, 8), (8, 16))] * 2
    nearest = blocky.repeat_interleave(2, -2).repeat_interleave(2, -1)
    back, _ = restore(nearest, up, (4, 8))
    torch.testing.assert_close(back, blocky, rtol=0, atol=1e-4)


def test_restore_pastes_a_crop_into_its_box_and_masks_the_rest():
    logits = torch.randn(1, 5, 8, 16, generator=torch.Generator().manual_seed(3))
    v = View(box=(2, 4, 4, 8), size=(8, 16), flip=True)
    back, covered = restore(logits, [v], (8, 16))
    inside = F.interpolate(logits.flip(-1), size=(4, 8), mode="bilinear")
    torch.testing.assert_close(back[:, :, 2:6, 4:12], inside, rtol=0, atol=0)
    assert back[:, :, :2].abs().sum() == 0 and back[:, :, :, :4].abs().sum() == 0
    assert covered.sum() == 32 and covered[0, 0, 2:6, 4:12].eq(1).all()


def test_sampling_follows_the_documented_draw_order():
    aug = DenseAugment(flip=0.5, scale=(0.5, 1.5), crop=(0.5, 1.0), brightness=(0.6, 1.4))
    views = aug.sample(3, 8, 16, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    s = 0.5 + float(torch.rand((), generator=g))
    u = torch.rand((3, 8), generator=g, dtype=torch.float64)
    for v, r in zip(views, u.tolist(), strict=True):
        side = 0.5 + 0.5 * r[1]
        h, w = round(side * 8), round(side * 16)
        assert v.size == (round(s * 8), round(s * 16))
        assert v.flip == (r[0] < 0.5)
        assert v.box == (int(r[2] * (8 - h + 1)), int(r[3] * (16 - w + 1)), h, w)
        assert v.brightness == pytest.approx(0.6 + 0.8 * r[4])
        assert (v.contrast, v.saturation, v.gamma) == (1.0, 1.0, 1.0)


def test_same_seed_same_views_and_noise():
    aug = DenseAugment(flip=0.5, crop=(0.6, 1.0), noise=0.05, **{"gamma": (0.7, 1.3)})
    x = image(4)

    def run(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return augment(x, aug.sample(4, 8, 16, g), g)

    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


def test_noise_is_drawn_from_the_generator():
    x = image(2)
    views = [View((0, 0, 8, 16), (8, 16), noise=0.05)] * 2
    got = augment(x, views, torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)
    expected = torch.cat([(x[i : i + 1] + 0.05 * torch.randn((1, 3, 8, 16), generator=g))
                          .clamp(0, 1) for i in range(2)])  # fmt: skip
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_bad_distributions_and_batches_are_refused():
    with pytest.raises(ValueError, match="flip must be a probability"):
        DenseAugment(flip=2)
    with pytest.raises(ValueError, match="crop must be a range"):
        DenseAugment(crop=(0.5, 1.5))
    views = [View((0, 0, 8, 16), (8, 16)), View((0, 0, 8, 16), (4, 8))]
    with pytest.raises(ValueError, match="share one output size"):
        augment(image(2), views)
    with pytest.raises(ValueError, match="one view per image"):
        augment(image(2), views[:1])
    with pytest.raises(ValueError, match="need a generator"):
        augment(image(1), [View((0, 0, 8, 16), (8, 16), noise=0.1)])


def test_cotta_jitter_is_cottas_published_ranges():
    assert perception.COTTA_JITTER == {
        "brightness": (0.6, 1.4), "contrast": (0.7, 1.3), "saturation": (0.5, 1.5),
        "gamma": (0.7, 1.3), "noise": 0.005,
    }  # fmt: skip
