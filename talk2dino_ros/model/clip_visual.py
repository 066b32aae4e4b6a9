"""MaskCLIP dense features from an open_clip ViT (docs/method.md §6.2), batch-first as in open_clip 3.x.

One pass gives, on the ⌈H/16⌉×⌈W/16⌉ grid:
* ``dense``: the 512-d MaskCLIP features -- the last block run without attention mixing (each token's
  attention output replaced by its own value vector), then ``ln_post`` and ``visual.proj``, not normalised;
* ``inter``: the intermediate tokens of block ``depth-3`` taken after its ``ln_2`` (attention done, MLP not),
  which CLIP-DINOiser's ``obj_proj`` and ``bkg_decoder`` read (as tokens; ``token_map`` makes the map).

The authors hook open_clip 2.24's sequence-first blocks; here the same quantities are computed directly on
open_clip 3.x's batch-first blocks, without hooks and without writing a resized position embedding
into the model, so the module stays stateless and thread-safe.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

#: OpenAI CLIP normalisation (also used by LAION open_clip models)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: the intermediate block read by CLIP-DINOiser (``feats_idx = -3``: block 9 of 12)
INTERMEDIATE_BLOCK = -3


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad right and bottom so both sides are multiples of ``multiple`` (no-op when they are)."""
    H, W = x.shape[-2:]
    pad_h = (multiple - H % multiple) % multiple
    pad_w = (multiple - W % multiple) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), value=0.0)


def normalize_clip(x01: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> CLIP-normalised input, ``(x - mean) / std`` in the input's dtype."""
    mean = torch.tensor(CLIP_MEAN, device=x01.device, dtype=x01.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x01.device, dtype=x01.dtype).view(1, 3, 1, 1)
    return (x01 - mean) / std


def resize_clip_pos_embed(pos: torch.Tensor, grid: Tuple[int, int], size: Tuple[int, int]) -> torch.Tensor:
    """[1 + gh*gw, D] table -> [1 + h*w, D]: bicubic (align_corners False, no antialias) on the grid part.

    Always resamples, like the reference (at the native grid it is an exact identity). Recomputed per
    call: it costs microseconds, and a cache would hold inference-mode tensors across calls.
    """
    gh, gw = grid
    D = pos.shape[-1]
    cls_pos = pos[:1]
    patch_pos = pos[-gh * gw:].reshape(1, gh, gw, D).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos, size=size, mode='bicubic', align_corners=False)
    patch_pos = torch.flatten(patch_pos, 2).transpose(1, 2)[0]
    return torch.cat((cls_pos, patch_pos), dim=0)


class MaskClipFeatures(torch.nn.Module):
    """``forward(x) -> (dense [B, E, h, w], inter_tokens [B, 1 + h*w, D])`` for a CLIP-normalised batch x.

    ``token_map(inter_tokens[i:i+1], h, w)`` gives window i's intermediate map.

    ``visual`` is an open_clip ``VisionTransformer`` (class token, learnable position embedding, no
    attentional pooler) whose blocks run batch-first. ``x`` sides must be multiples of the patch size.
    """

    def __init__(self, visual: torch.nn.Module):
        super().__init__()
        self.visual = visual
        patch = visual.conv1.kernel_size
        self.patch_size = int(patch[0])
        n_grid = visual.positional_embedding.shape[0] - 1
        side = int(round(n_grid ** 0.5))
        self.pos_grid = (side, side)
        self.depth = len(visual.transformer.resblocks)
        if self.depth < 3:
            raise ValueError('MaskCLIP features need a vision tower with at least 3 blocks')
        self.intermediate_index = self.depth + INTERMEDIATE_BLOCK

    @property
    def width(self) -> int:
        return int(self.visual.conv1.out_channels)

    @property
    def embed_dim(self) -> int:
        return int(self.visual.proj.shape[1])

    def grid_position_table(self, h: int, w: int) -> torch.Tensor:
        """[1 + h*w, D] position embedding of an h×w grid (depends on the grid only)."""
        return resize_clip_pos_embed(self.visual.positional_embedding, self.pos_grid, (h, w))

    def _tokens(self, x: torch.Tensor, h: int, w: int, pos: Optional[torch.Tensor] = None) -> torch.Tensor:
        v = self.visual
        x = v.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        if pos is None:
            pos = self.grid_position_table(h, w)
        return v.ln_pre(x + pos.to(x.dtype))

    @staticmethod
    def _block_with_intermediate(blk: torch.nn.Module, x: torch.Tensor,
                                 traceable: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """The block's own forward, split to also return ``ln_2`` of the post-attention stream."""
        y = blk.ln_1(x)
        x = x + blk.ls_1(traceable_attention(blk.attn, y) if traceable else blk.attention(q_x=y))
        t = blk.ln_2(x)
        return x + blk.ls_2(blk.mlp(t)), t

    @staticmethod
    def _value_only_block(blk: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The last block with the attention matrix replaced by the identity (MaskCLIP)."""
        C = x.shape[-1]
        attn = blk.attn
        y = F.linear(blk.ln_1(x), attn.in_proj_weight[2 * C:], attn.in_proj_bias[2 * C:])
        v = F.linear(y, attn.out_proj.weight, attn.out_proj.bias) + x
        return v + blk.mlp(blk.ln_2(v))

    def forward(self, x: torch.Tensor, pos: Optional[torch.Tensor] = None,
                traceable: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """``pos``: the grid's position table when the caller has it (an exported graph takes it as an input);
        ``traceable``: attention written so that an ONNX trace keeps batch and token counts dynamic."""
        B, _, H, W = x.shape
        ps = self.patch_size
        if H % ps or W % ps:
            raise ValueError(f'input {H}x{W} is not a multiple of the patch size {ps}; pad it first')
        h, w = H // ps, W // ps
        x = self._tokens(x, h, w, pos)
        blocks = self.visual.transformer.resblocks
        inter = None
        for i in range(self.depth - 1):
            if i == self.intermediate_index:
                x, inter = self._block_with_intermediate(blocks[i], x, traceable)
            elif traceable:
                x = self._block_with_intermediate(blocks[i], x, traceable)[0]
            else:
                x = blocks[i](x)
        v = self._value_only_block(blocks[self.depth - 1], x)
        v = self.visual.ln_post(v)[:, 1:]
        v = v.reshape(B, h, w, -1).permute(0, 3, 1, 2).contiguous()
        proj = self.visual.proj
        dense = F.conv2d(v, proj.t()[:, :, None, None].to(v.dtype))
        return dense, inter


def traceable_attention(attn: torch.nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    """Batch-first self-attention with ``attn``'s weights (no mask), reshaped from the input's own sizes.

    ``nn.MultiheadAttention`` reshapes with ``batch * heads`` computed in Python, which an ONNX trace
    freezes to the example's batch and token count; this is the same math with traced sizes.
    """
    B, N, C = x.shape
    heads = attn.num_heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).reshape(B, N, 3, heads, C // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)
    return F.linear(out, attn.out_proj.weight, attn.out_proj.bias)


def token_map(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """[B, 1 + h*w, D] tokens -> [B, D, h, w] view without the class token (row-major patches).

    Kept a strided view like the reference's: convolution kernels and reductions follow the memory
    layout, and for B = 1 this is exactly the layout the reference computes on (a batch slice of a
    larger B would not be: torch would treat it as channels-last and pick other kernels).
    """
    return tokens[:, 1:].permute(0, 2, 1).reshape(tokens.shape[0], -1, h, w)
