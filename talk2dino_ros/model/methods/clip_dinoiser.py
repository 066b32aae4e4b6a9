"""CLIP-DINOiser (Wysoczańska et al., ECCV 2024): MaskCLIP features refined by learned patch correlations.

Implements CLIP-DINOiser (docs/method.md §6) on open_clip 3.x:
* text: 80 ImageNet templates per name, each prompt embedding L2-normalised, mean, re-normalised (§6.1);
* image: pad to a multiple of 16 *before* CLIP normalisation, MaskCLIP dense features (§6.2),
  ``obj_proj`` correlations with entries < γ = 0.2 set to 0, correlation-weighted pooling (+1e-6),
  ``softmax(100 · cos)`` (§6.3); the window map is resized bilinearly to the window size (for a window that
  is not a multiple of 16 this squeezes the padded grid into it, as the authors' evaluation does, §6.5);
* background (§6.4): with ``options.background`` the text class 'background' is class 0; with
  ``options.background_rule`` also on, patches that are not salient (sigmoid(bkg_decoder) <= 0.5) and whose
  top probability is < δ = 0.99 get background probability 1.0 (no renormalisation). Context-60 keeps
  'background' as a plain text class (``background_rule=False``).

Differences from the authors' code, all deliberate:
* the windows of one image go through the CLIP backbone as one batch (the authors assume batch 1); the
  steps after it run per window, so the results equal one-window-at-a-time runs;
* class embeddings are computed on the model's device in fp32 (the authors: always on CPU in fp32);
* with ``fp16`` on CUDA only the CLIP backbone runs under autocast; correlations, thresholds, pooling and
  scores stay fp32 (the authors are fp32 throughout);
* ``bg_clean`` and ``pamr`` are Talk2DINO options: CLIP-DINOiser has no such steps and ignores them.
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

import talk2dino_ros.model  # noqa: F401  (torchvision workaround before open_clip)
import open_clip
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from talk2dino_ros import catalog
from talk2dino_ros.atomic_files import atomic_torch_save
from talk2dino_ros.class_names import is_background
from talk2dino_ros.model import random_weights
from talk2dino_ros.model.backbone import resize_square
from talk2dino_ros.model.checkpoints import StateDict, describe_shapes, load_state_dict_file, malformed_checkpoint
from talk2dino_ros.model.clip_visual import MaskClipFeatures, normalize_clip, pad_to_multiple, token_map
from talk2dino_ros.errors import CheckpointError, InputError, RandomWeightsRefused
from talk2dino_ros.model.methods.base import SegmentationMethod, WindowScores
from talk2dino_ros.model.text import encode_eot, template_prompts, tokenize
from talk2dino_ros.model.types import BACKGROUND, InferenceOptions

#: the 80 OpenAI ImageNet prompt templates, as format strings, in the published order
IMAGENET_TEMPLATES = tuple(t('{}') for t in OPENAI_IMAGENET_TEMPLATES)
PATCH_SIZE = 16
GAMMA = 0.2          # correlations strictly below are set to 0
DELTA = 0.99         # top probability strictly below = uncertain
TEMPERATURE = 100.0  # hard-coded in the reference (logit_scale is not used)
POOL_EPS = 1e-6
HEAD_KEYS = ('obj_proj.weight', 'obj_proj.bias', 'bkg_decoder.weight', 'bkg_decoder.bias')

#: the published architecture: open_clip ViT-B-16 (GELU) and obj_proj with 256 output channels
STANDARD = dict(vision_width=768, vision_layers=12, patch=16, grid=14, embed_dim=512, text_width=512,
                text_layers=12, proj_dim=256)


# ------------------------------------------------------------------------------------------ scoring steps
def patch_correlations(proj_feats: torch.Tensor) -> torch.Tensor:
    """[B, D, h, w] obj_proj output -> [B, P, h, w] cosine correlations (query patch first; no eps)."""
    B, D, h, w = proj_feats.shape
    p = proj_feats.reshape(B, D, -1)
    p = p / p.norm(dim=1, keepdim=True)
    return torch.matmul(p.permute(0, 2, 1), p).reshape(B, h * w, h, w)


def threshold_correlations(corrs: torch.Tensor, gamma: float = GAMMA) -> torch.Tensor:
    """Entries strictly below ``gamma`` become 0 (negatives too; exactly ``gamma`` is kept)."""
    return torch.where(corrs < gamma, torch.zeros((), dtype=corrs.dtype, device=corrs.device), corrs)


def guided_pool(feats: torch.Tensor, corrs: torch.Tensor, eps: float = POOL_EPS) -> torch.Tensor:
    """pooled_n = Σ_m C_nm F_m / (Σ_m C_nm + eps). ``feats`` [B, C, h, w], ``corrs`` [B, P, h, w] -> [B, C, h, w]."""
    B, C, h, w = feats.shape
    pooled = torch.einsum('bnij,bcij->bcn', corrs, feats)
    norm = corrs.flatten(-2, -1).sum(dim=-1)[:, None]
    return (pooled / (norm + eps)).reshape(B, C, h, w)


def class_probabilities(feats: torch.Tensor, text: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """softmax over classes of ``temperature · cos(feature, class embedding)`` -> [B, K, h, w]."""
    f = feats / feats.norm(dim=1, keepdim=True)
    cos = F.conv2d(f, text[:, :, None, None].to(f.dtype))
    return F.softmax(cos * temperature, dim=1)


def apply_background_rule(probs: torch.Tensor, bkg_logits: torch.Tensor, delta: float = DELTA) -> torch.Tensor:
    """Set class 0 to 1.0 where the patch is not salient (sigmoid <= 0.5) and max prob < ``delta``.

    ``probs`` [B, K, h, w] (class 0 = 'background'), ``bkg_logits`` [B, 1, h, w]. Other classes keep
    their values; nothing is renormalised (as the reference).
    """
    salient = torch.sigmoid(bkg_logits.float()) > 0.5
    uncertain = probs.max(dim=1, keepdim=True)[0] < delta
    reset = uncertain & ~salient
    background = torch.where(reset, torch.ones((), dtype=probs.dtype, device=probs.device), probs[:, :1])
    return torch.cat([background, probs[:, 1:]], dim=1)


# ------------------------------------------------------------------------------------------ the method
class ClipDinoiser(SegmentationMethod):
    """Frozen open_clip ViT-B/16 (LAION-2B, GELU) + CLIP-DINOiser's ``obj_proj`` and ``bkg_decoder``."""

    name = 'clip_dinoiser'
    fast_path_module = 'features'
    patch_size = PATCH_SIZE

    def __init__(self, clip: torch.nn.Module, obj_proj: torch.nn.Conv2d, bkg_decoder: torch.nn.Conv2d,
                 gamma: float = GAMMA, delta: float = DELTA):
        super().__init__()
        self.clip = clip
        self.features = MaskClipFeatures(clip.visual)
        self.obj_proj = obj_proj
        self.bkg_decoder = bkg_decoder
        self.gamma = gamma
        self.delta = delta
        self.squash_to: Optional[int] = None  # set by the segmenter in 'squash' mode

    # ---------------------------------------------------------------- text
    def text_names(self, names: Sequence[str], background: bool) -> List[str]:
        """'background' is a text class here: prepended as class 0 when the background is on."""
        names = list(names)
        if background:
            # every spelling the tokenizer reads as 'background' (BACKGROUND, &#98;ackground, ...)
            reserved = [n for n in names if is_background(n)]
            if reserved:
                raise InputError(f"'{BACKGROUND}' is added as class 0 automatically when the background is on; "
                                 f'remove {ascii(reserved[0])} from the vocabulary')
            return [BACKGROUND] + names
        return names

    def encode_text(self, names: Sequence[str]) -> torch.Tensor:
        """[len(names), E] class embeddings, fp32; each name's 80 prompts go through the tower as one batch."""
        device = self.clip.token_embedding.weight.device
        means = []
        for name in names:
            tokens = tokenize(template_prompts([name], IMAGENET_TEMPLATES)).to(device)
            emb = encode_eot(self.clip, tokens).float()
            emb = emb / emb.norm(dim=-1, keepdim=True)
            means.append(emb.mean(dim=0))
        if not means:
            return torch.empty(0, self.features.embed_dim, device=device)
        stacked = torch.stack(means)
        return stacked / stacked.norm(dim=-1, keepdim=True)

    # ---------------------------------------------------------------- image
    def window_scores(self, windows: torch.Tensor, text: torch.Tensor, options: InferenceOptions) -> torch.Tensor:
        """[B, K, h, w] probabilities: the grid map resized bilinearly to the window (the reference's
        ``encode_decode``; for a window that is not a multiple of 16 the padded grid is squeezed in)."""
        stages = self.window_stages(windows, text, options)
        return stages.render(0, stages.channels)

    def window_stages(self, windows: torch.Tensor, text: torch.Tensor,
                      options: InferenceOptions) -> '_GridWindowScores':
        """Grid probabilities for all classes (softmax couples them); resizing per channel range."""
        B, _, H, W = windows.shape
        x = windows
        if self.squash_to is not None and (H, W) != (self.squash_to, self.squash_to):
            x = resize_square(x, self.squash_to)
        return _GridWindowScores(self.grid_scores(x, text, options), tuple(x.shape[-2:]), (H, W))

    def grid_scores(self, windows: torch.Tensor, text: torch.Tensor, options: InferenceOptions) -> torch.Tensor:
        """Patch-grid probabilities [B, K, ⌈h/16⌉, ⌈w/16⌉] for RGB 0..255 windows (§6.2-§6.4)."""
        B = windows.shape[0]
        # pad in [0, 1] pixel space, then normalise: padded pixels become -mean/std, as the reference
        x = normalize_clip(pad_to_multiple(windows / 255.0, PATCH_SIZE))
        dense, inter = self.features(x)
        h, w = dense.shape[-2:]
        rule = options.background and options.background_rule
        # everything after the backbone stays fp32 (three hard thresholds follow) and runs one window at a
        # time on the reference's batch-1 memory layout: otherwise other conv kernels are picked, and
        # ~1e-6 differences, amplified by the temperature 100, break bit-exactness with the reference
        with torch.autocast(device_type=x.device.type, enabled=False):
            text = text.float()
            return torch.cat([self._head(dense[i:i + 1].float(), token_map(inter[i:i + 1].float(), h, w),
                                         text, rule) for i in range(B)])

    def _head(self, dense: torch.Tensor, inter: torch.Tensor, text: torch.Tensor, rule: bool) -> torch.Tensor:
        """§6.3-§6.4 on one window's grid: correlations, γ, guided pooling, scores, background rule."""
        corrs = threshold_correlations(patch_correlations(self.obj_proj(inter)), self.gamma)
        probs = class_probabilities(guided_pool(dense, corrs), text)
        if rule:
            bkg = self.bkg_decoder(inter / inter.norm(dim=1, keepdim=True))
            probs = apply_background_rule(probs, bkg, self.delta)
        return probs


class _GridWindowScores(WindowScores):
    """Patch-grid probabilities resized to the (squashed) input size, then to the window's size."""

    def __init__(self, grid: torch.Tensor, input_size, size):
        self.grid = grid
        self.input_size = tuple(input_size)
        self.size = tuple(size)
        self.channels = int(grid.shape[1])

    def render(self, start: int, stop: int) -> torch.Tensor:
        with torch.autocast(device_type=self.grid.device.type, enabled=False):
            probs = F.interpolate(self.grid[:, start:stop], size=self.input_size, mode='bilinear',
                                  align_corners=False)
            if self.input_size != self.size:
                probs = F.interpolate(probs, size=self.size, mode='bilinear', align_corners=False)
        return probs


# ------------------------------------------------------------------------------------------ loading
def _block_count(sd: StateDict, prefix: str) -> int:
    ids = {int(m.group(1)) for k in sd for m in [re.match(re.escape(prefix) + r'(\d+)\.', k)] if m}
    return max(ids) + 1 if ids else 0


def _shape_error(path, what: str, key: str, got, expected) -> CheckpointError:
    return CheckpointError(f'{what} file {path} has {key} {list(got)}, expected {list(expected)}')


def _build_openclip(path: os.PathLike | str, allow_test_width: bool) -> tuple[torch.nn.Module, bool]:
    """open_clip CLIP (GELU) from a plain / safetensors / ``state_dict``-wrapped file, loaded strictly.

    Returns the model and whether its widths are the published ViT-B-16's.
    """
    what = 'OpenCLIP'
    sd = load_state_dict_file(path, what)
    needed = ('visual.conv1.weight', 'visual.positional_embedding', 'visual.proj', 'visual.ln_post.weight',
              'token_embedding.weight', 'positional_embedding', 'text_projection', 'ln_final.weight')
    missing = [k for k in needed if k not in sd]
    if missing:
        hint = ''
        if any(k.startswith('obj_proj.') for k in sd):
            hint = ' (this looks like the CLIP-DINOiser last.pt; pass it as the clip_dinoiser file)'
        elif 'visual.transformer.resblocks.0.attn.in_proj_weight' not in sd:
            hint = ' (not an open_clip ViT checkpoint)'
        raise CheckpointError(f'{what} file {path} is not an open_clip CLIP checkpoint: missing keys '
                              f'{", ".join(missing[:5])}{hint}')
    conv = sd['visual.conv1.weight']
    vision_width, patch = int(conv.shape[0]), int(conv.shape[-1])
    n_pos = int(sd['visual.positional_embedding'].shape[0]) - 1
    grid = int(round(n_pos ** 0.5))
    if grid * grid != n_pos or conv.ndim != 4 or conv.shape[1] != 3:
        raise CheckpointError(f'{what} file {path} has an unsupported vision tower: '
                              f'{describe_shapes(sd, ["visual.conv1.weight", "visual.positional_embedding"])}')
    vision_layers = _block_count(sd, 'visual.transformer.resblocks.')
    text_layers = _block_count(sd, 'transformer.resblocks.')
    text_width = int(sd['ln_final.weight'].shape[0])
    embed_dim = int(sd['text_projection'].shape[1])
    mlp = sd.get('visual.transformer.resblocks.0.mlp.c_fc.weight')
    mlp_ratio = mlp.shape[0] / vision_width if mlp is not None else 4.0
    dims = dict(vision_width=vision_width, vision_layers=vision_layers, patch=patch, grid=grid,
                embed_dim=embed_dim, text_width=text_width, text_layers=text_layers)
    standard = all(STANDARD[k] == v for k, v in dims.items())
    if not standard and not allow_test_width:
        raise RandomWeightsRefused(f'{what} file {path} is not the ViT-B-16 architecture CLIP-DINOiser uses '
                                   f'({", ".join(f"{k} {v}" for k, v in dims.items())}); a non-standard width '
                                   'is a random test model')
    if vision_layers < 3:
        raise CheckpointError(f'{what} file {path} has {vision_layers} vision blocks; CLIP-DINOiser needs >= 3')
    larger = [f'{k} {v}' for k, v in dims.items() if k != 'patch' and v > STANDARD[k]]
    if larger:  # a test model is smaller than the published one: bound what the file can make us build
        raise CheckpointError(f'{what} file {path} declares {", ".join(larger)}: larger than the ViT-B-16 '
                              'CLIP-DINOiser uses')

    def build() -> torch.nn.Module:
        return open_clip.model.CLIP(
            embed_dim=embed_dim,
            vision_cfg=dict(image_size=grid * patch, layers=vision_layers, width=vision_width, patch_size=patch,
                            head_width=min(64, vision_width // 2), mlp_ratio=mlp_ratio),
            text_cfg=dict(context_length=int(sd['positional_embedding'].shape[0]), vocab_size=int(
                sd['token_embedding.weight'].shape[0]), width=text_width, heads=max(1, text_width // 64),
                layers=text_layers),
            quick_gelu=False)  # LAION weights were trained with exact GELU (QuickGELU would silently shift them)

    with torch.device('meta'):  # shapes only: nothing is allocated until the file fits
        expected = build().state_dict()
    bad_shapes = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    unexpected = [k for k in sd if k not in expected]
    absent = [k for k in expected if k not in sd]
    if bad_shapes or unexpected or absent:
        parts = []
        if absent:
            parts.append(f'missing {absent[:4]}')
        if unexpected:
            parts.append(f'unexpected {unexpected[:4]}')
        if bad_shapes:
            parts.append('wrong shapes ' + ', '.join(
                f'{k}{list(sd[k].shape)} (expected {list(expected[k].shape)})' for k in bad_shapes[:3]))
        raise CheckpointError(f'{what} file {path} does not match the open_clip ViT layout: {"; ".join(parts)}')
    model = build()
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    return model, standard


def _load_head(path: os.PathLike | str, vision_width: int, allow_test_width: bool
               ) -> tuple[torch.nn.Conv2d, torch.nn.Conv2d]:
    """``last.pt`` -> (obj_proj 3×3 replicate-padded conv, bkg_decoder 1×1 conv), shapes checked."""
    what = 'CLIP-DINOiser'
    sd = load_state_dict_file(path, what)
    missing = [k for k in HEAD_KEYS if k not in sd]
    unexpected = [k for k in sd if k not in HEAD_KEYS]
    if missing or unexpected:
        hint = ' (this looks like an open_clip checkpoint; pass it as the openclip file)' \
            if any(k.startswith('visual.') for k in sd) else ''
        raise CheckpointError(f'{what} file {path} is not a CLIP-DINOiser last.pt (model_state_dict with '
                              f'{", ".join(HEAD_KEYS)}): missing {missing}, unexpected {unexpected[:4]}{hint}')
    ow = sd['obj_proj.weight']
    if ow.ndim != 4 or tuple(ow.shape[1:]) != (vision_width, 3, 3):
        raise _shape_error(path, what, 'obj_proj.weight', ow.shape, ['D', vision_width, 3, 3])
    dim = int(ow.shape[0])
    expected = {'obj_proj.bias': (dim,), 'bkg_decoder.weight': (1, vision_width, 1, 1), 'bkg_decoder.bias': (1,)}
    for key, shape in expected.items():
        if tuple(sd[key].shape) != shape:
            raise _shape_error(path, what, key, sd[key].shape, shape)
    if dim != STANDARD['proj_dim'] and not allow_test_width:
        raise RandomWeightsRefused(f'{what} file {path} has obj_proj with {dim} output channels, expected '
                                   f'{STANDARD["proj_dim"]}; a non-standard width is a random test model')
    obj_proj = torch.nn.Conv2d(vision_width, dim, 3, padding=1, padding_mode='replicate')
    bkg_decoder = torch.nn.Conv2d(vision_width, 1, 1)
    obj_proj.load_state_dict({'weight': ow.float(), 'bias': sd['obj_proj.bias'].float()})
    bkg_decoder.load_state_dict({'weight': sd['bkg_decoder.weight'].float(), 'bias': sd['bkg_decoder.bias'].float()})
    return obj_proj, bkg_decoder


def build_clip_dinoiser(weights: Mapping[str, os.PathLike | str], variant: Optional[str] = None,
                        allow_test_width: bool = False) -> ClipDinoiser:
    """Load roles 'openclip' (LAION ViT-B-16 open_clip checkpoint) and 'clip_dinoiser' (``last.pt``).

    ``variant`` is ignored: CLIP-DINOiser is published for ViT-B/16 only.
    """
    with malformed_checkpoint(weights.get('openclip'), 'OpenCLIP'):
        clip, standard = _build_openclip(weights.get('openclip'), allow_test_width)
    width = int(clip.visual.conv1.out_channels)
    with malformed_checkpoint(weights.get('clip_dinoiser'), 'CLIP-DINOiser'):
        obj_proj, bkg_decoder = _load_head(weights.get('clip_dinoiser'), width, allow_test_width)
    method = ClipDinoiser(clip, obj_proj, bkg_decoder).eval().requires_grad_(False)
    method.test_width = not standard or int(obj_proj.out_channels) != STANDARD['proj_dim']
    return method


# ------------------------------------------------------------------------------------------ random weights
def write_clip_dinoiser_weights(out_dir, width: str = 'tiny', seed: int = 0) -> Dict[str, Path]:
    """Random files in the published layouts: 'openclip' (plain open_clip state dict, GELU ViT-B-16 keys)
    and 'clip_dinoiser' (``{'epoch', 'model_state_dict'}``). ``tiny``: vision width 64 with 3 blocks (the
    method reads block depth-3), text width 64; any other width writes the published sizes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if width == 'tiny':
        tw, tl, te, vw, vl, proj_dim = 64, 2, 32, 64, 3, 16
    else:
        s = STANDARD
        tw, tl, te, vw, vl, proj_dim = (s['text_width'], s['text_layers'], s['embed_dim'], s['vision_width'],
                                        s['vision_layers'], s['proj_dim'])
    paths = {role: out / name for role, name in catalog.get_variant('clip_dinoiser').files.items()}
    atomic_torch_save(random_weights.clip_state_dict(tw, tl, te, vw, vl, PATCH_SIZE, quick_gelu=False, seed=seed),
                      paths['openclip'])
    g = torch.Generator().manual_seed(seed + 7)
    head = OrderedDict([
        ('obj_proj.bias', torch.randn(proj_dim, generator=g) * 0.02),
        ('obj_proj.weight', torch.randn(proj_dim, vw, 3, 3, generator=g) * (9 * vw) ** -0.5),
        ('bkg_decoder.bias', torch.randn(1, generator=g) * 0.1),
        ('bkg_decoder.weight', torch.randn(1, vw, 1, 1, generator=g) * 2.0),
    ])
    atomic_torch_save({'epoch': 0, 'model_state_dict': head}, paths['clip_dinoiser'])
    return paths


random_weights.WRITERS['clip_dinoiser'] = write_clip_dinoiser_weights
