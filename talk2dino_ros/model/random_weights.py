"""Random checkpoints in the exact published formats, for tests and smoke runs (never real results).

``tiny`` widths keep the published key layouts but shrink widths/depths so tests run in seconds; the
loaders recognise these non-standard widths and refuse them unless ``allow_random_weights`` is set.
``full`` writes published-size random files (hundreds of MB) for speed benchmarks.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Dict, Optional

import torch

import talk2dino_ros.model  # noqa: F401
import open_clip

from talk2dino_ros import catalog
from talk2dino_ros.atomic_files import atomic_path, atomic_torch_save
from talk2dino_ros.model.dinov3 import write_dinov3_weights
from talk2dino_ros.model.segmenter import SegmenterConfig
from talk2dino_ros.model.types import InferenceOptions

#: width preset -> (backbone dim, depth) ; (clip text width, layers, embed dim) ; (vision width, layers, patch).
#: 'tiny' keeps every layout at test widths; every catalog variant name writes its published size.
_TEXT, _VISION = (512, 12, 512), (768, 12, 16)
WIDTHS = {
    'tiny': dict(dino=(64, 2), text=(64, 2, 32), vision=(64, 2, 16)),
    **{name: dict(dino=(b.embed_dim, b.depth), text=_TEXT, vision=_VISION) for name, b in catalog.backbones().items()},
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def dinov2_official_state_dict(dim: int, depth: int, seed: int = 0) -> Dict[str, torch.Tensor]:
    """A state dict with the keys/shapes of ``dinov2_vit?14_reg4_pretrain.pth`` (random values)."""
    g = _gen(seed)

    def rnd(*shape, std=0.02):
        return torch.randn(*shape, generator=g) * std

    sd = {
        'cls_token': rnd(1, 1, dim, std=0.5),
        'pos_embed': rnd(1, 1 + 37 * 37, dim, std=0.1),
        'register_tokens': rnd(1, 4, dim, std=0.5),
        'mask_token': torch.zeros(1, dim),
        'patch_embed.proj.weight': rnd(dim, 3, 14, 14, std=0.05),
        'patch_embed.proj.bias': rnd(dim),
    }
    for i in range(depth):
        p = f'blocks.{i}.'
        sd.update({
            p + 'norm1.weight': 1 + rnd(dim, std=0.1), p + 'norm1.bias': rnd(dim),
            p + 'attn.qkv.weight': rnd(3 * dim, dim, std=0.1), p + 'attn.qkv.bias': rnd(3 * dim),
            p + 'attn.proj.weight': rnd(dim, dim), p + 'attn.proj.bias': rnd(dim),
            p + 'ls1.gamma': 0.1 + rnd(dim, std=0.05),
            p + 'norm2.weight': 1 + rnd(dim, std=0.1), p + 'norm2.bias': rnd(dim),
            p + 'mlp.fc1.weight': rnd(4 * dim, dim), p + 'mlp.fc1.bias': rnd(4 * dim),
            p + 'mlp.fc2.weight': rnd(dim, 4 * dim), p + 'mlp.fc2.bias': rnd(dim),
            p + 'ls2.gamma': 0.1 + rnd(dim, std=0.05),
        })
    sd['norm.weight'] = 1 + rnd(dim, std=0.1)
    sd['norm.bias'] = rnd(dim)
    return sd


def clip_state_dict(text_width: int, text_layers: int, embed_dim: int, vision_width: int, vision_layers: int,
                    patch: int = 16, quick_gelu: bool = True, seed: int = 0) -> Dict[str, torch.Tensor]:
    """A full CLIP (visual + text) state dict in the OpenAI / open_clip key layout (random init)."""
    torch.manual_seed(seed)
    model = open_clip.model.CLIP(
        embed_dim=embed_dim,
        vision_cfg=dict(image_size=224, layers=vision_layers, width=vision_width, patch_size=patch,
                        head_width=min(64, vision_width // 2)),
        text_cfg=dict(context_length=77, vocab_size=49408, width=text_width,
                      heads=max(1, text_width // 64), layers=text_layers),
        quick_gelu=quick_gelu)
    # open_clip zero-initialises a few tensors; give them values so tests see real computation
    with torch.no_grad():
        model.text_projection.normal_(0, text_width ** -0.5, generator=_gen(seed + 1))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class _Container(torch.nn.Module):
    """TorchScript-able container that only carries named tensors (mimics OpenAI's JIT archive)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def save_torchscript_state_dict(sd: Dict[str, torch.Tensor], path: Path) -> None:
    """Save tensors as a TorchScript archive whose ``state_dict()`` has exactly these keys."""
    root = _Container()
    for key, t in sd.items():
        mod = root
        parts = key.split('.')
        for part in parts[:-1]:
            if not hasattr(mod, part):
                mod.add_module(part, _Container())
            mod = getattr(mod, part)
        mod.register_parameter(parts[-1], torch.nn.Parameter(t.clone(), requires_grad=False))
    with atomic_path(path) as tmp:
        torch.jit.script(root).save(str(tmp))


def openai_dtypes(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Cast like OpenAI's ``convert_weights``: matrices/projections fp16, norms and embeddings fp32."""
    out = {}
    for k, v in sd.items():
        half = (v.ndim >= 2 and 'embedding' not in k and k not in ('visual.class_embedding',)) \
            or k.endswith(('in_proj_bias', 'c_fc.bias', 'c_proj.bias', 'out_proj.bias'))
        half = half and not k.startswith(('positional_embedding', 'visual.positional_embedding'))
        out[k] = v.half() if half else v
    return out


def projection_state_dict(text_dim: int, dino_dim: int, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Talk2DINO ψ layout: ``linear_layer`` (text->D) and ``hidden_layers.0`` (D->D), fp32."""
    from collections import OrderedDict
    g = _gen(seed)
    return OrderedDict([
        ('linear_layer.weight', torch.randn(dino_dim, text_dim, generator=g) * text_dim ** -0.5),
        ('linear_layer.bias', torch.randn(dino_dim, generator=g) * 0.05),
        ('hidden_layers.0.weight', torch.randn(dino_dim, dino_dim, generator=g) * dino_dim ** -0.5),
        ('hidden_layers.0.bias', torch.randn(dino_dim, generator=g) * 0.05),
    ])


def write_talk2dino_weights(out_dir: Path, width: str = 'tiny', seed: int = 0,
                            clip_format: str = 'torchscript', variant: Optional[str] = None) -> Dict[str, Path]:
    """Write the Talk2DINO files of ``variant`` under their catalog names.

    ``variant`` defaults to ``width`` when that names a variant, else to the default variant; ``clip_format``:
    'torchscript' (OpenAI release) or 'state_dict'.
    """
    spec = catalog.get_method('talk2dino')
    variant = variant or (width if width in spec.variant_names else spec.default_variant)
    entry = spec.variant(variant)
    w = WIDTHS[width]
    dim, depth = w['dino']
    tw, tl, te = w['text']
    vw, vl, vp = w['vision']
    paths = {role: out_dir / name for role, name in entry.files.items()}
    backbone_role = entry.backbone.family
    BACKBONE_WRITERS[backbone_role](dim, depth, seed, paths[backbone_role])
    clip_sd = openai_dtypes(clip_state_dict(tw, tl, te, vw, vl, vp, quick_gelu=True, seed=seed))
    if clip_format == 'torchscript':
        save_torchscript_state_dict(clip_sd, paths['clip'])
    else:
        atomic_torch_save(clip_sd, paths['clip'])
    atomic_torch_save(projection_state_dict(te, dim, seed), paths['proj'])
    return paths


def _write_dinov2(dim: int, depth: int, seed: int, path: Path) -> None:
    atomic_torch_save(dinov2_official_state_dict(dim, depth, seed), path)


#: backbone family -> writer(dim, depth, seed, path) in that family's published format
BACKBONE_WRITERS: Dict[str, Callable[[int, int, int, Path], None]] = {'dinov2': _write_dinov2,
                                                                      'dinov3': write_dinov3_weights}


#: method -> writer(out_dir, width, seed) ; CLIP-DINOiser registers its writer in its own module
WRITERS: Dict[str, Callable[..., Dict[str, Path]]] = {'talk2dino': write_talk2dino_weights}


def write_random_weights(out_dir, method: str = 'talk2dino', width: str = 'tiny', seed: int = 0,
                         **kwargs) -> Dict[str, Path]:
    """Write random checkpoints for ``method`` into ``out_dir``; returns role -> path.

    ``variant=`` (Talk2DINO) picks the backbone whose layout is written; the files get the catalog's names.
    """
    if width not in WIDTHS:
        raise ValueError(f'width must be one of {sorted(WIDTHS)}')
    if method not in catalog.METHODS:
        raise ValueError(f'unknown method {method!r}; choose one of {", ".join(catalog.METHODS)}')
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if method not in WRITERS:
        # importing the method module registers its writer
        from talk2dino_ros.model.methods import get_builder
        get_builder(method)
    if method not in WRITERS:
        raise ValueError(f'no random-weights writer for method {method!r}')
    if not catalog.get_method(method).has_variants:
        kwargs.pop('variant', None)  # single-backbone methods have nothing to choose (None included)
    return WRITERS[method](out, width=width, seed=seed, **kwargs)


def tiny_segmenter_config(paths: Dict[str, Path], method: str = 'talk2dino',
                          options: Optional[InferenceOptions] = None, **overrides) -> SegmenterConfig:
    """A CPU SegmenterConfig over random test weights (``allow_random_weights=True``)."""
    cfg = SegmenterConfig(method=method, weights={k: str(v) for k, v in paths.items()}, device='cpu',
                          allow_random_weights=True, options=options or InferenceOptions())
    return dataclasses.replace(cfg, **overrides)
