"""COCO-Stuff 164k label conversion: raw stuffthingmaps -> ``<id>_labelTrainIds.png``.

Same result as mmseg 0.30 ``tools/convert_datasets/coco_stuff164k.py`` (docs/method.md
§7.3): raw values 0..181 are the COCO(-Stuff) category id minus 1 (255 = unlabeled); the 171 used
values map to train ids 0..170 in ``COCO_STUFF_171_CLASSES`` order, 255 stays 255, and any value not
in the table is written unchanged. The remapping is a 256-entry lookup table applied to the original
values (no chaining).

Differences from the reference script, on purpose: it does not assert the 123,287-file total (so the
val split alone can be converted), and it skips every ``*TrainIds.png`` input (the reference only
skips ``_labelTrainIds``, which breaks if COCO-Object was converted first). This module also holds the
shared folder walker used by :mod:`talk2dino_ros.data.convert_coco_object`.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from talk2dino_ros.atomic_files import atomic_path
from talk2dino_ros.data.datasets import DatasetError, load_label

#: raw stuffthingmap values of the 11 COCO thing ids unused in 2017 (COCO id - 1)
COCO_RAW_UNUSED = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
#: largest raw value in the stuffthingmaps ('wood', COCO-Stuff id 182)
COCO_RAW_MAX = 181
#: raw value of unlabeled pixels
COCO_RAW_UNLABELED = 255
#: number of thing classes (train ids 0..79 of COCO-Stuff; 1..80 of COCO-Object)
NUM_THINGS = 80

#: train id i <- raw value COCO_STUFF_RAW_FOR_TRAIN_ID[i] (docs/method.md §7.3: raw minus the number
#: of unused raw values below it)
COCO_STUFF_RAW_FOR_TRAIN_ID: Tuple[int, ...] = tuple(
    raw for raw in range(COCO_RAW_MAX + 1) if raw not in COCO_RAW_UNUSED)
assert len(COCO_STUFF_RAW_FOR_TRAIN_ID) == 171


def coco_stuff_table() -> Dict[int, int]:
    """The reference's 172-entry raw -> train id table (171 used values + 255)."""
    table = {raw: train_id for train_id, raw in enumerate(COCO_STUFF_RAW_FOR_TRAIN_ID)}
    table[COCO_RAW_UNLABELED] = 255
    return table


def table_to_lut(table: Dict[int, int]) -> np.ndarray:
    """A uint8[256] lookup table: ``table`` where given, identity elsewhere (values left unchanged)."""
    lut = np.arange(256, dtype=np.uint8)
    for raw, new in table.items():
        lut[raw] = new
    return lut


def coco_stuff_lut() -> np.ndarray:
    return table_to_lut(coco_stuff_table())


@dataclass
class ConversionReport:
    """What a conversion did: files written per split and pixels with values outside the table."""

    written: Dict[str, int] = field(default_factory=dict)
    unexpected_pixels: int = 0
    unexpected_files: List[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.written.values())


def list_raw_maps(ann_split_dir: Path) -> List[Path]:
    """Raw stuffthingmaps of one split: ``*.png`` whose name contains no ``TrainIds``."""
    return sorted(p for p in ann_split_dir.glob('*.png') if 'TrainIds' not in p.name)


def remap_file(src: Path, dst: Path, lut: np.ndarray, expected: np.ndarray) -> int:
    """Remap one raw map through ``lut`` and write it as a grayscale PNG (atomically).

    Returns the number of pixels whose raw value is not in ``expected`` (bool[256]).
    """
    raw = load_label(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_label_png(dst, lut[raw])
    return int(np.count_nonzero(~expected[raw]))


def write_label_png(dst: Path, labels: np.ndarray) -> None:
    """Write a label map as a grayscale PNG via a temporary file, so an interrupted conversion never
    leaves a truncated map that a later run would take as done; DatasetError names ``dst`` on failure."""
    from PIL import Image

    try:
        # no fsync: a conversion writes ~120k maps; the rename alone keeps every map whole after a crash
        with atomic_path(dst, fsync=False) as tmp:
            Image.fromarray(labels).save(tmp, format='PNG')
    except OSError as exc:
        raise DatasetError(f'cannot write {dst}: {exc.strerror or exc}') from None


def _remap_job(args: Tuple[str, str, np.ndarray, np.ndarray]) -> Tuple[str, int]:
    src, dst, lut, expected = args
    return src, remap_file(Path(src), Path(dst), lut, expected)


def convert_coco_maps(root: Path, out_root: Optional[Path], lut: np.ndarray, expected: np.ndarray,
                      out_suffix: str, splits: Sequence[str] = ('train2017', 'val2017'),
                      nproc: int = 1, progress: Optional[Callable[[int, int], None]] = None,
                      ) -> ConversionReport:
    """Remap every raw map under ``root/annotations/<split>`` to ``<id><out_suffix>``.

    Outputs go to ``out_root/annotations/<split>`` (``out_root`` defaults to ``root``). Splits that
    are absent are skipped; it is an error when none is present.
    """
    root = Path(root)
    out_root = Path(out_root) if out_root is not None else root
    jobs = []
    report = ConversionReport()
    for split in splits:
        src_dir = root / 'annotations' / split
        if not src_dir.is_dir():
            continue
        files = list_raw_maps(src_dir)
        report.written[split] = len(files)
        for src in files:
            dst = out_root / 'annotations' / split / (src.stem + out_suffix)
            jobs.append((str(src), str(dst), lut, expected))
    if not report.written:
        wanted = ', '.join(str(root / 'annotations' / s) for s in splits)
        raise DatasetError(f'no raw stuffthingmaps folder found (looked for {wanted}); unzip '
                           'stuffthingmaps_trainval2017.zip into <root>/annotations/')
    if not jobs:
        raise DatasetError(f'no raw *.png label maps found under {root / "annotations"}')
    done = 0
    if nproc > 1:
        with ProcessPoolExecutor(max_workers=nproc) as pool:
            results = pool.map(_remap_job, jobs, chunksize=64)
            for src, unexpected in results:
                done += 1
                _note(report, src, unexpected)
                if progress:
                    progress(done, len(jobs))
    else:
        for job in jobs:
            src, unexpected = _remap_job(job)
            done += 1
            _note(report, src, unexpected)
            if progress:
                progress(done, len(jobs))
    return report


def _note(report: ConversionReport, src: str, unexpected: int) -> None:
    if unexpected:
        report.unexpected_pixels += unexpected
        report.unexpected_files.append(src)


def expected_raw_values() -> np.ndarray:
    """bool[256]: raw values a correct stuffthingmap contains (used values and 255)."""
    expected = np.zeros(256, dtype=bool)
    expected[list(COCO_STUFF_RAW_FOR_TRAIN_ID)] = True
    expected[COCO_RAW_UNLABELED] = True
    return expected


def convert_coco_stuff(root: Path, out_root: Optional[Path] = None,
                       splits: Sequence[str] = ('train2017', 'val2017'), nproc: int = 1,
                       progress: Optional[Callable[[int, int], None]] = None) -> ConversionReport:
    """Write ``<id>_labelTrainIds.png`` for every raw map of the given splits."""
    return convert_coco_maps(root, out_root, coco_stuff_lut(), expected_raw_values(),
                             '_labelTrainIds.png', splits, nproc, progress)
