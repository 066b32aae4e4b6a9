"""ONNX export of a method's network part (the image backbone), with the facts a loader checks.

What is exported is exactly the module a method runs as its ``fast_path_module`` (Talk2DINO: the DINO
backbone -> patch features and the last block's CLS->patch attention logits, i.e. the q/k product that
background cleaning reads; CLIP-DINOiser: the MaskCLIP features -> dense features and the intermediate
tokens its heads read). Text, projection, scoring, background and PAMR stay in torch.

Position tables that depend only on the patch grid (DINOv2's antialiased bicubic resampling of its
position embedding, DINOv3's rotary table, CLIP's bicubic position table) are computed in torch, once per
grid, and fed to the graph as its second input: the antialiased resampling has no ONNX operator, and a
table input lets one file serve every input size (``dynamic``) as well as a fixed one.

The file's metadata records the method, variant, the SHA-256 of the weight file the network comes from,
the input size it was exported for, and the exporter; :func:`check_metadata` refuses a file that does not
match what is being loaded, in one line.
"""
from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import torch

from talk2dino_ros.atomic_files import atomic_path
from talk2dino_ros.errors import Talk2DinoError

#: bumped whenever the graph's inputs/outputs change meaning (old cached files are then refused)
FORMAT_VERSION = '1'
OPSET = 17
INPUT_NAMES = ('image', 'grid_table')
META_PREFIX = 'talk2dino_ros.'
#: method name -> the weight role the exported network is loaded from
NETWORK_ROLE = {'clip_dinoiser': 'openclip'}  # talk2dino: the role of its backbone's family


class ExportError(Talk2DinoError):
    """A network that cannot be exported, or an exported file that does not match the loaded model."""


Size = Optional[Tuple[int, int]]  # (height, width) of the input, or None for any multiple of the patch


@dataclass(frozen=True)
class NetworkGraph:
    """The part of a method that is exported, as a module ``(image, grid_table) -> outputs``."""

    module: torch.nn.Module
    grid_table: Callable[[int, int], torch.Tensor]  # (grid h, grid w) -> the table input
    output_names: Tuple[str, ...]
    patch_size: int
    #: frees the torch transformer blocks once a runtime runs them (the grid tables do not need them)
    release_blocks: Callable[[], None]


# ------------------------------------------------------------------------------------------ graphs
class _DinoGraph(torch.nn.Module):
    """DinoBackbone.forward with the grid's position table (DINOv2) or rotary table (DINOv3) as an input."""

    def __init__(self, backbone: torch.nn.Module):
        super().__init__()
        self.backbone = backbone
        self.rotary = backbone.arch.family == 'dinov3'

    def forward(self, image: torch.Tensor, table: torch.Tensor):
        vit = self.backbone.vit
        x = vit.patch_embed(image)  # [B, h, w, C] (timm's dynamic image size keeps the grid)
        B, h, w, C = x.shape
        x = x.reshape(B, h * w, C)
        prefix = [t.expand(B, -1, -1) for t in (vit.cls_token, vit.reg_token) if t is not None]
        pos = None if self.rotary else table
        if pos is not None and vit.no_embed_class:
            x = x + pos
        x = torch.cat(prefix + [x], dim=1)
        if pos is not None and not vit.no_embed_class:
            x = x + pos
        x = vit.norm_pre(x)
        for blk in vit.blocks:
            x = blk(x, rope=table) if self.rotary else blk(x)
        return self.backbone.outputs(vit.norm(x), B, h, w)


def _dino_table(backbone: torch.nn.Module) -> Callable[[int, int], torch.Tensor]:
    from timm.layers import resample_abs_pos_embed

    vit = backbone.vit

    def table(h: int, w: int) -> torch.Tensor:
        if backbone.arch.family == 'dinov3':
            return vit.rope.get_embed(shape=(h, w))
        # exactly what timm's dynamic-size forward computes for this grid
        return resample_abs_pos_embed(vit.pos_embed, new_size=(h, w), old_size=vit.patch_embed.grid_size,
                                      num_prefix_tokens=0 if vit.no_embed_class else vit.num_prefix_tokens)
    return table


class _MaskClipGraph(torch.nn.Module):
    def __init__(self, features: torch.nn.Module):
        super().__init__()
        self.features = features

    def forward(self, image: torch.Tensor, table: torch.Tensor):
        return self.features(image, table, traceable=True)


def network_graph(method: torch.nn.Module) -> NetworkGraph:
    """The exportable network of a built method (its eager ``fast_path_module``)."""
    name = getattr(method, 'fast_path_module', '')
    inner = getattr(method, name, None) if name else None
    inner = getattr(inner, 'inner', inner)  # unwrap a fast-path or backend wrapper
    if method.name == 'talk2dino':
        def release_dino() -> None:
            inner.vit.blocks = torch.nn.Sequential()

        return NetworkGraph(_DinoGraph(inner), _dino_table(inner), ('patch_features', 'cls_attention_logits'),
                            inner.patch_size, release_dino)
    if method.name == 'clip_dinoiser':
        def release_clip() -> None:  # the vision tower's blocks only: the text tower is a separate module
            inner.visual.transformer.resblocks = torch.nn.ModuleList()

        return NetworkGraph(_MaskClipGraph(inner), inner.grid_position_table, ('dense_features', 'inter_tokens'),
                            inner.patch_size, release_clip)
    raise ExportError(f'method {method.name!r} has no exportable network')


def network_role(method: torch.nn.Module) -> str:
    """The weight role whose file the exported network is made from (its SHA-256 goes in the metadata)."""
    role = NETWORK_ROLE.get(method.name)
    if role:
        return role
    backbone = getattr(method, method.fast_path_module)
    return getattr(backbone, 'inner', backbone).arch.family  # 'dinov2' or 'dinov3'


# ------------------------------------------------------------------------------------------ metadata
@dataclass(frozen=True)
class GraphFacts:
    """What an exported file was made from; written into and checked against its metadata."""

    method: str
    variant: str
    weights_sha256: str
    size: Size  # None = dynamic height/width

    @property
    def size_text(self) -> str:
        return 'dynamic' if self.size is None else f'{self.size[0]}x{self.size[1]}'

    def metadata(self) -> Dict[str, str]:
        return {'method': self.method, 'variant': self.variant, 'weights_sha256': self.weights_sha256,
                'input_size': self.size_text, 'format_version': FORMAT_VERSION, 'exporter': f'torch {torch.__version__}'}


def parse_size(text: str) -> Size:
    """'dynamic' -> None, 'HxW' or 'S' -> (H, W)."""
    text = text.strip().lower()
    if text == 'dynamic':
        return None
    parts = text.split('x')
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ExportError(f"input size must be HxW (e.g. 448x602), S or 'dynamic', got {text!r}") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) <= 0:
        raise ExportError(f"input size must be HxW (e.g. 448x602), S or 'dynamic', got {text!r}")
    return values[0], values[1]


def read_metadata(path: os.PathLike | str) -> Dict[str, str]:
    """The ``talk2dino_ros.*`` metadata of an ONNX file (without loading its weights)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one line for the user
        raise ExportError(f'exported model {path} could not be read: {type(exc).__name__}: {exc}') from None
    return {p.key[len(META_PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(META_PREFIX)}


def check_metadata(path: os.PathLike | str, expected: GraphFacts, input_size: Size = None) -> Dict[str, str]:
    """Refuse (one line) a file made from other weights, another method/variant, format or size."""
    meta = read_metadata(path)
    if not meta:
        raise ExportError(f'exported model {path} has no talk2dino_ros metadata: make it with export_model')
    wanted = expected.metadata()
    for key in ('format_version', 'method', 'variant', 'weights_sha256'):
        if meta.get(key) != wanted[key]:
            raise ExportError(f'exported model {path} does not match the loaded model: its {key} is '
                              f'{meta.get(key)!r}, expected {wanted[key]!r} (re-export it with export_model)')
    made_for = meta.get('input_size', '')
    if made_for != 'dynamic' and input_size is not None and made_for != f'{input_size[0]}x{input_size[1]}':
        raise ExportError(f'exported model {path} was made for input {made_for}, but the input is '
                          f'{input_size[0]}x{input_size[1]} (export it for that size or as dynamic)')
    return meta


# ------------------------------------------------------------------------------------------ export
@contextlib.contextmanager
def _exporting():
    """No gradients and no exporter chatter (its tracer warnings are about Python ints it may freeze; the
    graphs above take every size from tensors, and the tests compare the exported file with torch)."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        yield


def export_onnx(method: torch.nn.Module, facts: GraphFacts, path: os.PathLike | str, batch: int = 1) -> float:
    """Write the method's network as ONNX (batch dimension always dynamic); returns the seconds taken."""
    import onnx

    graph = network_graph(method)
    p = graph.patch_size
    size = facts.size or (2 * p, 3 * p)  # a non-square example: a dynamic trace must not tie h to w
    if size[0] % p or size[1] % p:
        raise ExportError(f'input size {size[0]}x{size[1]} is not a multiple of the patch size {p}')
    start = time.perf_counter()
    device = next(method.parameters()).device
    image = torch.zeros((batch, 3) + tuple(size), device=device)
    table = graph.grid_table(size[0] // p, size[1] // p)
    axes: Dict[str, Dict[int, str]] = {'image': {0: 'batch'}}
    for name in graph.output_names:
        axes[name] = {0: 'batch'}
    if facts.size is None:
        axes['image'].update({2: 'height', 3: 'width'})
        # the table's token axis: grid positions (DINOv2, DINOv3) or 1 + positions (CLIP)
        axes['grid_table'] = {table.dim() - 2: 'positions'}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, _exporting():
        try:
            torch.onnx.export(graph.module.eval(), (image, table), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=list(INPUT_NAMES), output_names=list(graph.output_names),
                              dynamic_axes=axes, do_constant_folding=True)
        except Exception as exc:  # noqa: BLE001 - the exporter's errors are long; one line for the user
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f'{facts.method}/{facts.variant} could not be exported to ONNX: {first}') from None
        model = onnx.load(str(tmp))
        for key, value in facts.metadata().items():
            entry = model.metadata_props.add()
            entry.key, entry.value = META_PREFIX + key, value
        onnx.save(model, str(tmp))
    return time.perf_counter() - start
