"""Read the published checkpoint formats; every failure is one CheckpointError naming the file.

Formats (docs/method.md §8):
* DINOv2 official ``dinov2_vit{s,b,l}14_reg4_pretrain.pth`` (flat state dict with ``mask_token``,
  ``register_tokens``, ``pos_embed`` [1, 1+37*37, D]) and timm's layout (``reg_token``, no class pos).
* OpenAI CLIP ``ViT-B-16.pt`` (a TorchScript archive, read as data: its code is never run), a plain
  state dict, or an open_clip checkpoint (``state_dict`` wrapper, ``module.`` prefixes).
* Talk2DINO ψ ``vit{b,l}_mlp_infonce.pth`` (plain OrderedDict; legacy ``linear_layer2.*`` accepted).

Budgets, so a small crafted file cannot cost much memory: a zip checkpoint's records are checked
before ``torch.load`` sees them (:mod:`talk2dino_ros.model.zip_records`), and every loaded tensor must
be backed by its own data (:func:`check_tensor_data`): a tensor whose shape claims more values than
its storage holds (a zero-stride view) would let a 1 kB file declare a 2048-wide model.
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
from talk2dino_ros.model.torchscript_archive import MAX_DATA_PKL, is_torchscript_archive, read_torchscript_state_dict
from talk2dino_ros.model.zip_records import check_records

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


def check_tensor_data(sd: Mapping[str, torch.Tensor], path: Path, what: str) -> None:
    """Every tensor is backed by as many values as its shape declares, and together they fit the file.

    Checked before any model is sized from these shapes. Views of one storage are legal (a strided
    slice), so the total is bounded by twice the file's size plus slack rather than exactly.
    """
    limit = 2 * path.stat().st_size + (1 << 20)
    total = 0
    seen = set()
    for key, t in sd.items():
        if id(t) in seen:
            continue  # tied weights: one tensor under two names
        seen.add(id(t))
        need = t.numel() * t.element_size()
        if t.numel() and t.untyped_storage().nbytes() < need:
            raise CheckpointError(f'{what} file {path}: tensor {key[:80]} declares shape {list(t.shape)[:8]} but '
                                  f'its data holds {t.untyped_storage().nbytes()} bytes (a crafted view)')
        total += need
        if total > limit:
            raise CheckpointError(f'{what} file {path} declares more tensor data ({total}+ bytes) than the '
                                  f'{path.stat().st_size}-byte file holds')


def _check_zip_checkpoint(p: Path, what: str) -> None:
    """``torch.save`` writes every record uncompressed; refuse anything else before torch.load reads it."""
    try:
        if not zipfile.is_zipfile(p):
            return  # the legacy (pre-1.6) format; torch.load's weights-only reader handles it
        with zipfile.ZipFile(p) as zf:
            check_records(zf, p)
            pickles = [i for i in zf.infolist() if i.filename.endswith('data.pkl')]
            if any(i.file_size > MAX_DATA_PKL for i in pickles):
                raise CheckpointError(f'its data.pkl claims {max(i.file_size for i in pickles)} bytes '
                                      f'(at most {MAX_DATA_PKL})')
    except CheckpointError as exc:
        raise CheckpointError(f'{what} file {p} is not a plain PyTorch checkpoint: {exc}') from None
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f'{what} file {p} is a corrupt zip archive ({_first_line(exc)})') from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _is_torchscript(path: Path) -> bool:
    """OpenAI's release files are TorchScript archives (zip with a ``code/`` tree)."""
    return is_torchscript_archive(path)


def load_state_dict_file(path: os.PathLike | str, what: str, allow_torchscript: bool = False) -> StateDict:
    """Load a ``.pth``/``.pt``/``.bin``/``.safetensors`` file as a flat tensor dict (CPU)."""
    p = _check_file(path, what)
    sd = _load_tensors(p, what, allow_torchscript)
    check_tensor_data(sd, p, what)
    return sd


def _load_tensors(p: Path, what: str, allow_torchscript: bool) -> StateDict:
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
    _check_zip_checkpoint(p, what)
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
