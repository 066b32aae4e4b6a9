"""DINOv2 reg4 backbone: shapes, attention logits from the hooked qkv, agreement with timm's own model."""
import numpy as np
import pytest
import torch

import talk2dino_ros.model  # noqa: F401  (torchvision workaround before timm)
import timm
from timm.models.vision_transformer import checkpoint_filter_fn

from talk2dino_ros.model.backbone import (IMAGENET_MEAN, IMAGENET_STD, build_dinov2_backbone, normalize_rgb255,
                                          resize_square)
from talk2dino_ros.model.random_weights import WIDTHS

DIM, DEPTH = WIDTHS['tiny']['dino']
HEADS = DIM // 16   # tiny test models use 16-wide heads
PREFIX = 5          # CLS + 4 registers


@pytest.fixture(scope='module')
def backbone(tiny_weights):
    return build_dinov2_backbone(tiny_weights['dinov2'], allow_test_width=True)


@pytest.fixture(scope='module')
def official_sd(tiny_weights):
    return torch.load(tiny_weights['dinov2'], weights_only=True)


def _timm_fixed(official_sd, img_size):
    """timm's model at a fixed input size, official weights through timm's filter (no dynamic resampling)."""
    model = timm.create_model('vit_base_patch14_reg4_dinov2', pretrained=False, img_size=img_size, num_classes=0,
                              embed_dim=DIM, depth=DEPTH, num_heads=HEADS)
    model.load_state_dict(checkpoint_filter_fn(dict(official_sd), model), strict=True)
    return model.eval()


def _x(b, h, w, seed=0):
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_frozen_and_eval(backbone):
    assert not backbone.training
    assert not any(p.requires_grad for p in backbone.parameters())
    assert (backbone.embed_dim, backbone.num_heads, backbone.arch.depth) == (DIM, HEADS, DEPTH)


def test_shapes_448(backbone):
    with torch.no_grad():
        feats, attn = backbone(_x(2, 448, 448))
    assert feats.shape == (2, DIM, 32, 32)
    assert attn.shape == (2, HEADS, 1024)
    assert feats.dtype == attn.dtype == torch.float32
    assert backbone._qkv is None, 'the hooked qkv must not be kept alive after the forward'


def test_one_forward_per_call(backbone):
    calls = []
    handle = backbone.vit.patch_embed.register_forward_hook(lambda *a: calls.append(1))
    try:
        with torch.no_grad():
            backbone(_x(1, 56, 56))
    finally:
        handle.remove()
    assert len(calls) == 1


def test_attention_logits_from_scratch(backbone):
    """CLS->patch logits = (q_cls * hd^-0.5) . k_patch^T per head, from the last block's own qkv weights."""
    captured = {}
    block = backbone.vit.blocks[-1]
    handle = block.norm1.register_forward_hook(lambda m, i, o: captured.__setitem__('x', o.detach().clone()))
    try:
        with torch.no_grad():
            _, attn = backbone(_x(2, 84, 112, seed=3))
    finally:
        handle.remove()
    x = captured['x'].double()                                       # [B, T, D] input of the attention
    qkv = x @ block.attn.qkv.weight.double().T + block.attn.qkv.bias.double()
    B, T, _ = qkv.shape
    hd = DIM // HEADS
    q = qkv[..., :DIM].reshape(B, T, HEADS, hd)
    k = qkv[..., DIM:2 * DIM].reshape(B, T, HEADS, hd)
    expected = np.zeros((B, HEADS, T - PREFIX))
    for b in range(B):
        for m in range(HEADS):
            qc = q[b, 0, m].numpy() * hd ** -0.5
            expected[b, m] = k[b, PREFIX:, m].numpy() @ qc
    assert attn.shape == (2, HEADS, 6 * 8)
    np.testing.assert_allclose(attn.double().numpy(), expected, atol=2e-5, rtol=1e-5)
    # pre-softmax logits: rows neither sum to one nor are all positive
    assert (attn < 0).any()
    assert not torch.allclose(attn.sum(-1), torch.ones(2, HEADS), atol=1e-2)


def test_patch_tokens_equal_timm_448(backbone, official_sd):
    """Our dynamic-size model (img_size 518) = timm's fixed 448 model: the tokens after the norm, [:, 5:]."""
    ref_model = _timm_fixed(official_sd, 448)
    x = _x(2, 448, 448, seed=1)
    with torch.no_grad():
        feats, _ = backbone(x)
        ref = ref_model.forward_features(x)[:, PREFIX:]              # [B, 1024, D], row-major patches
    ours = feats.flatten(2).transpose(1, 2)
    assert torch.allclose(ours, ref, atol=1e-5, rtol=0), (ours - ref).abs().max()


def test_non_square_input(backbone, official_sd):
    """A 280x420 input gives a 20x30 grid; tokens match timm built for that size; reshape is row-major."""
    h, w = 20, 30
    x = _x(1, 14 * h, 14 * w, seed=2)
    ref_model = _timm_fixed(official_sd, (14 * h, 14 * w))
    with torch.no_grad():
        feats, attn = backbone(x)
        tokens = ref_model.forward_features(x)
    assert feats.shape == (1, DIM, h, w) and attn.shape == (1, HEADS, h * w)
    assert torch.allclose(feats[0, :, 3, 17], tokens[0, PREFIX + 3 * w + 17], atol=1e-5)
    assert torch.allclose(feats.flatten(2).transpose(1, 2), tokens[:, PREFIX:], atol=1e-5, rtol=0)


def test_batch_independence(backbone):
    x = _x(3, 56, 70, seed=4)
    with torch.no_grad():
        fb, ab = backbone(x)
        f1, a1 = backbone(x[1:2])
    assert torch.allclose(fb[1:2], f1, atol=1e-5) and torch.allclose(ab[1:2], a1, atol=1e-5)


def test_normalize_rgb255():
    x = torch.tensor([0.0, 127.5, 255.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    out = normalize_rgb255(x)
    expected = [(v / 255.0 - m) / s for v, m, s in zip([0.0, 127.5, 255.0], IMAGENET_MEAN, IMAGENET_STD)]
    assert torch.allclose(out[0, :, 0, 0], torch.tensor(expected), atol=1e-6)


def test_resize_square():
    x = _x(1, 448, 448)
    assert resize_square(x, 448) is x
    y = resize_square(_x(1, 100, 300), 448)
    assert y.shape == (1, 3, 448, 448)
    const = torch.full((1, 3, 50, 70), 7.0)
    assert torch.allclose(resize_square(const, 448), torch.full((1, 3, 448, 448), 7.0))
