"""DINOv3 checkpoints: recognise the layout, read the architecture, write random ones for tests.

Two layouts are read: timm's hosted ``model.safetensors`` (``reg_token``, ``blocks.N.gamma_1``, no
absolute position embedding: DINOv3 uses rotary embeddings) and Meta's original ``.pth``
(``storage_tokens``, ``ls1.gamma``, ``rope_embed.periods``), which timm's filter converts. The model
itself is timm's ``vit_{base,large}_patch16_dinov3`` (:class:`talk2dino_ros.model.backbone.DinoBackbone`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict

import torch

from talk2dino_ros import catalog
from talk2dino_ros.errors import CheckpointError
from talk2dino_ros.model.backbone_arch import BackboneArch, heads_for_width
from talk2dino_ros.model.checkpoints import StateDict, require_keys

PATCH_SIZE = 16
#: the base architecture a non-standard (test) width is built from
TEST_TIMM_NAME = 'vit_base_patch16_dinov3'


def is_dinov3_state_dict(sd: StateDict) -> bool:
    """True for a DINOv3 layout (timm or Meta); DINOv2 checkpoints always carry ``pos_embed``."""
    if 'storage_tokens' in sd:
        return True
    pw = sd.get('patch_embed.proj.weight')
    return 'pos_embed' not in sd and pw is not None and pw.ndim == 4 and tuple(pw.shape[-2:]) == (16, 16)


def _to_timm_keys(sd: StateDict) -> StateDict:
    """Meta's names -> timm's, for the keys the architecture is read from."""
    if 'storage_tokens' not in sd:
        return sd
    out = dict(sd)
    out['reg_token'] = sd['storage_tokens']
    return out


def without_zero_qkv_bias(sd: StateDict, path: os.PathLike | str) -> StateDict:
    """Drop the all-zero qkv biases of Meta's files (timm's model has none); refuse non-zero ones.

    timm's own filter would skip them silently, which is only right while they are zero.
    """
    biases = [k for k in sd if k.endswith('attn.qkv.bias')]
    if not biases:
        return sd
    nonzero = [k for k in biases if torch.count_nonzero(sd[k]) > 0]
    if nonzero:
        raise CheckpointError(f'DINOv3 file {path} has non-zero qkv biases ({nonzero[0]}, ...): not one of the '
                              'distilled LVD-1689M models this backbone is built for')
    return {k: v for k, v in sd.items() if k not in set(biases)}


def infer_dinov3_arch(sd: StateDict, path: os.PathLike | str):
    """Width/depth/heads of a DINOv3 state dict; variant is the catalog name or 'test'."""

    sd = _to_timm_keys(sd)
    require_keys(sd, ['cls_token', 'reg_token', 'patch_embed.proj.weight', 'norm.weight'], path, 'DINOv3')
    dim = int(sd['cls_token'].shape[-1])
    blocks = {int(m.group(1)) for k in sd for m in [re.match(r'blocks\.(\d+)\.', k)] if m}
    if not blocks:
        raise CheckpointError(f'DINOv3 file {path} has no transformer blocks (blocks.N.*)')
    depth = max(blocks) + 1
    pw = sd['patch_embed.proj.weight']
    if tuple(pw.shape[1:]) != (3, PATCH_SIZE, PATCH_SIZE) or int(pw.shape[0]) != dim:
        raise CheckpointError(f'DINOv3 file {path} has patch embedding {list(pw.shape)}; expected '
                              f'[{dim}, 3, 16, 16]')
    if int(sd['reg_token'].shape[-2]) != 4:
        raise CheckpointError(f'DINOv3 file {path} has {int(sd["reg_token"].shape[-2])} register tokens, expected 4')
    variant, timm_name = 'test', TEST_TIMM_NAME
    for name, b in catalog.backbones().items():
        if b.family == 'dinov3' and (b.embed_dim, b.depth) == (dim, depth):
            variant, timm_name = name, b.timm_name
    # the authors hard-code 12 heads for B and 16 for L: the 64-wide heads of the published models
    heads = heads_for_width(dim)
    if dim % heads or (dim // heads) % 4:
        raise CheckpointError(f'DINOv3 file {path} has width {dim}, which no rotary head layout divides')
    if int(sd['norm.weight'].shape[-1]) != dim:
        raise CheckpointError(f'DINOv3 file {path}: norm.weight {list(sd["norm.weight"].shape)} does not match '
                              f'width {dim}')
    return BackboneArch(variant, dim, depth, heads, family='dinov3', patch_size=PATCH_SIZE, timm_name=timm_name)


def dinov3_timm_state_dict(dim: int, depth: int, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Random weights with the keys/shapes of timm's ``vit_*_patch16_dinov3`` ``model.safetensors``."""
    import talk2dino_ros.model  # noqa: F401  (torchvision workaround before timm)
    import timm


    timm_name = next((b.timm_name for b in catalog.backbones().values()
                      if b.family == 'dinov3' and (b.embed_dim, b.depth) == (dim, depth)), TEST_TIMM_NAME)
    model = timm.create_model(timm_name, pretrained=False, num_classes=0, embed_dim=dim, depth=depth,
                              num_heads=heads_for_width(dim))
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, value in model.state_dict().items():
        shape = tuple(value.shape)
        if key.endswith(('gamma_1', 'gamma_2')):  # layer scale: small but far from the 1e-5 init
            t = 0.1 + torch.randn(shape, generator=g) * 0.05
        elif re.search(r'norm\d?\.weight$', key):
            t = 1 + torch.randn(shape, generator=g) * 0.1
        elif key in ('cls_token', 'reg_token'):
            t = torch.randn(shape, generator=g) * 0.5
        elif key.startswith('patch_embed.proj.weight'):
            t = torch.randn(shape, generator=g) * 0.05
        elif key.endswith('attn.qkv.weight'):
            t = torch.randn(shape, generator=g) * 0.1
        else:
            t = torch.randn(shape, generator=g) * 0.02
        sd[key] = t.contiguous()
    return sd


def write_dinov3_weights(dim: int, depth: int, seed: int, path: Path) -> None:
    """Write random DINOv3 weights as timm's hosted ``model.safetensors`` (flat, fp32)."""
    from safetensors.torch import save_file
    save_file(dinov3_timm_state_dict(dim, depth, seed), str(path))
