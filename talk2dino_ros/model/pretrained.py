"""Registry of the published checkpoint files, derived from :mod:`talk2dino_ros.catalog`.

Like open_clip's pretrained registry: ``fetch_weights`` downloads from here and every loader can look
files up by role in a weights directory. Where no checksum is published the size bound (or nothing)
is checked and the loader then reads the file strictly.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Tuple

from talk2dino_ros import catalog
from talk2dino_ros.catalog import PUBLISHED, METHODS, PublishedFile, published_bundle
from talk2dino_ros.catalog import default_weights_dir as _default_weights_dir

__all__ = ['DEFAULT_WEIGHTS_DIR', 'PRETRAINED', 'PretrainedFile', 'BUNDLES', 'bundle', 'default_paths']

DEFAULT_WEIGHTS_DIR = _default_weights_dir()
PretrainedFile = PublishedFile
PRETRAINED: Dict[str, PublishedFile] = PUBLISHED

#: (method, variant) -> role -> registry name, for every variant whose files are all published
BUNDLES: Dict[Tuple[str, str], Dict[str, str]] = {
    (m.name, v.name): dict(v.published) for m in METHODS.values() for v in m.variants if v.fully_published}


def bundle(method: str, variant: str = 'vitb') -> Dict[str, PublishedFile]:
    """role -> PretrainedFile for a method/variant (a single-backbone method ignores ``variant``).

    KeyError (a :class:`~talk2dino_ros.catalog.CatalogError`) when some role has no published file.
    """
    return published_bundle(method, variant)


def default_paths(method: str, variant: str = 'vitb', weights_dir: os.PathLike | str | None = None) -> Dict[str, Path]:
    """Where ``fetch_weights`` puts each file of a bundle (role -> path)."""
    bundle(method, variant)  # KeyError when a file of this variant is not published
    root = weights_dir if weights_dir else DEFAULT_WEIGHTS_DIR
    return {role: Path(path) for role, path in catalog.default_weight_paths(method, variant, root).items()}
