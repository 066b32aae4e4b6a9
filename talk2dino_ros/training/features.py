"""On-disk format of extracted training features: sharded ``.npy`` files + a JSON manifest.

A feature folder holds ``manifest.json`` (backbone/text-tower identity, preprocessing, dataset, shard
table), ``index.json`` (image file names, caption texts) and, per shard ``k``, the files
``shard_{k:05d}.<array>.npy``:

* ``heads``         [n_img, M, D]  ``disentangled_self_attn`` (per-head softmax pooling, docs/method.md §4)
* ``avg``           [n_img, D]     ``avg_self_attn_out`` (softmax of the head-mean logits)
* ``patches``       [n_img, P, D]  final-norm patch tokens (only with ``patch_tokens: true``)
* ``text``          [n_cap, E]     raw CLIP embeddings of the shard's captions
* ``caption_image`` [n_cap]        int64 global index of each caption's image

Every array is memory-mappable (``np.load(mmap_mode='r')``). A shard is written to temporary names,
renamed, and only then marked complete in the manifest, so an interrupted extraction resumes by
skipping the complete shards.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from talk2dino_ros.atomic_files import atomic_open
from talk2dino_ros.errors import Talk2DinoError

FORMAT = 'talk2dino_ros.features/1'
MANIFEST = 'manifest.json'
INDEX = 'index.json'
CAPTION_ARRAYS = ('text', 'caption_image')
# Manifest entries that must agree before an existing folder is resumed.
IDENTITY_KEYS = ('format', 'backbone', 'text', 'preprocessing', 'dataset', 'dtype', 'shard_size', 'patch_tokens')


class FeatureError(Talk2DinoError):
    """A feature folder is missing, incomplete, or does not match the selected model."""


def shard_file(folder: Path, shard: int, name: str) -> Path:
    return folder / f'shard_{shard:05d}.{name}.npy'


def _write_json_atomic(path: Path, obj: Any) -> None:
    with atomic_open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=1)


def read_manifest(folder: os.PathLike | str) -> Dict[str, Any]:
    path = Path(folder).expanduser() / MANIFEST
    if not path.is_file():
        raise FeatureError(f'no feature manifest at {path} (run `train extract` first)')
    try:
        with open(path, encoding='utf-8') as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:  # ValueError: invalid JSON or invalid UTF-8
        raise FeatureError(f'feature manifest {path} is unreadable: {exc}') from None
    if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
        raise FeatureError(f'{path} is not a talk2dino_ros feature manifest (format {FORMAT})')
    return manifest


def plan_shards(caption_ranges: Sequence[Sequence[int]], shard_size: int) -> List[Dict[str, Any]]:
    """Shard table: consecutive blocks of ``shard_size`` images with their caption ranges."""
    shards = []
    for k, start in enumerate(range(0, len(caption_ranges), shard_size)):
        end = min(start + shard_size, len(caption_ranges))
        shards.append({'index': k, 'images': [start, end],
                       'captions': [int(caption_ranges[start][0]), int(caption_ranges[end - 1][1])],
                       'complete': False})
    return shards


def open_for_writing(folder: os.PathLike | str, header: Mapping[str, Any], shards: List[Dict[str, Any]],
                     index: Mapping[str, Any]) -> Dict[str, Any]:
    """Create the folder's manifest, or check an existing one describes the same extraction.

    Returns the manifest (with the completion state of an earlier run when resuming).
    """
    root = Path(folder).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    if (root / MANIFEST).exists():
        manifest = read_manifest(root)
        for key in IDENTITY_KEYS:
            if manifest.get(key) != header.get(key):
                raise FeatureError(
                    f'{root} already holds features from a different setup ({key}: {manifest.get(key)!r} there, '
                    f'{header.get(key)!r} now); choose another output folder or delete it')
        # a shard marked complete whose files vanished is redone
        for shard in manifest['shards']:
            if shard['complete'] and not all(shard_file(root, shard['index'], n).is_file()
                                             for n in _array_names(manifest)):
                shard['complete'] = False
        return manifest
    manifest = dict(header)
    manifest['shards'] = shards
    _write_json_atomic(root / INDEX, dict(index))
    _write_json_atomic(root / MANIFEST, manifest)
    return manifest


def _array_names(manifest: Mapping[str, Any]) -> List[str]:
    names = ['heads', 'avg'] + (['patches'] if manifest.get('patch_tokens') else [])
    return names + list(CAPTION_ARRAYS)


def write_shard(folder: os.PathLike | str, manifest: Dict[str, Any], shard: int,
                arrays: Mapping[str, np.ndarray]) -> None:
    """Write one shard's arrays (temporary names, then rename) and mark it complete in the manifest."""
    root = Path(folder).expanduser()
    entry = manifest['shards'][shard]
    n_img = entry['images'][1] - entry['images'][0]
    n_cap = entry['captions'][1] - entry['captions'][0]
    for name in _array_names(manifest):
        if name not in arrays:
            raise ValueError(f'shard {shard}: array {name!r} missing')
        rows = n_cap if name in CAPTION_ARRAYS else n_img
        if arrays[name].shape[0] != rows:
            raise ValueError(f'shard {shard}: array {name!r} has {arrays[name].shape[0]} rows, expected {rows}')
    for name in _array_names(manifest):
        with atomic_open(shard_file(root, shard, name), 'wb') as f:
            np.save(f, np.ascontiguousarray(arrays[name]))
    entry['complete'] = True
    _write_json_atomic(root / MANIFEST, manifest)


class ShardedArray:
    """Rows of several memory-mapped shard arrays seen as one array (``len``, ``gather``, ``materialize``)."""

    def __init__(self, parts: Sequence[np.ndarray]):
        self.parts = list(parts)
        sizes = [p.shape[0] for p in self.parts]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.row_shape = tuple(self.parts[0].shape[1:]) if self.parts else ()
        self.dtype = self.parts[0].dtype if self.parts else np.float32

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self):
        return (len(self),) + self.row_shape

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """Rows in the given order (any order, repeats allowed)."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(self.parts) == 1:
            return np.asarray(self.parts[0][rows])
        out = np.empty((len(rows),) + self.row_shape, dtype=self.dtype)
        which = np.searchsorted(self.offsets, rows, side='right') - 1
        for part in np.unique(which):
            sel = np.nonzero(which == part)[0]
            out[sel] = self.parts[part][rows[sel] - self.offsets[part]]
        return out

    def slice(self, start: int, end: int) -> np.ndarray:
        return self.gather(np.arange(start, end))

    def materialize(self) -> np.ndarray:
        return np.concatenate([np.asarray(p) for p in self.parts]) if self.parts else np.empty((0,) + self.row_shape)


class FeatureSet:
    """A complete feature folder opened read-only with memory maps."""

    def __init__(self, folder: os.PathLike | str):
        self.root = Path(folder).expanduser()
        self.manifest = read_manifest(self.root)
        shards = self.manifest['shards']
        done = sum(1 for s in shards if s['complete'])
        if done < len(shards):
            raise FeatureError(f'feature folder {self.root} is incomplete ({done} of {len(shards)} shards); '
                               'rerun `train extract` with the same options to finish it')
        arrays: Dict[str, List[np.ndarray]] = {n: [] for n in _array_names(self.manifest)}
        for shard in shards:
            for name in arrays:
                path = shard_file(self.root, shard['index'], name)
                try:
                    arrays[name].append(np.load(path, mmap_mode='r'))
                except (OSError, ValueError) as exc:
                    raise FeatureError(f'feature file {path} is missing or corrupt: {exc}') from None
        self.arrays = {name: ShardedArray(parts) for name, parts in arrays.items()}

    @property
    def num_images(self) -> int:
        return len(self.arrays['avg'])

    @property
    def num_captions(self) -> int:
        return len(self.arrays['text'])

    @property
    def embed_dim(self) -> int:
        return int(self.manifest['backbone']['embed_dim'])

    @property
    def num_heads(self) -> int:
        return int(self.manifest['backbone']['num_heads'])

    @property
    def text_dim(self) -> int:
        return int(self.manifest['text']['embed_dim'])

    @property
    def random_weights(self) -> bool:
        """True when the features come from random test weights (the manifest says so, or, for folders
        written before it did, the backbone has a test width)."""
        return bool(self.manifest.get('random_weights')) or self.manifest['backbone'].get('variant') == 'test'

    def check_backbone(self, variant: Optional[str] = None, sha256: Optional[str] = None,
                       like: Optional['FeatureSet'] = None) -> None:
        """FeatureError unless the features come from the selected backbone (variant / checkpoint / other set)."""
        have = self.manifest['backbone']
        if variant and have.get('variant') != variant:
            raise FeatureError(f'features in {self.root} were extracted with DINOv2 {have.get("variant")} '
                               f'(width {have.get("embed_dim")}) but variant {variant} was selected')
        if sha256 and have.get('sha256') != sha256:
            raise FeatureError(f'features in {self.root} come from DINOv2 checkpoint {have.get("checkpoint")} '
                               f'(sha256 {str(have.get("sha256"))[:12]}…), not the selected one '
                               f'(sha256 {sha256[:12]}…); re-extract with the selected backbone')
        if like is not None:
            for key in ('backbone', 'text', 'preprocessing'):
                if self.manifest.get(key) != like.manifest.get(key):
                    raise FeatureError(f'features in {self.root} and {like.root} differ in {key}: '
                                       f'{self.manifest.get(key)} vs {like.manifest.get(key)}')
