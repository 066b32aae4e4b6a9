"""Talk2DINO: DINOv2 patch tokens vs CLIP text projected by ψ (method.md §1-5)."""
from __future__ import annotations

import os
from typing import List, Mapping, Sequence

import torch
import torch.nn.functional as F

from talk2dino_ros.model.backbone import (PATCH_SIZE, DinoBackbone, build_dinov2_backbone, normalize_rgb255,
                                          resize_square)
from talk2dino_ros.model.methods.base import SegmentationMethod
from talk2dino_ros.model.pamr import pamr
from talk2dino_ros.model.postprocess import (background_clean, prepend_background, sigmoid_cosine_scores,
                                             upsample_scores)
from talk2dino_ros.model.projection import ProjectionHead, build_projection
from talk2dino_ros.model.text import TALK2DINO_TEMPLATES, ClipTextEncoder, build_clip_text_encoder, tokenize, \
    template_prompts
from talk2dino_ros.model.types import InferenceOptions

TEXT_CHUNK = 32  # prompts per CLIP forward, as the reference


class Talk2DINO(SegmentationMethod):
    """Frozen DINOv2-reg4 + CLIP ViT-B/16 text tower + ψ."""

    name = 'talk2dino'
    patch_size = PATCH_SIZE

    def __init__(self, backbone: DinoBackbone, text_encoder: ClipTextEncoder, projection: ProjectionHead,
                 window_size: int = 448):
        super().__init__()
        self.backbone = backbone
        self.text_encoder = text_encoder
        self.projection = projection
        self.window_size = window_size
        self.squash_to: int | None = None  # set by the segmenter for the authors' demo mode
        self.slide_square = True  # benchmark windows narrower than window_size are resized to it

    @property
    def variant(self) -> str:
        return self.backbone.arch.variant

    def encode_text(self, names: Sequence[str]) -> torch.Tensor:
        device = next(self.projection.parameters()).device
        prompts = template_prompts(names, TALK2DINO_TEMPLATES)
        tokens = tokenize(prompts).to(device)
        raw = torch.cat([self.text_encoder(tokens[i:i + TEXT_CHUNK]) for i in range(0, len(prompts), TEXT_CHUNK)])
        mean = raw.reshape(len(names), len(TALK2DINO_TEMPLATES), -1).mean(dim=1).float()
        return F.normalize(self.projection(mean).float(), dim=-1, eps=1e-6)

    def adds_background_channel(self, options: InferenceOptions) -> bool:
        return options.background

    def window_scores(self, windows: torch.Tensor, text: torch.Tensor, options: InferenceOptions) -> torch.Tensor:
        B, _, H, W = windows.shape
        ws = self.window_size
        # the reference resizes every slide window to 448² (an identity for full windows; it matters only
        # for the narrow windows of very elongated images); 'squash' is the authors' demo resize
        small = self.slide_square and (H < ws or W < ws)
        square = self.squash_to or (ws if small else None)
        x = resize_square(windows, square) if square else windows
        features, attn = self.backbone(normalize_rgb255(x))
        features = features.float()
        attn = attn.float()
        scores = sigmoid_cosine_scores(features, text)
        if options.bg_clean:
            scores = background_clean(scores, features, attn, text)
        # straight from the patch grid to the window's own size, then PAMR guided by the window itself
        scores = upsample_scores(scores, (H, W))
        if options.pamr:
            scores = pamr(windows.float(), scores, iterations=options.pamr_iterations,
                          dilations=options.pamr_dilations)
        if options.background:
            scores = prepend_background(scores, options.background_threshold)
        return scores


def build_talk2dino(weights: Mapping[str, os.PathLike | str], variant: str | None = None,
                    allow_test_width: bool = False) -> Talk2DINO:
    """Load the three published files (roles 'dinov2', 'clip', 'proj') into a Talk2DINO method."""
    backbone = build_dinov2_backbone(weights.get('dinov2'), expected_variant=variant,
                                     allow_test_width=allow_test_width)
    text = build_clip_text_encoder(weights.get('clip'), quick_gelu=True)
    proj = build_projection(weights.get('proj'), text_dim=text.embed_dim, dino_dim=backbone.embed_dim)
    return Talk2DINO(backbone, text, proj)
