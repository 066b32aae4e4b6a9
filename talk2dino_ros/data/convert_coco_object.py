"""COCO-Object label conversion: raw stuffthingmaps -> ``<id>_instanceTrainIds.png``.

Same result as Talk2DINO's ``convert_dataset/convert_coco_object.py`` (docs/method.md §7.3).
Despite its name, the reference reads no instance JSON: it re-labels the COCO-Stuff semantic maps
(whose thing pixels come from the COCO instance masks). Starting from the COCO-Stuff table, add 1
to every train id, then send every table key > 90 to 0. Result: the 80 used thing values -> 1..80 in
``COCO_OBJECT_81_CLASSES`` order; all stuff values (91..181) **and unlabeled (255)** -> 0
('background'), so the output has no ignored pixels; values outside the table stay unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from talk2dino_ros.data.convert_coco_stuff import (ConversionReport, coco_stuff_table,
                                                   convert_coco_maps, expected_raw_values,
                                                   table_to_lut)

#: reference threshold: table keys above this (stuff and 255) become background
LAST_THING_RAW = 90


def coco_object_table() -> Dict[int, int]:
    """The reference's raw -> COCO-Object id table (same 172 keys as COCO-Stuff's)."""
    return {raw: (0 if raw > LAST_THING_RAW else train_id + 1)
            for raw, train_id in coco_stuff_table().items()}


def coco_object_lut() -> np.ndarray:
    return table_to_lut(coco_object_table())


def convert_coco_object(root: Path, out_root: Optional[Path] = None,
                        splits: Sequence[str] = ('train2017', 'val2017'), nproc: int = 1,
                        progress: Optional[Callable[[int, int], None]] = None) -> ConversionReport:
    """Write ``<id>_instanceTrainIds.png`` for every raw map of the given splits."""
    return convert_coco_maps(root, out_root, coco_object_lut(), expected_raw_values(),
                             '_instanceTrainIds.png', splits, nproc, progress)
