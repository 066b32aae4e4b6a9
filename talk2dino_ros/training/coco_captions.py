"""Read a COCO-captions dataset (``captions_*.json`` + an images folder) into a flat, ordered plan.

Order (deterministic, so extraction can resume): images in the order of the json ``images`` list,
each image's captions in the order of the ``annotations`` list. Every caption is one training sample
(docs/method.md §4).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from talk2dino_ros.errors import Talk2DinoError


class DatasetError(Talk2DinoError):
    """The captions dataset is missing, malformed or references absent images."""


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str


@dataclass(frozen=True)
class CocoCaptions:
    """Images and their captions; ``caption_image[j]`` is the index (into ``images``) of caption j."""

    images: Tuple[CocoImage, ...]
    captions: Tuple[str, ...]
    caption_image: Tuple[int, ...]
    caption_ids: Tuple[int, ...]

    def caption_range(self) -> List[Tuple[int, int]]:
        """Per image, the [start, end) range of its captions (captions are grouped by image)."""
        ranges = [(0, 0)] * len(self.images)
        start = 0
        for i in range(len(self.images)):
            end = start
            while end < len(self.caption_image) and self.caption_image[end] == i:
                end += 1
            ranges[i] = (start, end)
            start = end
        return ranges


def load_coco_captions(annotation_file: os.PathLike | str, limit: int = 0) -> CocoCaptions:
    """Parse a COCO captions json; ``limit`` > 0 keeps only the first ``limit`` images."""
    path = Path(annotation_file).expanduser()
    if not path.is_file():
        raise DatasetError(f'annotation file not found: {path} (expected a COCO captions json such as '
                           'annotations/captions_train2014.json)')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f'annotation file {path} is not readable JSON: {exc}') from None
    if not isinstance(data, dict) or not isinstance(data.get('images'), list) \
            or not isinstance(data.get('annotations'), list):
        raise DatasetError(f'annotation file {path} is not in COCO captions format '
                           '(needs top-level "images" and "annotations" lists)')
    images: List[CocoImage] = []
    index: Dict[int, int] = {}
    for k, entry in enumerate(data['images']):
        try:
            image = CocoImage(int(entry['id']), str(entry['file_name']))
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f'annotation file {path}: images[{k}] lacks an integer "id" or a "file_name"') from None
        if image.id in index:
            raise DatasetError(f'annotation file {path}: image id {image.id} appears twice')
        index[image.id] = len(images)
        images.append(image)
    all_ids = set(index)
    if limit > 0:
        images = images[:limit]
        index = {im.id: i for i, im in enumerate(images)}
    per_image: List[List[Tuple[int, str]]] = [[] for _ in images]
    for k, ann in enumerate(data['annotations']):
        try:
            image_id, caption, ann_id = int(ann['image_id']), ann['caption'], int(ann.get('id', k))
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f'annotation file {path}: annotations[{k}] lacks "image_id" or "caption"') from None
        if not isinstance(caption, str):
            raise DatasetError(f'annotation file {path}: annotations[{k}] caption is not a string')
        if image_id not in index:
            if image_id in all_ids:  # an image dropped by ``limit``
                continue
            raise DatasetError(f'annotation file {path}: annotations[{k}] refers to image id {image_id}, '
                               'which is not in "images"')
        per_image[index[image_id]].append((ann_id, caption))
    captions, caption_image, caption_ids = [], [], []
    for i, caps in enumerate(per_image):
        for ann_id, caption in caps:
            captions.append(caption)
            caption_image.append(i)
            caption_ids.append(ann_id)
    if not captions:
        raise DatasetError(f'annotation file {path} has no captions for its {len(images)} images')
    return CocoCaptions(tuple(images), tuple(captions), tuple(caption_image), tuple(caption_ids))


def check_images_present(dataset: CocoCaptions, image_dir: os.PathLike | str, show: int = 5) -> List[Path]:
    """Paths of every image of the dataset; DatasetError with the count and first names if any is absent."""
    root = Path(image_dir).expanduser()
    if not root.is_dir():
        raise DatasetError(f'image folder not found: {root}')
    paths = [root / im.file_name for im in dataset.images]
    missing = [p.name if p.parent == root else str(p.relative_to(root)) for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(f'{len(missing)} of {len(paths)} images referenced by the annotations are absent '
                           f'from {root}: {", ".join(missing[:show])}' + (' ...' if len(missing) > show else ''))
    return paths
