"""ROS messages of the node's outputs (no node state): label/float images, legend, class masks.

Label convention: 0 = background, vocabulary class ``i`` (0-based) = ``i + 1``; mono8 while the label
ids fit a byte, mono16 above (the rule lives in :mod:`talk2dino_ros.outputs.frame`).
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, Sequence

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import ColorRGBA

from talk2dino_ros.model.types import BACKGROUND
from talk2dino_ros.outputs.frame import MASK_BINARY, MASK_SCORE, binary_mask, label_dtype, label_encoding
from talk2dino_ros.ros.image_conversion import numpy_to_image

__all__ = ['MASK_BINARY', 'MASK_SCORE', 'binary_mask', 'label_encoding', 'label_image', 'float_image', 'rgba',
           'class_info_msg', 'masks_msg', 'mask_topic_names', 'numpy_to_image']


def label_image(labels_bg0: np.ndarray, num_classes: int, header) -> Image:
    """mono8/mono16 label image (``labels_bg0``: 0 = background, class i = i + 1; ids up to ``num_classes``)."""
    return numpy_to_image(labels_bg0.astype(label_dtype(num_classes), copy=False), label_encoding(num_classes),
                          header=header)


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


def masks_msg(header, version: int, names: Sequence[str], masks: Dict[int, np.ndarray], mask_type: str):
    """ClassMasks from the per-class arrays a frame builder made (class id -> mono8 mask or float scores)."""
    from talk2dino_ros.msg import ClassMasks

    msg = ClassMasks()
    msg.header = header
    msg.vocabulary_version = int(version)
    ids = sorted(masks)
    msg.class_ids = ids
    msg.class_names = [names[i - 1] for i in ids]
    msg.mask_type = mask_type
    if mask_type == MASK_SCORE:
        msg.masks = [float_image(masks[i], header) for i in ids]
    else:
        msg.masks = [numpy_to_image(masks[i], 'mono8', header=header) for i in ids]
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
