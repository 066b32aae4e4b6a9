"""Pascal Context conversion: PASCAL-in-Detail ``trainval_merged.json`` -> ``SegmentationClassContext``.

Same result as mmseg 0.30 ``tools/convert_datasets/pascal_context.py`` (docs/method.md
§7.3), without the ``detail`` package (a Cython build): for every image of the train and val phases,

1. the class mask starts at 0; each segmentation annotation of the image, in the order the Detail API
   iterates them (JSON order, de-duplicated by annotation id, a later duplicate replacing the earlier
   one in place), paints its decoded mask with its ``category_id`` (later annotations win);
2. every value must be one of the 60 Detail ids of ``CONTEXT_DETAIL_IDS_SORTED``; value -> its rank,
   so the PNG holds 0..59 (``CONTEXT_60_CLASSES`` order);
3. ``SegmentationClassContext/<name>.png`` is written, and ``ImageSets/SegmentationContext/
   {train,val}.txt`` list the sorted basenames.

Masks are COCO-style compressed RLE strings (column-major runs starting with 0s), decoded here in
numpy, with the counts checked against the image size.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from talk2dino_ros.atomic_files import atomic_write_text
from talk2dino_ros.data.datasets import DatasetError, check_sample_id

#: Detail category id of train id k (sorted; index 0 = 0 = background; docs/method.md §7.3)
CONTEXT_DETAIL_IDS_SORTED = (
    0, 2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104,
    105, 113, 115, 144, 158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295,
    296, 308, 324, 326, 347, 349, 354, 355, 360, 366, 368, 397, 415, 416, 420, 424, 427,
    440, 445, 454, 458,
)
PHASES = ('train', 'val')
_UNMAPPED = 255  # sentinel in the id lookup table (never a valid train id: there are 60)


def decode_rle_counts(counts: Union[str, bytes]) -> np.ndarray:
    """Run lengths of a COCO compressed RLE string (the Detail/COCO mask API's ``rleFrString``).

    Each run is a little-endian base-32 number in chars ``'0' + 5-bit chunk``, bit 0x20 meaning
    "more chunks follow" and bit 0x10 of the last chunk the sign; from the 4th run on, each value is a
    delta to the run two places before.
    """
    data = counts.encode('ascii') if isinstance(counts, str) else bytes(counts)
    if not data:
        return np.zeros(0, dtype=np.int64)
    chars = np.frombuffer(data, dtype=np.uint8).astype(np.int64) - 48
    if chars.min() < 0 or chars.max() > 63:
        raise ValueError('RLE string has characters outside the 6-bit alphabet')
    ends = (chars & 0x20) == 0
    if not ends[-1]:
        raise ValueError('RLE string ends in the middle of a number')
    group = np.concatenate(([0], np.cumsum(ends)[:-1]))     # number index of each char
    starts = np.flatnonzero(np.concatenate(([True], ends[:-1])))
    position = np.arange(len(chars)) - starts[group]        # chunk index within its number
    if position.max() > 11:
        raise ValueError('RLE string has a number longer than 12 chunks')
    values = np.add.reduceat((chars & 0x1F) << (5 * position), starts)
    last = chars[ends]
    lengths = np.diff(np.append(starts, len(chars)))
    negative = (last & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * lengths[negative])
    # cnts[m] = x[m] + cnts[m-2] for m > 2: cumulative sums over odd indices, and even indices >= 2
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    if len(values) > 2:
        runs[2::2] = np.cumsum(values[2::2])
    return runs


def decode_rle(segmentation: Mapping, height: int, width: int) -> np.ndarray:
    """Binary mask [height, width] (bool) of a Detail/COCO RLE ``{'size': [h, w], 'counts': ...}``."""
    try:
        size = [int(v) for v in segmentation['size']]
        counts = segmentation['counts']
    except (KeyError, TypeError, ValueError):
        raise ValueError('segmentation is not an RLE object with "size" and "counts"') from None
    if size != [height, width]:
        raise ValueError(f'RLE size {size} != image size [{height}, {width}]')
    runs = np.asarray(counts, dtype=np.int64) if isinstance(counts, list) else decode_rle_counts(counts)
    if runs.size and runs.min() < 0:
        raise ValueError('RLE has a negative run length')
    if int(runs.sum()) != height * width:
        raise ValueError(f'RLE runs cover {int(runs.sum())} pixels, image has {height * width}')
    flat = np.repeat((np.arange(len(runs)) % 2).astype(bool), runs)
    return flat.reshape(width, height).T  # column-major (Fortran) order


def detail_id_lut() -> np.ndarray:
    """int lookup: Detail category id -> train id 0..59, ``_UNMAPPED`` for any other id."""
    lut = np.full(max(CONTEXT_DETAIL_IDS_SORTED) + 1, _UNMAPPED, dtype=np.int64)
    lut[list(CONTEXT_DETAIL_IDS_SORTED)] = np.arange(len(CONTEXT_DETAIL_IDS_SORTED))
    return lut


def class_mask(image: Mapping, annotations: Iterable[Mapping]) -> np.ndarray:
    """Detail's ``getMask(img)`` class mask (Detail category ids), int64 [height, width]."""
    height, width = int(image['height']), int(image['width'])
    mask = np.zeros((height, width), dtype=np.int64)
    for ann in annotations:
        try:
            m = decode_rle(ann['segmentation'], height, width)
        except ValueError as exc:
            raise DatasetError(f'annotation {ann.get("id")} of image {image.get("file_name")}: '
                               f'{exc}') from None
        mask[m] = int(ann['category_id'])
    return mask


def to_train_ids(mask: np.ndarray, lut: np.ndarray, what: str) -> np.ndarray:
    """Map Detail ids to 0..59; refuse ids outside the 60 Context categories (as the reference)."""
    inside = (mask >= 0) & (mask < len(lut))
    mapped = np.full(mask.shape, _UNMAPPED, dtype=np.int64)
    mapped[inside] = lut[mask[inside]]
    if (mapped == _UNMAPPED).any():
        bad = ', '.join(str(v) for v in np.unique(mask[mapped == _UNMAPPED])[:10])
        raise DatasetError(f'{what}: Detail category ids {bad} are not among the 60 Pascal Context '
                           'categories (is this trainval_merged.json?)')
    return mapped.astype(np.uint8)


@dataclass
class DetailIndex:
    """The parts of ``trainval_merged.json`` the conversion needs, indexed like the Detail API."""

    images: List[Mapping]
    annotations_by_image: Dict[int, List[Mapping]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping, source: str = 'annotation file') -> 'DetailIndex':
        try:
            images = list(data['images'])
            segs = data['annos_segmentation']
        except (KeyError, TypeError):
            raise DatasetError(f'{source} has no "images"/"annos_segmentation" lists; expected the '
                               'PASCAL-in-Detail trainval_merged.json') from None
        # Detail keeps annotations in a dict keyed by id: JSON order, a duplicate id replaces the
        # earlier value at the earlier position.
        by_id: Dict[object, Mapping] = {}
        for seg in segs:
            by_id[seg['id']] = seg
        known = {img['image_id'] for img in images}
        by_image: Dict[int, List[Mapping]] = {}
        for seg in by_id.values():
            if seg['image_id'] not in known:
                raise DatasetError(f'{source}: annotation {seg["id"]} refers to unknown image '
                                   f'{seg["image_id"]}')
            by_image.setdefault(seg['image_id'], []).append(seg)
        return cls(images, by_image)

    def phase_images(self, phase: str) -> List[Mapping]:
        return [img for img in self.images if img.get('phase') == phase]


def load_detail_json(path: Path) -> DetailIndex:
    try:
        with open(path, 'r', encoding='utf-8') as f:  # JSON is UTF-8, whatever the locale
            data = json.load(f)
    except FileNotFoundError:
        raise DatasetError(f'annotation file {path} does not exist (download trainval_merged.json, '
                           'see `convert_dataset context --help`)') from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f'cannot read annotation file {path}: {exc}') from None
    if not isinstance(data, dict):
        raise DatasetError(f'annotation file {path} is not a JSON object')
    return DetailIndex.from_json(data, str(path))


def convert_pascal_context(devkit: Path, json_path: Optional[Path] = None,
                           out_dir: Optional[Path] = None, phases: Sequence[str] = PHASES,
                           progress: Optional[Callable[[int, int], None]] = None,
                           ) -> Dict[str, int]:
    """Convert ``VOC2010`` (``devkit``) labels; returns the number of images written per phase.

    ``json_path`` defaults to ``devkit/trainval_merged.json``; ``out_dir`` to
    ``devkit/SegmentationClassContext``. The split lists always go to
    ``devkit/ImageSets/SegmentationContext``.
    """
    from talk2dino_ros.data.convert_coco_stuff import write_label_png  # the converters' shared PNG writer

    devkit = Path(devkit)
    json_path = Path(json_path) if json_path is not None else devkit / 'trainval_merged.json'
    out_dir = Path(out_dir) if out_dir is not None else devkit / 'SegmentationClassContext'
    for phase in phases:
        if phase not in PHASES:
            raise DatasetError(f'unknown phase {phase!r} (expected train and/or val)')
    index = load_detail_json(json_path)
    lut = detail_id_lut()
    work: List[Tuple[str, Mapping]] = [(p, img) for p in phases for img in index.phase_images(p)]
    if not work:
        raise DatasetError(f'{json_path} has no images of phase {", ".join(phases)}')
    out_dir.mkdir(parents=True, exist_ok=True)
    names: Dict[str, List[str]] = {p: [] for p in phases}
    for done, (phase, img) in enumerate(work, 1):
        file_name = str(img['file_name'])
        mask = class_mask(img, index.annotations_by_image.get(img['image_id'], []))
        ids = to_train_ids(mask, lut, f'image {file_name}')
        stem = check_sample_id(os.path.splitext(os.path.basename(file_name))[0], f'{json_path}: image {file_name!r}')
        write_label_png(out_dir / (stem + '.png'), ids)
        names[phase].append(stem)
        if progress:
            progress(done, len(work))
    split_dir = devkit / 'ImageSets' / 'SegmentationContext'
    split_dir.mkdir(parents=True, exist_ok=True)
    for phase, stems in names.items():
        atomic_write_text(split_dir / f'{phase}.txt', ''.join(s + '\n' for s in sorted(stems)))
    return {p: len(s) for p, s in names.items()}
