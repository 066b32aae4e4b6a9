"""DINOv2-with-registers and DINOv3 backbones through timm, with the last block's CLS->patch attention logits.

One forward gives both the final-norm patch tokens and the per-head CLS->patch attention logits
(read from a hook on ``blocks[-1].attn.qkv``, i.e. the attention input, as the authors' code does; for
DINOv3 that is before the rotary embedding is applied, which is also what the authors read).
"""
from __future__ import annotations

import os
import re
import threading
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

import talk2dino_ros.model  # noqa: F401  (torchvision workaround before timm)
import timm
from timm.models.eva import checkpoint_filter_fn as eva_checkpoint_filter_fn
from timm.models.vision_transformer import checkpoint_filter_fn

from talk2dino_ros import catalog
from talk2dino_ros.model.backbone_arch import BackboneArch, heads_for_width
from talk2dino_ros.model.checkpoints import (StateDict, describe_shapes, load_into,
                                          load_state_dict_file, malformed_checkpoint, require_keys)
from talk2dino_ros.errors import CheckpointError, RandomWeightsRefused

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: variant -> (timm model name, embed dim, depth, heads) of the catalog's DINOv2 backbones
DINOV2_VARIANTS: Dict[str, Tuple[str, int, int, int]] = {
    name: (b.timm_name, b.embed_dim, b.depth, b.num_heads)
    for name, b in catalog.backbones().items() if b.family == 'dinov2'}
NUM_REGISTERS = 4
PATCH_SIZE = 14


#: the hooked qkv of the forward running on this thread, per backbone (slot name -> tensor)
_HOOKED_QKV = threading.local()


def infer_dinov2_arch(sd: StateDict, path: os.PathLike | str) -> BackboneArch:
    """Read width/depth from a DINOv2 state dict (official or timm layout)."""
    require_keys(sd, ['cls_token', 'pos_embed', 'patch_embed.proj.weight', 'norm.weight'], path, 'DINOv2')
    if 'register_tokens' not in sd and 'reg_token' not in sd:
        raise CheckpointError(f'DINOv2 file {path} has no register tokens (register_tokens/reg_token): '
                              'a DINOv2 *with registers* (…_reg4_pretrain.pth) checkpoint is required')
    dim = int(sd['cls_token'].shape[-1])
    blocks = {int(m.group(1)) for k in sd for m in [re.match(r'blocks\.(\d+)\.', k)] if m}
    if not blocks:
        raise CheckpointError(f'DINOv2 file {path} has no transformer blocks (blocks.N.*)')
    depth = max(blocks) + 1
    pw = sd['patch_embed.proj.weight']
    if tuple(pw.shape[1:]) != (3, PATCH_SIZE, PATCH_SIZE):
        raise CheckpointError(f'DINOv2 file {path} has patch embedding {list(pw.shape)}; expected patch size 14')
    variant = 'test'
    for name, (_, d, dep, _) in DINOV2_VARIANTS.items():
        if d == dim and dep == depth:
            variant = name
    heads = heads_for_width(dim)
    if dim % heads or dim % 2:
        raise CheckpointError(f'DINOv2 file {path} has width {dim}, which no DINOv2 head layout divides')
    for key in ('pos_embed', 'patch_embed.proj.weight', 'norm.weight'):
        size = sd[key].shape[-1] if key != 'patch_embed.proj.weight' else sd[key].shape[0]
        if size != dim:
            raise CheckpointError(f'DINOv2 file {path}: {key} {list(sd[key].shape)} does not match width {dim}')
    return BackboneArch(variant, dim, depth, heads)


class DinoBackbone(torch.nn.Module):
    """DINOv2 reg4 or DINOv3 ViT: ``forward(x) -> (patch_tokens [B, D, h, w], cls_attn_logits [B, M, h*w])``.

    ``x`` is an ImageNet-normalised RGB batch whose sides are multiples of the patch size (14 or 16).
    DINOv2 is built with ``img_size=518`` and ``dynamic_img_size=True`` so that any grid resamples the
    37×37 position embedding exactly like DINOv2 does (bit-exact at 448×448 and non-square inputs);
    DINOv3 as the authors build it (``img_size=448``, timm's dynamic size computes the rotary
    embedding of any grid).
    """

    def __init__(self, arch: BackboneArch):
        super().__init__()
        timm_name = arch.timm_name or DINOV2_VARIANTS.get(arch.variant, DINOV2_VARIANTS['vitb'])[0]
        self.arch = arch
        img_size = 518 if arch.family == 'dinov2' else 448
        self.vit = timm.create_model(timm_name, pretrained=False, img_size=img_size, dynamic_img_size=True,
                                     num_classes=0, embed_dim=arch.embed_dim, depth=arch.depth,
                                     num_heads=arch.num_heads)
        self.num_prefix_tokens = self.vit.num_prefix_tokens  # CLS + 4 registers
        self._qkv_slot = f'qkv_{id(self)}'  # this backbone's entry in the per-thread hook storage
        self.vit.blocks[-1].attn.qkv.register_forward_hook(self._store_qkv)

    @property
    def embed_dim(self) -> int:
        return self.arch.embed_dim

    @property
    def num_heads(self) -> int:
        return self.arch.num_heads

    @property
    def patch_size(self) -> int:
        return self.arch.patch_size

    @property
    def _qkv(self):
        """The qkv hooked on this thread and not consumed yet (None after every forward)."""
        return _HOOKED_QKV.__dict__.get(self._qkv_slot)

    def _store_qkv(self, module, inputs, output) -> None:
        # per thread: the fast path warms up a copy of the forward on another thread while frames run
        _HOOKED_QKV.__dict__[self._qkv_slot] = output

    def _timm_state(self, sd: StateDict, path: os.PathLike | str) -> StateDict:
        """The state dict in timm's layout (timm's filter for the family)."""
        what = _FAMILY_NAMES[self.arch.family]
        filter_fn = checkpoint_filter_fn if self.arch.family == 'dinov2' else eva_checkpoint_filter_fn
        try:
            return filter_fn(dict(sd), self.vit)
        except Exception as exc:
            raise CheckpointError(f'{what} file {path} could not be converted: {exc}') from None

    def check_checkpoint_layout(self, sd: StateDict, path: os.PathLike | str) -> None:
        """Refuse a state dict whose keys or shapes do not fit this architecture, without loading it.

        Meant for a model built on the meta device: the file's declared shapes are checked before a
        full-size model is allocated.
        """
        what = _FAMILY_NAMES[self.arch.family]
        filtered = self._timm_state(sd, path)
        expected = self.vit.state_dict()
        missing = [k for k in expected if k not in filtered]
        unexpected = [k for k in filtered if k not in expected]
        if missing or unexpected:
            raise CheckpointError(f'{what} file {path} does not match the {self.arch.variant} architecture: '
                                  f'missing {missing[:4]}, unexpected {unexpected[:4]}')
        wrong = [k for k in expected if tuple(filtered[k].shape) != tuple(expected[k].shape)]
        if wrong:
            raise CheckpointError(f'{what} file {path} does not fit the {self.arch.variant} architecture: ' + ', '.join(
                f'{k} {list(filtered[k].shape)} (expected {list(expected[k].shape)})' for k in wrong[:3]))

    def load_checkpoint_state(self, sd: StateDict, path: os.PathLike | str) -> None:
        """Load an official or timm-layout state dict through timm's filter for the family (strict)."""
        what = _FAMILY_NAMES[self.arch.family]
        filtered = self._timm_state(sd, path)
        result = load_into(self.vit, filtered, path, what, strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
        if missing or unexpected:
            raise CheckpointError(f'{what} file {path} does not match the {self.arch.variant} architecture: '
                                  f'missing {missing[:4]}, unexpected {unexpected[:4]}')

    def cls_attention_logits(self, qkv: torch.Tensor) -> torch.Tensor:
        """Pre-softmax CLS->patch logits per head, [B, M, P], from the hooked qkv [B, T, 3D]."""
        B, T, three_d = qkv.shape
        D = three_d // 3
        M = self.num_heads
        hd = D // M
        q_cls = qkv[:, 0, :D].reshape(B, M, hd) * (hd ** -0.5)
        k_patch = qkv[:, self.num_prefix_tokens:, D:2 * D].reshape(B, T - self.num_prefix_tokens, M, hd)
        return torch.einsum('bmd,bpmd->bmp', q_cls, k_patch)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        B, _, H, W = x.shape
        h, w = H // self.patch_size, W // self.patch_size
        return self.outputs(self.vit.forward_features(x), B, h, w)

    def outputs(self, tokens: torch.Tensor, B: int, h: int, w: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Final-norm tokens of the forward that just ran -> (patch features, CLS logits from its hooked qkv)."""
        qkv = _HOOKED_QKV.__dict__.pop(self._qkv_slot)
        patches = tokens[:, self.num_prefix_tokens:]
        feats = patches.transpose(1, 2).reshape(B, self.embed_dim, h, w)
        return feats, self.cls_attention_logits(qkv)


_FAMILY_NAMES = {'dinov2': 'DINOv2', 'dinov3': 'DINOv3'}


def _expected_family(expected_variant: str | None) -> str | None:
    backbone = catalog.backbones().get(expected_variant or '')
    return backbone.family if backbone is not None else None


def build_backbone(path: os.PathLike | str, expected_variant: str | None = None,
                   allow_test_width: bool = False) -> DinoBackbone:
    """Build and load a DINOv2 reg4 or DINOv3 backbone from a checkpoint file.

    The family is read from the file; with ``expected_variant`` (a catalog variant) the file must be
    that family and size (a test width is accepted with ``allow_test_width``).
    """
    from talk2dino_ros.model.dinov3 import infer_dinov3_arch, is_dinov3_state_dict, without_zero_qkv_bias

    family = _expected_family(expected_variant)
    what = _FAMILY_NAMES.get(family or 'dinov2')
    with malformed_checkpoint(path, what):
        sd = load_state_dict_file(path, what)
        found = 'dinov3' if is_dinov3_state_dict(sd) else 'dinov2'
        if family and found != family:
            hint = ' or '.join(n for n, b in catalog.backbones().items() if b.family == found)
            raise CheckpointError(f'{what} file {path} is a {_FAMILY_NAMES[found]} checkpoint but variant '
                                  f'{expected_variant} was selected (choose {hint})')
        what = _FAMILY_NAMES[found]
        if found == 'dinov3':
            sd = without_zero_qkv_bias(sd, path)
        arch = infer_dinov3_arch(sd, path) if found == 'dinov3' else infer_dinov2_arch(sd, path)
        if arch.variant == 'test' and not allow_test_width:
            raise RandomWeightsRefused(f'{what} file {path} has a non-standard width/depth '
                                       f'({arch.embed_dim}/{arch.depth}): this is a random test model')
        if expected_variant and arch.variant not in (expected_variant, 'test'):
            raise CheckpointError(f'{what} file {path} is a {arch.variant} model '
                                  f'({describe_shapes(sd, ["cls_token"])}) but variant {expected_variant} was selected')
        published = catalog.backbones().values()
        if arch.depth > max(b.depth for b in published) or arch.embed_dim > max(b.embed_dim for b in published):
            raise CheckpointError(f'{what} file {path} declares {arch.depth} blocks of width {arch.embed_dim}: '
                                  'larger than any published backbone')
        with torch.device('meta'):  # shapes only: nothing is allocated until the file fits
            DinoBackbone(arch).check_checkpoint_layout(sd, path)
        model = DinoBackbone(arch)
        model.load_checkpoint_state(sd, path)
        return model.eval().requires_grad_(False)


#: the name the DINOv2-only loader had; it reads DINOv3 files too
build_dinov2_backbone = build_backbone


def normalize_rgb255(x: torch.Tensor) -> torch.Tensor:
    """RGB 0..255 float batch -> ImageNet-normalised input (``/255`` then mean/std, as the reference)."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x / 255.0 - mean) / std


def resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """``T.Resize((size, size))`` on a float tensor (bilinear, antialias), identity when already that size."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False, antialias=True)
