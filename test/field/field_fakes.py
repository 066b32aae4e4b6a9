"""Stand-ins for the field tests: an oracle segmenter for the demo scene and bag readers."""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
import torch

from talk2dino_ros.model.types import InferenceOptions, SegmentationResult, Vocabulary


class OracleSegmenter:
    """Labels a demo-bag frame by its nearest palette colour, so its mIoU on the demo bag is 100."""

    def __init__(self, palette: Dict[str, Tuple[int, int, int]]):
        self.palette = palette
        self.options = InferenceOptions()
        self.calls = 0
        self._version = 0

    def set_vocabulary(self, names):
        self._version += 1
        return Vocabulary(tuple(names), tuple(names), torch.zeros(len(names), 1), False, self._version)

    def segment(self, image, *, vocabulary=None, options=None, output_size=None):
        self.calls += 1
        colours = np.array([self.palette[n] for n in vocabulary.names], np.float32)
        dist = ((image[:, :, None, :].astype(np.float32) - colours[None, None]) ** 2).sum(-1)
        scores = -np.moveaxis(dist, 2, 0)
        return SegmentationResult(scores, scores.argmax(0).astype(np.int32), vocabulary.names, False,
                                  vocabulary.version)


def read_bag(path) -> Dict[str, List[Tuple[int, object, bytes, str]]]:
    """topic -> [(bag timestamp, deserialized message or None, raw bytes, msgtype)] in bag order."""
    from talk2dino_ros.bags import bag_io

    store = bag_io.make_typestore()
    out: Dict[str, list] = {}
    reader = bag_io.open_bag(path)
    try:
        for conn, t, raw in reader.messages():
            msg = store.deserialize_cdr(raw, conn.msgtype) if conn.msgtype in store.types else None
            out.setdefault(conn.topic, []).append((t, msg, bytes(raw), conn.msgtype))
    finally:
        reader.close()
    return out
