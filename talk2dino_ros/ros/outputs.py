"""Build the node's output messages from a segmentation result (no node state, reusable by bag tools).

Label convention: 0 = background, vocabulary class ``i`` (0-based) = ``i + 1``; mono8 up to 255
classes, mono16 above.
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, Sequence

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import ColorRGBA

from talk2dino_ros.model.types import BACKGROUND
from talk2dino_ros.ros.image_conversion import numpy_to_image

MASK_BINARY = 'binary'
MASK_SCORE = 'score'


def label_encoding(num_classes: int) -> str:
    """mono8 while every label id (0..num_classes) fits a byte, else mono16."""
    return 'mono8' if num_classes <= 255 else 'mono16'


def label_image(labels_bg0: np.ndarray, num_classes: int, header) -> Image:
    """mono8/mono16 label image (``labels_bg0``: 0 = background, class i = i + 1)."""
    encoding = label_encoding(num_classes)
    dtype = np.uint8 if encoding == 'mono8' else np.uint16
    return numpy_to_image(labels_bg0.astype(dtype, copy=False), encoding, header=header)


def float_image(values: np.ndarray, header) -> Image:
    """32FC1 image of a float map."""
    return numpy_to_image(np.ascontiguousarray(values, dtype=np.float32), '32FC1', header=header)


def rgba(color: Sequence[int]) -> ColorRGBA:
    """uint8 RGB -> std_msgs/ColorRGBA (floats in 0..1, alpha 1)."""
    return ColorRGBA(r=float(color[0]) / 255.0, g=float(color[1]) / 255.0, b=float(color[2]) / 255.0, a=1.0)


def class_info_msg(header, version: int, method: str, names: Sequence[str], colors: np.ndarray,
                   background_threshold: float):
    """ClassInfo legend: id 0 'background' first, then the vocabulary as ids 1..N."""
    from talk2dino_ros.msg import ClassInfo

    msg = ClassInfo()
    msg.header = header
    msg.vocabulary_version = int(version)
    msg.method = method
    msg.class_ids = list(range(len(names) + 1))
    msg.class_names = [BACKGROUND] + list(names)
    msg.colors = [rgba(c) for c in colors[:len(names) + 1]]
    msg.background_threshold = float(background_threshold)
    return msg


def binary_mask(labels_bg0: np.ndarray, class_id: int) -> np.ndarray:
    """mono8 mask, 255 where the label is ``class_id``."""
    return (labels_bg0 == class_id).astype(np.uint8) * np.uint8(255)


def class_masks_msg(header, version: int, names: Sequence[str], labels_bg0: np.ndarray,
                    class_scores: np.ndarray, mask_type: str):
    """ClassMasks with one mask per vocabulary class (ids 1..N)."""
    from talk2dino_ros.msg import ClassMasks

    msg = ClassMasks()
    msg.header = header
    msg.vocabulary_version = int(version)
    msg.class_ids = list(range(1, len(names) + 1))
    msg.class_names = list(names)
    msg.mask_type = mask_type
    if mask_type == MASK_SCORE:
        msg.masks = [float_image(class_scores[i], header) for i in range(len(names))]
    else:
        msg.masks = [numpy_to_image(binary_mask(labels_bg0, i + 1), 'mono8', header=header)
                     for i in range(len(names))]
    return msg


_NOT_TOKEN = re.compile(r'[^a-z0-9]+')


def mask_topic_names(names: Iterable[str]) -> Dict[str, int]:
    """Valid, unique ROS topic tokens for the per-class mask topics: token -> class id (1-based).

    Lower-case ASCII letters, digits and single underscores; a name with nothing usable
    (e.g. '猫') becomes ``class_<id>``, a leading digit gets a ``c`` prefix, clashes get ``_<id>``.
    """
    out: Dict[str, int] = {}
    for index, name in enumerate(names):
        class_id = index + 1
        token = _NOT_TOKEN.sub('_', name.lower()).strip('_')
        if not token:
            token = f'class_{class_id}'
        elif token[0].isdigit():
            token = 'c' + token
        while token in out:
            token = f'{token}_{class_id}'
        out[token] = class_id
    return out
