"""Tiny synthetic datasets in the mmseg on-disk layouts of the 8 benchmarks (test helper)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from talk2dino_ros.data.benchmarks import get_benchmark

H, W = 20, 30

# mmseg's split-file benchmarks share a folder: voc21/voc20 and context60/context59
SAMPLE_IDS = {
    'voc': ['2007_000033', '2007_000042', '2008_000002'],
    'context': ['2008_000002', '2008_000007', '2010_000001'],
    'coco': ['000000000139', '000000000285', '000000000632'],
    'cityscapes': ['frankfurt/frankfurt_000000_000294', 'frankfurt/frankfurt_000000_000576',
                   'lindau/lindau_000000_000019'],
    'ade': ['ADE_val_00000001', 'ADE_val_00000002', 'ADE_val_00000003'],
}


def family(name: str) -> str:
    return {'voc21': 'voc', 'voc20': 'voc', 'context60': 'context', 'context59': 'context',
            'coco_stuff': 'coco', 'coco_object': 'coco', 'cityscapes': 'cityscapes',
            'ade20k': 'ade'}[name]


def make_image(seed: int, h: int = H, w: int = W) -> np.ndarray:
    rng = np.random.RandomState(seed)
    return rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8)


def make_label(name: str, seed: int, h: int = H, w: int = W) -> np.ndarray:
    """A raw label with a few blocks of valid values and some ignore (255) pixels."""
    bench = get_benchmark(name)
    rng = np.random.RandomState(100 + seed)
    top = bench.max_raw_label()
    label = np.zeros((h, w), np.uint8)
    for y in range(0, h, 5):
        for x in range(0, w, 10):
            label[y:y + 5, x:x + 10] = rng.randint(0, top + 1)
    if name not in ('context60', 'context59', 'coco_object'):  # these never contain 255
        label[0, :3] = 255
    return label


def voc_palette() -> List[int]:
    """The usual VOC colour map (bit-interleaved), flattened for PIL."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def write_label(path: Path, label: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette:
        img = Image.frombytes('P', (label.shape[1], label.shape[0]), label.tobytes())
        img.putpalette(voc_palette())
    else:
        img = Image.fromarray(label)
    img.save(path)


def write_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=95) if path.suffix == '.jpg' \
        else Image.fromarray(image).save(path)


def make_layout(data_root: Path, name: str, n: int = 3,
                labels: Optional[Sequence[np.ndarray]] = None,
                sizes: Optional[Sequence[Tuple[int, int]]] = None) -> Dict[str, Tuple[Path, Path]]:
    """Write ``n`` samples of benchmark ``name`` under ``data_root``; returns id -> (image, label)."""
    bench = get_benchmark(name)
    root = data_root / bench.root
    ids = SAMPLE_IDS[family(name)][:n]
    out = {}
    for k, sid in enumerate(ids):
        h, w = sizes[k] if sizes else (H, W)
        label = labels[k] if labels is not None else make_label(name, k, h, w)
        img_path = root / bench.img_dir / (sid + bench.img_suffix)
        lbl_path = root / bench.ann_dir / (sid + bench.seg_suffix)
        write_image(img_path, make_image(k, label.shape[0], label.shape[1]))
        write_label(lbl_path, label, palette=(family(name) == 'voc'))
        out[sid] = (img_path, lbl_path)
    if bench.split is not None:
        split = root / bench.split
        split.parent.mkdir(parents=True, exist_ok=True)
        split.write_text(''.join(i + '\n' for i in ids))
    return out
