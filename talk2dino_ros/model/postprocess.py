"""Talk2DINO per-window post-processing: cosine/sigmoid scores, background cleaning, background channel."""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: weight of the attention map in background cleaning (the authors' ``lambda_bg`` default)
BG_CLEAN_LAMBDA = 0.2


def sigmoid_cosine_scores(features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """``sigmoid(cos(patch, text_n))``: features [B, D, h, w], unit text [N, D] -> [B, N, h, w]."""
    f = features / features.norm(dim=1, keepdim=True).clamp_min(1e-6)
    return torch.sigmoid(torch.einsum('bdhw,nd->bnhw', f, text))


def background_clean(scores: torch.Tensor, features: torch.Tensor, attn_logits: torch.Tensor,
                     text: torch.Tensor, lam: float = BG_CLEAN_LAMBDA) -> torch.Tensor:
    """Blend a per-class attention map into the scores (docs/method.md §5.3), per window.

    scores [B, N, h, w] (sigmoid), features [B, D, h, w] raw patch tokens, attn_logits [B, M, h*w]
    CLS->patch pre-softmax logits, text [N, D] unit embeddings. Min/max are global per window.
    """
    B, N, h, w = scores.shape
    feats = features.flatten(2)                                        # [B, D, P]
    P = feats.shape[-1]
    heads = torch.einsum('bmp,bdp->bmd', attn_logits, feats) / P       # logit-weighted mean of patches
    heads = heads / heads.norm(dim=-1, keepdim=True)
    weights = torch.softmax(torch.einsum('nd,bmd->bnm', text, heads), dim=-1)
    attn = torch.einsum('bnm,bmp->bnp', weights, attn_logits) / weights.sum(-1, keepdim=True)
    attn = torch.softmax(attn, dim=-1)
    a_min = attn.amin(dim=(1, 2), keepdim=True)
    a_max = attn.amax(dim=(1, 2), keepdim=True)
    attn = (attn - a_min) / torch.maximum(a_max, a_max - a_min)
    flat = scores.reshape(B, N, P)
    s_min = flat.amin(dim=(1, 2), keepdim=True)
    s_max = flat.amax(dim=(1, 2), keepdim=True)
    attn = attn * (s_max - s_min) + s_min
    return ((flat + lam * attn) / (1 + lam)).reshape(B, N, h, w)


def upsample_scores(scores: torch.Tensor, size) -> torch.Tensor:
    """Patch grid -> window pixels (bilinear, align_corners=True, as the reference)."""
    return F.interpolate(scores, size=tuple(size), mode='bilinear', align_corners=True)


def prepend_background(scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Constant background channel at index 0 (a pixel is background iff every class score < threshold)."""
    bg = torch.full_like(scores[:, :1], float(threshold))
    return torch.cat([bg, scores], dim=1)
