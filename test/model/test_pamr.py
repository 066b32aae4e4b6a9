"""PAMR (docs/method.md §5.5): the vectorised version against a literal reference and hand-computed cases."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import talk2dino_ros.model  # noqa: F401  (torchvision workaround before anything else)
from talk2dino_ros.errors import InputError
from talk2dino_ros.model.pamr import NEIGHBOURS, benchmark_pamr, pamr, pamr_affinity


# ---- literal reference: one conv per dilation, stacked neighbour tensors, word by word from §5.5 ----

def _kernel(kind: str) -> torch.Tensor:
    """3x3 conv kernels extracting, per output channel, one stencil position (row-major)."""
    positions = [(i, j) for i in range(3) for j in range(3)]
    if kind != 'std':
        positions.remove((1, 1))
    weight = torch.zeros(len(positions), 1, 3, 3, dtype=torch.float64)
    for k, (i, j) in enumerate(positions):
        weight[k, 0, i, j] += 1.0
        if kind == 'diff':
            weight[k, 0, 1, 1] -= 1.0  # centre minus neighbour (sign irrelevant under abs)
    return weight


def _local(x: torch.Tensor, kind: str, dilations) -> torch.Tensor:
    """[B, K, H, W] -> [B, K, P*len(dilations), H, W] with replicate padding by each d."""
    b, k, h, w = x.shape
    flat = x.reshape(b * k, 1, h, w)
    out = []
    for d in dilations:
        padded = F.pad(flat, [d, d, d, d], mode='replicate')
        out.append(F.conv2d(padded, _kernel(kind).to(x.dtype), dilation=d))
    return torch.cat(out, 1).reshape(b, k, -1, h, w)


def reference_pamr(image, masks, iterations=10, dilations=(1, 2, 4, 8, 12, 24)):
    image = image.double()
    masks = masks.double()
    image = F.interpolate(image, size=masks.shape[-2:], mode='bilinear', align_corners=True)
    std = _local(image, 'std', dilations).std(2, keepdim=True)          # [B, 3, 1, H, W], 54 values
    aff = -_local(image, 'diff', dilations).abs() / (1e-8 + 0.1 * std)  # [B, 3, 48, H, W]
    aff = F.softmax(aff.mean(1, keepdim=True), 2)                       # [B, 1, 48, H, W]
    for _ in range(iterations):
        masks = (_local(masks, 'copy', dilations) * aff).sum(2)
    return masks


# ---- tests ----

@pytest.mark.parametrize('shape,dilations,iterations', [
    ((1, 3, 20, 27), (1, 2, 4, 8, 12, 24), 10),   # dilations larger than the image (replicate pad)
    ((2, 4, 33, 31), (1, 2, 4, 8, 12, 24), 10),
    ((1, 1, 16, 16), (1, 3), 3),
    ((1, 31, 12, 10), (2,), 2),
])
def test_matches_reference(shape, dilations, iterations):
    gen = torch.Generator().manual_seed(sum(shape))
    b, n, h, w = shape
    image = torch.rand(b, 3, h, w, generator=gen) * 255
    image[:, :, : h // 3] = 7.0  # flat region: std 0 inside, many equal neighbours
    masks = torch.rand(b, n, h, w, generator=gen)
    got = pamr(image, masks, iterations, dilations)
    want = reference_pamr(image, masks, iterations, dilations)
    assert got.dtype == torch.float32 and got.shape == masks.shape
    assert (got.double() - want).abs().max().item() <= 1e-5


def test_image_resized_to_mask_size():
    gen = torch.Generator().manual_seed(3)
    image = torch.rand(1, 3, 9, 13, generator=gen) * 255
    masks = torch.rand(1, 2, 18, 25, generator=gen)
    got = pamr(image, masks, 4)
    want = reference_pamr(image, masks, 4)
    assert (got.double() - want).abs().max().item() <= 1e-5


def test_float64_is_kept():
    gen = torch.Generator().manual_seed(4)
    image = torch.rand(1, 3, 15, 15, generator=gen, dtype=torch.float64) * 255
    masks = torch.rand(1, 2, 15, 15, generator=gen, dtype=torch.float64)
    got = pamr(image, masks)
    assert got.dtype == torch.float64
    assert (got - reference_pamr(image, masks)).abs().max().item() <= 1e-12


def test_constant_image_gives_uniform_average_of_48_neighbours():
    size, c = 64, 30
    image = torch.full((1, 3, size, size), 100.0)
    aff = pamr_affinity(image)
    assert aff.shape == (1, 48, size, size)
    assert torch.allclose(aff, torch.full_like(aff, 1 / 48))
    masks = torch.zeros(1, 1, size, size)
    masks[0, 0, c, c] = 48.0  # a single spike, far enough from the border for all 48 offsets
    out = pamr(image, masks, iterations=1)
    # every pixel that has the spike among its 48 neighbours gets exactly 1; the centre stays 0
    expected = torch.zeros(size, size)
    for d in (1, 2, 4, 8, 12, 24):
        for dy, dx in NEIGHBOURS:
            expected[c - dy * d, c - dx * d] += 1.0
    assert expected[c, c] == 0 and expected.sum() == 48
    assert torch.allclose(out[0, 0], expected, atol=1e-6)


def test_constant_mask_is_fixed_point():
    gen = torch.Generator().manual_seed(5)
    image = torch.rand(1, 3, 25, 30, generator=gen) * 255
    masks = torch.full((1, 3, 25, 30), 0.3)
    masks[0, 1] = 0.9
    out = pamr(image, masks)
    assert torch.allclose(out, masks, atol=1e-6)


def test_tiny_case_by_hand():
    """1x3 image, dilation 1, one iteration, computed with numpy from the formulas."""
    row = np.array([0.0, 10.0, 40.0])
    image = torch.tensor(np.stack([row, row * 2, row * 0.5]), dtype=torch.float32)[None, :, None, :]
    mask = torch.tensor([[[[1.0, 2.0, 4.0]]]])
    got = pamr(image, mask, iterations=1, dilations=(1,))[0, 0, 0].numpy()
    expected = []
    for px in range(3):
        # replicate padding: a 1-row image repeats its row above and below; columns clamp
        cols = [min(max(px + dx, 0), 2) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        logits = np.zeros(8)
        for scale in (1.0, 2.0, 0.5):
            vals = row[cols] * scale
            sigma = vals.std(ddof=1)
            neigh = np.delete(vals, 4)
            logits += -np.abs(row[px] * scale - neigh) / (1e-8 + 0.1 * sigma) / 3
        w = np.exp(logits - logits.max())
        w /= w.sum()
        expected.append((w * np.delete(np.array([1.0, 2.0, 4.0])[cols], 4)).sum())
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_zero_iterations_and_bad_input():
    masks = torch.rand(1, 2, 8, 8)
    assert torch.equal(pamr(torch.rand(1, 3, 8, 8), masks, iterations=0), masks)
    with pytest.raises(InputError):
        pamr(torch.rand(3, 8, 8), masks)
    with pytest.raises(InputError):
        pamr(torch.rand(1, 3, 8, 8), masks, dilations=(0,))


def test_benchmark_runs():
    assert benchmark_pamr(n_classes=2, size=32, repeats=1) > 0
