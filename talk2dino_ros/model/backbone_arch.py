"""The shape of a DINO backbone as read from its checkpoint (shared by the DINOv2 and DINOv3 loaders)."""
from __future__ import annotations

from dataclasses import dataclass

#: DINOv2's patch size (DINOv3 uses 16 and says so in its arch)
DINOV2_PATCH_SIZE = 14


@dataclass(frozen=True)
class BackboneArch:
    """Shape of a DINOv2 or DINOv3 backbone (CLS + 4 registers) as read from a checkpoint."""

    variant: str  # a catalog variant ('vitb', 'dinov3_vitl', ...) or 'test' (random test weights only)
    embed_dim: int
    depth: int
    num_heads: int
    family: str = 'dinov2'        # 'dinov2' | 'dinov3' (also the weight role of its file)
    patch_size: int = DINOV2_PATCH_SIZE
    timm_name: str = ''           # '' = the DINOv2 model of this variant


def heads_for_width(dim: int) -> int:
    """Attention heads of a width: published DINO models use 64-wide heads, tiny test models 16-wide."""
    return dim // 64 if dim >= 384 else max(1, dim // 16)
