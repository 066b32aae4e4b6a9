"""Readers for the mmseg on-disk layouts of the 8 benchmarks (docs/method.md §7.2).

A :class:`SegmentationDataset` lists samples (id, image path, label path) in mmseg's order (the split
file's order, or the sorted recursive listing of the image folder) and loads them like mmseg 0.30:
images decoded with OpenCV as colour (then given to the caller as RGB uint8), labels decoded with
Pillow "unchanged" (palette PNGs give their palette *indices*, not RGB) and cast to uint8.
``reduce_zero_label`` is **not** applied here; the metric does it (as in mmseg).

Every problem with a file raises :class:`DatasetError` naming the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple, Union

import numpy as np

from talk2dino_ros.data.benchmarks import Benchmark, get_benchmark
from talk2dino_ros.errors import Talk2DinoError

PathLike = Union[str, os.PathLike]


class DatasetError(Talk2DinoError):
    """A benchmark dataset is missing, incomplete or has a file that cannot be used."""


class DatasetNotFoundError(DatasetError):
    """A benchmark's data (or its converted labels) is not there at all; ``summary`` is the short
    reason without the preparation hint."""

    def __init__(self, summary: str, hint: str = '') -> None:
        super().__init__(summary + ('. ' + ' '.join(hint.split()) if hint else ''))
        self.summary = summary


@dataclass(frozen=True)
class Sample:
    """One evaluation sample; ``id`` is the split-file id or the image path relative to ``img_dir``
    without its suffix (e.g. ``frankfurt/frankfurt_000000_000294`` for Cityscapes)."""

    id: str
    image_path: Path
    label_path: Path


def resolve_root(benchmark: Benchmark, data_root: PathLike) -> Path:
    """The benchmark's own root: ``<data_root>/<benchmark.root>``, or ``data_root`` itself when it
    already is that folder (e.g. ``--data-root data/VOCdevkit/VOC2012``)."""
    data_root = Path(data_root).expanduser()
    for candidate in (data_root / benchmark.root, data_root):
        if (candidate / benchmark.img_dir).is_dir():
            return candidate
    raise DatasetNotFoundError(
        f'{benchmark.name}: image folder {data_root / benchmark.root / benchmark.img_dir} not found',
        benchmark.prepare)


class SegmentationDataset:
    """The validation split of one benchmark under a data root."""

    def __init__(self, benchmark: Union[Benchmark, str], data_root: PathLike) -> None:
        self.benchmark = get_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
        self.root = resolve_root(self.benchmark, data_root)
        self.img_dir = self.root / self.benchmark.img_dir
        self.ann_dir = self.root / self.benchmark.ann_dir
        self.samples: List[Sample] = self._list_samples()
        if not self.samples:
            where = (self.root / self.benchmark.split) if self.benchmark.split else self.img_dir
            raise DatasetNotFoundError(f'{self.benchmark.name}: no samples found in {where}')
        if not any(s.label_path.is_file() for s in self.samples):
            raise DatasetNotFoundError(
                f'{self.benchmark.name}: none of the {len(self.samples)} label files exists, e.g. '
                f'{self.samples[0].label_path}', self.benchmark.prepare)

    # -- listing ---------------------------------------------------------------------------
    def _list_samples(self) -> List[Sample]:
        bench = self.benchmark
        if bench.split is not None:
            ids = read_split_ids(self.root / bench.split, bench)
        else:
            ids = self._scan_ids()
            for i in ids:
                check_sample_id(i, f'{bench.name}: image {self.img_dir / (i + bench.img_suffix)}')
        return [Sample(i, self.img_dir / (i + bench.img_suffix), self.ann_dir / (i + bench.seg_suffix))
                for i in ids]

    def _scan_ids(self) -> List[str]:
        """mmseg's recursive listing of ``img_dir`` for the image suffix, sorted by relative path."""
        suffix = self.benchmark.img_suffix
        ids = []
        for dirpath, _, files in os.walk(self.img_dir, followlinks=True):
            rel_dir = os.path.relpath(dirpath, self.img_dir)
            for name in files:
                if name.endswith(suffix):
                    rel = name if rel_dir == '.' else os.path.join(rel_dir, name)
                    ids.append(rel)
        ids.sort()
        return [rel[:-len(suffix)].replace(os.sep, '/') for rel in ids]

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    # -- loading ---------------------------------------------------------------------------
    def load(self, sample: Sample) -> Tuple[np.ndarray, np.ndarray]:
        """Image (RGB uint8 [H, W, 3]) and checked label (uint8 [H, W]) of a sample."""
        image = load_image(sample.image_path)
        label = load_label(sample.label_path)
        if label.shape != image.shape[:2]:
            raise DatasetError(f'label {sample.label_path} is {label.shape[1]}x{label.shape[0]} '
                               f'but image {sample.image_path} is {image.shape[1]}x{image.shape[0]}')
        check_label_values(label, self.benchmark, sample.label_path)
        return image, label

    def iter_loaded(self, *, skip_bad: bool = False, limit: Optional[int] = None,
                    on_skip: Optional[Callable[[Sample, DatasetError], None]] = None,
                    ) -> Iterator[Tuple[Sample, np.ndarray, np.ndarray]]:
        """Yield (sample, image, label); with ``skip_bad`` a bad sample is reported to ``on_skip``
        and skipped instead of raising."""
        samples = self.samples if limit is None else self.samples[:max(limit, 0)]
        for sample in samples:
            try:
                image, label = self.load(sample)
            except DatasetError as exc:
                if not skip_bad:
                    raise
                if on_skip is not None:
                    on_skip(sample, exc)
                continue
            yield sample, image, label


def read_split_ids(split: Path, bench: Benchmark) -> List[str]:
    """The sample ids of a split file (one per line, blank lines skipped), each checked by
    :func:`check_sample_id`; ``DatasetError`` naming the file and line otherwise."""
    try:
        data = split.read_bytes()
    except OSError as exc:
        raise DatasetNotFoundError(f'{bench.name}: cannot read split file {split}: '
                                   f'{exc.strerror or exc}', bench.prepare) from None
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as exc:
        line = data.count(b'\n', 0, exc.start) + 1
        raise DatasetError(f'{bench.name}: split file {split} is not UTF-8 text (line {line}, byte '
                           f'{exc.start}: {exc.reason})') from None
    ids = []
    for number, line in enumerate(text.splitlines(), 1):
        sample_id = line.strip()
        if sample_id:
            ids.append(check_sample_id(sample_id, f'{bench.name}: split file {split} line {number}'))
    return ids


def check_sample_id(sample_id: str, where: str) -> str:
    """``sample_id`` if it is a relative path that stays inside the dataset's folders, else ``DatasetError``.

    Ids become file names under the image, label and prediction folders, so an absolute path, a
    ``..`` or empty component, a backslash or a control character could read or write elsewhere.
    """
    reason = _bad_id_reason(sample_id)
    if reason is not None:
        shown = sample_id if len(sample_id) <= 80 else sample_id[:77] + '...'
        raise DatasetError(f'{where}: sample id {shown!r} {reason}; ids must be relative paths inside '
                           'the dataset folder')
    return sample_id


def _bad_id_reason(sample_id: str) -> Optional[str]:
    if not sample_id:
        return 'is empty'
    if any(ord(c) < 32 or ord(c) == 127 for c in sample_id):
        return 'contains a control character'
    if '\\' in sample_id:
        return 'contains a backslash'
    if sample_id.startswith('/') or (len(sample_id) > 1 and sample_id[1] == ':'):
        return 'is an absolute path'
    parts = sample_id.split('/')
    if '..' in parts:
        return "has a '..' component"
    if any(part in ('', '.') for part in parts):
        return "has an empty or '.' component"
    return None


def open_dataset(benchmark: Union[Benchmark, str], data_root: PathLike) -> SegmentationDataset:
    """Shorthand for :class:`SegmentationDataset`."""
    return SegmentationDataset(benchmark, data_root)


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DatasetError(f'{what} {path} does not exist') from None
    except OSError as exc:
        raise DatasetError(f'cannot read {what} {path}: {exc.strerror or exc}') from None


def load_image(path: PathLike) -> np.ndarray:
    """Decode an image like mmcv ``imread(flag='color')`` (OpenCV), returned as RGB uint8 [H, W, 3]."""
    import cv2

    path = Path(path)
    data = _read_bytes(path, 'image')
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise DatasetError(f'image {path} is not a readable image (corrupt or unsupported format)')
    return np.ascontiguousarray(image[:, :, ::-1])


def load_label(path: PathLike) -> np.ndarray:
    """Decode a label map like mmseg's ``LoadAnnotations`` (Pillow, unchanged) -> uint8 [H, W].

    Palette ('P') PNGs give their palette indices. Multi-channel (e.g. colour-rendered) labels and
    values outside 0..255 are refused rather than silently mangled.
    """
    from PIL import Image

    path = Path(path)
    data = _read_bytes(path, 'label')
    try:
        import io

        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode = img.mode
            array = np.array(img)
    except Exception as exc:  # Pillow raises many types for corrupt files
        raise DatasetError(f'label {path} is not a readable image ({type(exc).__name__}: {exc})') from None
    if array.ndim != 2:
        raise DatasetError(f'label {path} has mode {mode!r} with shape {array.shape}; expected a '
                           'single-channel (palette or grayscale) label map')
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise DatasetError(f'label {path} has values outside 0..255 '
                               f'(min {array.min()}, max {array.max()})')
        array = array.astype(np.uint8)
    return array


def check_label_values(label: np.ndarray, benchmark: Benchmark, path: PathLike) -> None:
    """Refuse raw label values the benchmark cannot contain.

    Valid: ``ignore_index`` (255) and 0..K-1, or 0..K with ``reduce_zero_label`` (raw v is class
    v - 1; raw 0 is ignored). Anything else would silently distort the metric (mmseg's histogram
    drops it from the label area but keeps the prediction in the union).
    """
    max_valid = benchmark.max_raw_label()
    bad = (label > max_valid) & (label != benchmark.ignore_index)
    if bad.any():
        values = np.unique(label[bad])
        shown = ', '.join(str(v) for v in values[:10]) + (', ...' if len(values) > 10 else '')
        raise DatasetError(
            f'label {path} has ids {shown} outside the valid range 0..{max_valid} '
            f'(+{benchmark.ignore_index} ignored) of {benchmark.name} '
            f'({benchmark.num_classes} classes, reduce_zero_label={benchmark.reduce_zero_label})')
