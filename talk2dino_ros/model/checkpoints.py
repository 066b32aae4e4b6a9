"""Read the published checkpoint formats; every failure is one CheckpointError naming the file.

Formats (docs/method.md §8):
* DINOv2 official ``dinov2_vit{s,b,l}14_reg4_pretrain.pth`` (flat state dict with ``mask_token``,
  ``register_tokens``, ``pos_embed`` [1, 1+37*37, D]) and timm's layout (``reg_token``, no class pos).
* OpenAI CLIP ``ViT-B-16.pt`` (a TorchScript archive, read as data: its code is never run), a plain
  state dict, or an open_clip checkpoint (``state_dict`` wrapper, ``module.`` prefixes).
* Talk2DINO ψ ``vit{b,l}_mlp_infonce.pth`` (plain OrderedDict; legacy ``linear_layer2.*`` accepted).
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterable, Iterator, Mapping

import torch

from talk2dino_ros.errors import CheckpointError
from talk2dino_ros.model.torchscript_archive import is_torchscript_archive, read_torchscript_state_dict

StateDict = Dict[str, torch.Tensor]


def _check_file(path: os.PathLike | str, what: str) -> Path:
    if path is None or str(path) == '':
        raise CheckpointError(f'no {what} file given (set its path; `fetch_weights` downloads the published files)')
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f'{what} file not found: {p} (run `fetch_weights` to download it, or fix the path)')
    if not p.is_file():
        raise CheckpointError(f'{what} path is not a file: {p}')
    if p.stat().st_size == 0:
        raise CheckpointError(f'{what} file is empty: {p}')
    return p


def _unwrap(obj: object, path: Path, what: str) -> StateDict:
    """Return the tensor dict inside common wrappers ({'state_dict': ...}, {'model': ...})."""
    for key in ('state_dict', 'model_state_dict', 'model'):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f'{what} file {path} does not hold a state dict (found {type(obj).__name__})')
    sd = {}
    for k, v in obj.items():
        if not isinstance(k, str):
            continue
        if k.startswith('module.'):
            k = k[len('module.'):]
        if isinstance(v, torch.Tensor):
            sd[k] = v
    if not sd:
        raise CheckpointError(f'{what} file {path} contains no tensors')
    return sd


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _is_torchscript(path: Path) -> bool:
    """OpenAI's release files are TorchScript archives (zip with a ``code/`` tree)."""
    return is_torchscript_archive(path)


def load_state_dict_file(path: os.PathLike | str, what: str, allow_torchscript: bool = False) -> StateDict:
    """Load a ``.pth``/``.pt``/``.bin``/``.safetensors`` file as a flat tensor dict (CPU)."""
    p = _check_file(path, what)
    if p.suffix == '.safetensors':
        try:
            from safetensors.torch import load_file
            return _unwrap(load_file(str(p), device='cpu'), p, what)
        except CheckpointError:
            raise
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f'{what} file {p} is not a readable safetensors file: {exc}') from None
    if not allow_torchscript and _is_torchscript(p):
        raise CheckpointError(f'{what} file {p} is a TorchScript archive (the OpenAI CLIP release?), '
                              f'not a {what} checkpoint')
    if allow_torchscript and _is_torchscript(p):
        # never torch.jit.load: it compiles and runs the archive's code; the tensors are read as data
        try:
            obj = read_torchscript_state_dict(p)
        except CheckpointError as exc:
            raise CheckpointError(f'{what} file {p} is not a readable TorchScript weights archive: {exc}') from None
        return _unwrap(obj, p, what)
    try:
        obj = torch.load(str(p), map_location='cpu', weights_only=True)
    except Exception as exc:
        if not zipfile.is_zipfile(p):
            raise CheckpointError(f'{what} file {p} is not a PyTorch checkpoint (not a zip archive: '
                                  'truncated download or wrong file?)') from None
        reason = _first_line(exc)
        if 'Weights only load failed' in reason:
            reason = 'it holds objects other than tensors, or is truncated'
        raise CheckpointError(f'{what} file {p} is corrupt or not a plain PyTorch checkpoint ({reason})') from None
    return _unwrap(obj, p, what)


def require_keys(sd: Mapping[str, torch.Tensor], keys: Iterable[str], path: os.PathLike | str, what: str) -> None:
    missing = [k for k in keys if k not in sd]
    if missing:
        shown = ', '.join(missing[:5]) + (f' (+{len(missing) - 5} more)' if len(missing) > 5 else '')
        raise CheckpointError(f'{what} file {path} is not in the expected layout: missing keys {shown}')


def sha256_file(path: os.PathLike | str, chunk: int = 1 << 20) -> str:
    """Hex SHA256 of a file (used by fetch_weights and recorded in evaluation/extraction results)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def git_blob_sha1(path: os.PathLike | str, chunk: int = 1 << 20) -> str:
    """What ``git hash-object`` prints for a file (GitHub-hosted checkpoints are pinned by blob id)."""
    size = os.path.getsize(path)
    h = hashlib.sha1(f'blob {size}\0'.encode())
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def describe_shapes(sd: Mapping[str, torch.Tensor], keys: Iterable[str]) -> str:
    return ', '.join(f'{k}{list(sd[k].shape)}' for k in keys if k in sd)


def load_into(module: torch.nn.Module, sd: Mapping[str, torch.Tensor], path: os.PathLike | str, what: str,
              strict: bool = True):
    """``module.load_state_dict`` whose shape/key mismatches become one CheckpointError naming the file."""
    try:
        result = module.load_state_dict(dict(sd), strict=strict)
    except RuntimeError as exc:  # size mismatches raise even with strict=False
        detail = '; '.join(line.strip() for line in str(exc).splitlines()[1:4])
        raise CheckpointError(f'{what} file {path} does not fit the expected architecture: {detail}') from None
    return result


@contextmanager
def malformed_checkpoint(path: os.PathLike | str, what: str) -> Iterator[None]:
    """Turn any low-level failure while interpreting a loaded state dict into one CheckpointError.

    Loaders check the layouts they know; this catches the rest (a scalar where a matrix belongs, a
    tensor of the wrong rank, ...) so a malformed file never surfaces as an IndexError deep in torch.
    """
    try:
        yield
    except CheckpointError:
        raise
    except (IndexError, KeyError, ValueError, TypeError, AssertionError, RuntimeError, AttributeError) as exc:
        raise CheckpointError(f'{what} file {path} is malformed ({type(exc).__name__}: '
                              f'{_first_line(exc)})') from None
