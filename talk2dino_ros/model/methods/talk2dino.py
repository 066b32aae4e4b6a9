"""Talk2DINO: DINOv2 or DINOv3 patch tokens vs CLIP text projected by ψ."""
from __future__ import annotations

import os
from typing import List, Mapping, Sequence

import torch
import torch.nn.functional as F

from talk2dino_ros import catalog
from talk2dino_ros.model.backbone import PATCH_SIZE, DinoBackbone, build_backbone, normalize_rgb255, resize_square
from talk2dino_ros.model.methods.base import SegmentationMethod, WindowScores
from talk2dino_ros.model.pamr import PamrRefiner
from talk2dino_ros.model.postprocess import background_clean, sigmoid_cosine_scores, upsample_scores
from talk2dino_ros.model.projection import ProjectionHead, build_projection
from talk2dino_ros.model.text import TALK2DINO_TEMPLATES, ClipTextEncoder, build_clip_text_encoder, tokenize, \
    template_prompts
from talk2dino_ros.model.types import InferenceOptions

TEXT_CHUNK = 32  # prompts per CLIP forward, as the reference


class Talk2DINO(SegmentationMethod):
    """Frozen DINOv2-reg4 or DINOv3 + CLIP ViT-B/16 text tower + ψ."""

    name = 'talk2dino'
    fast_path_module = 'backbone'
    patch_size = PATCH_SIZE

    def __init__(self, backbone: DinoBackbone, text_encoder: ClipTextEncoder, projection: ProjectionHead,
                 window_size: int = 448):
        super().__init__()
        self.backbone = backbone
        self.patch_size = backbone.patch_size  # 14 (DINOv2) or 16 (DINOv3)
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
        stages = self.window_stages(windows, text, options)
        return stages.render(0, stages.channels)

    def window_stages(self, windows: torch.Tensor, text: torch.Tensor,
                      options: InferenceOptions) -> '_Talk2DinoWindowScores':
        """Backbone, patch-grid scores and cleaning for all classes; upsampling and PAMR per channel range."""
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
        if options.bg_clean:  # couples the classes (global min/max): done on the small patch grid
            scores = background_clean(scores, features, attn, text)
        return _Talk2DinoWindowScores(scores, windows, options)


class _Talk2DinoWindowScores(WindowScores):
    """Grid scores [B, N, gh, gw] -> window maps: straight from the patch grid to the window's own size,
    then PAMR guided by the window itself; the constant background channel first when asked for."""

    def __init__(self, grid: torch.Tensor, windows: torch.Tensor, options: InferenceOptions):
        self.grid = grid
        self.size = tuple(windows.shape[-2:])
        self.options = options
        self.offset = 1 if options.background else 0
        self.channels = int(grid.shape[1]) + self.offset
        self.refiner = (PamrRefiner(windows.float(), options.pamr_iterations, options.pamr_dilations)
                        if options.pamr else None)

    def render(self, start: int, stop: int) -> torch.Tensor:
        parts = []
        lo, hi = max(start - self.offset, 0), stop - self.offset
        if hi > lo:
            scores = upsample_scores(self.grid[:, lo:hi], self.size)
            if self.refiner is not None:
                scores = self.refiner(scores)
                if hi >= self.channels - self.offset:  # the last classes: free the affinity now
                    self.refiner.release()
            parts.append(scores)
        if self.offset and start == 0 and stop > 0:
            B = self.grid.shape[0]
            bg = torch.full((B, 1) + self.size, float(self.options.background_threshold),
                            dtype=self.grid.dtype, device=self.grid.device)
            parts.insert(0, bg)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def build_talk2dino(weights: Mapping[str, os.PathLike | str], variant: str | None = None,
                    allow_test_width: bool = False) -> Talk2DINO:
    """Load the three published files of ``variant`` (roles 'dinov2' or 'dinov3', 'clip', 'proj')."""
    entry = catalog.get_method('talk2dino').variant(variant) if variant else None
    role = entry.backbone.family if entry is not None else 'dinov2'
    backbone = build_backbone(weights.get(role), expected_variant=variant, allow_test_width=allow_test_width)
    text = build_clip_text_encoder(weights.get('clip'), quick_gelu=True)
    proj = build_projection(weights.get('proj'), text_dim=text.embed_dim, dino_dim=backbone.embed_dim)
    method = Talk2DINO(backbone, text, proj)
    # the published CLIP ViT-B/16 text tower is 512 wide; anything else came from make_random_weights
    method.test_width = backbone.arch.variant == 'test' or (text.width, text.embed_dim) != (512, 512)
    return method
