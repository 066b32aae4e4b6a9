"""Per-window post-processing (docs/method.md §5.2-5.4) against hand-computed values and an independent numpy version."""
import math

import numpy as np
import pytest
import torch

import talk2dino_ros.model  # noqa: F401
from talk2dino_ros.model.postprocess import (BG_CLEAN_LAMBDA, background_clean, prepend_background,
                                             sigmoid_cosine_scores, upsample_scores)


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_clean(S, F, A, T, lam=0.2, head_weights=None):
    """§5.6 for one window in float64: S [N,P] scores, F [D,P] raw tokens, A [M,P] logits, T [N,D] unit text."""
    W = A if head_weights is None else head_weights
    e = (W[:, None, :] * F[None]).mean(-1)                 # [M, D], weights = the (signed) logits
    e = e / np.linalg.norm(e, axis=-1, keepdims=True)
    w = np_softmax(T @ e.T, axis=1)                        # [N, M], softmax over heads
    attn = (w @ A) / w.sum(1, keepdims=True)               # [N, P]
    attn = np_softmax(attn, axis=1)                        # over patches
    a, b = attn.min(), attn.max()                          # global over classes and patches
    attn = (attn - a) / max(b, b - a)
    attn = attn * (S.max() - S.min()) + S.min()
    return (S + lam * attn) / (1 + lam)


def _t(x):
    return torch.tensor(np.asarray(x), dtype=torch.float32)


# ------------------------------------------------------------------ sigmoid(cosine)

def test_sigmoid_cosine_hand_computed():
    # three patches: (3,4), (0,0), (-1,0); texts e_x, e_y
    feats = _t([[[[3.0, 0.0, -1.0]], [[4.0, 0.0, 0.0]]]])     # [1, D=2, h=1, w=3]
    text = _t([[1.0, 0.0], [0.0, 1.0]])
    out = sigmoid_cosine_scores(feats, text)
    assert out.shape == (1, 2, 1, 3)
    expected = [[sig(0.6), 0.5, sig(-1.0)], [sig(0.8), 0.5, 0.5]]   # zero vector: eps, cosine 0
    np.testing.assert_allclose(out[0, :, 0].numpy(), expected, atol=1e-7)


def test_sigmoid_cosine_scale_invariant_and_random():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 5, 3, 4, generator=g)
    text = torch.nn.functional.normalize(torch.randn(3, 5, generator=g), dim=-1)
    out = sigmoid_cosine_scores(feats, text)
    f = feats.double().numpy()
    cos = np.einsum('bdhw,nd->bnhw', f / np.linalg.norm(f, axis=1, keepdims=True), text.double().numpy())
    np.testing.assert_allclose(out.numpy(), 1 / (1 + np.exp(-cos)), atol=1e-6)
    assert torch.allclose(sigmoid_cosine_scores(feats * 37.0, text), out, atol=1e-6)


# ------------------------------------------------------------------ background cleaning

def test_background_clean_hand_computed_single_head():
    """M=1 (head weight 1), P=2: logits (0, ln 3) -> softmax (1/4, 3/4) for both classes.

    Global min 1/4, max 3/4 -> divided by the MAX: (0, 2/3) (by max-min it would be (0, 1)).
    Mapped to the scores' global range [0.5, 0.9]: (0.5, 0.5 + 0.4*2/3). Blend (S + 0.2 Ā)/1.2.
    """
    S = _t([[[[0.6, 0.7]], [[0.5, 0.9]]]])                 # [1, N=2, 1, P=2]
    F = _t([[[[1.0, 2.0]], [[0.5, -1.0]]]])                # [1, D=2, 1, 2]
    A = _t([[[0.0, math.log(3.0)]]])                       # [1, M=1, 2]
    T = _t([[1.0, 0.0], [0.0, 1.0]])
    out = background_clean(S, F, A, T)
    a_bar = [0.5, 0.5 + 0.4 * 2 / 3]
    expected = [[(0.6 + 0.2 * a_bar[0]) / 1.2, (0.7 + 0.2 * a_bar[1]) / 1.2],
                [(0.5 + 0.2 * a_bar[0]) / 1.2, (0.9 + 0.2 * a_bar[1]) / 1.2]]
    np.testing.assert_allclose(out[0, :, 0].numpy(), expected, atol=1e-6)
    assert out.shape == S.shape
    assert BG_CLEAN_LAMBDA == 0.2


def test_background_clean_matches_numpy_with_negative_logits():
    g = torch.Generator().manual_seed(1)
    N, D, M, h, w = 3, 6, 4, 2, 3
    S = torch.sigmoid(torch.randn(1, N, h, w, generator=g))
    F = torch.randn(1, D, h, w, generator=g)
    A = torch.randn(1, M, h * w, generator=g) * 2.0
    T = torch.nn.functional.normalize(torch.randn(N, D, generator=g), dim=-1)
    assert (A < 0).any()
    out = background_clean(S, F, A, T)
    args = (S[0].reshape(N, -1).double().numpy(), F[0].reshape(D, -1).double().numpy(),
            A[0].double().numpy(), T.double().numpy())
    expected = np_clean(*args)
    np.testing.assert_allclose(out[0].reshape(N, -1).numpy(), expected, atol=1e-6)
    # the test can tell signed-logit head weights from softmaxed ones (what training used)
    softmaxed = np_clean(*args, head_weights=np_softmax(args[2], axis=1))
    assert np.abs(softmaxed - expected).max() > 1e-4


def test_background_clean_global_min_max_per_window():
    """Two windows in one batch: each is normalised with its own global (all-class) min/max."""
    g = torch.Generator().manual_seed(2)
    N, D, M, h, w = 2, 4, 2, 2, 2
    S = torch.sigmoid(torch.randn(2, N, h, w, generator=g) * 2)
    S[1] = S[1] * 0.3 + 0.2                                   # a different range in window 1
    F = torch.randn(2, D, h, w, generator=g)
    A = torch.randn(2, M, h * w, generator=g)
    T = torch.nn.functional.normalize(torch.randn(N, D, generator=g), dim=-1)
    batched = background_clean(S, F, A, T)
    for b in range(2):
        single = background_clean(S[b:b + 1], F[b:b + 1], A[b:b + 1], T)
        assert torch.allclose(batched[b:b + 1], single, atol=1e-7)
        expected = np_clean(S[b].reshape(N, -1).double().numpy(), F[b].reshape(D, -1).double().numpy(),
                            A[b].double().numpy(), T.double().numpy())
        np.testing.assert_allclose(batched[b].reshape(N, -1).numpy(), expected, atol=1e-6)
    # per-class normalisation would give something else
    s = S[0].reshape(N, -1).double().numpy()
    per_class = np.stack([np_clean(s[n:n + 1], F[0].reshape(D, -1).double().numpy(), A[0].double().numpy(),
                                   T[n:n + 1].double().numpy()) for n in range(N)])[:, 0]
    assert np.abs(per_class - batched[0].reshape(N, -1).numpy()).max() > 1e-4


def test_background_clean_keeps_score_range():
    g = torch.Generator().manual_seed(3)
    S = torch.sigmoid(torch.randn(1, 5, 4, 4, generator=g))
    out = background_clean(S, torch.randn(1, 8, 4, 4, generator=g), torch.randn(1, 2, 16, generator=g),
                           torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=-1))
    assert out.min() >= S.min() - 1e-6 and out.max() <= S.max() + 1e-6


# ------------------------------------------------------------------ upsampling and the background channel

def test_upsample_align_corners_true():
    x = _t([[[[0.0, 1.0], [2.0, 3.0]]]])
    out = upsample_scores(x, (3, 3))
    np.testing.assert_allclose(out[0, 0].numpy(), [[0, 0.5, 1], [1, 1.5, 2], [2, 2.5, 3]], atol=1e-7)


def test_prepend_background_channel_and_ties():
    scores = _t([[[[0.55, 0.30, 0.70]], [[0.20, 0.55, 0.10]]]])   # [1, 2, 1, 3]
    out = prepend_background(scores, 0.55)
    assert out.shape == (1, 3, 1, 3)
    assert torch.equal(out[:, 1:], scores)
    assert torch.all(out[:, 0] == torch.tensor(0.55, dtype=torch.float32))
    labels = out.argmax(1)[0, 0].tolist()
    assert labels == [0, 0, 1], 'ties with the threshold go to the background (index 0)'
    assert prepend_background(scores.double(), 0.4).dtype == torch.float64


@pytest.mark.parametrize('threshold', [0.54, 0.55])
def test_background_iff_all_below_threshold(threshold):
    g = torch.Generator().manual_seed(4)
    scores = torch.rand(1, 4, 8, 8, generator=g) * 0.3 + 0.4
    labels = prepend_background(scores, threshold).argmax(1)
    assert torch.equal(labels == 0, scores.amax(1) <= threshold)   # every class at or below it
