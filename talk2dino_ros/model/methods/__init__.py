"""Method registry: the catalog's methods -> builder(weights, variant, allow_test_width) -> SegmentationMethod."""
from __future__ import annotations

import importlib
from typing import Callable, Optional, Tuple

from talk2dino_ros import catalog
from talk2dino_ros.errors import Talk2DinoError
from talk2dino_ros.model.methods.base import SegmentationMethod


def weight_roles(method: str, variant: Optional[str] = None) -> Tuple[str, ...]:
    """The roles a method/variant loads (``variant=None``: the method's default variant)."""
    try:
        return catalog.get_variant(method, variant).roles
    except catalog.CatalogError as exc:
        raise Talk2DinoError(str(exc)) from None


def get_builder(method: str) -> Callable[..., SegmentationMethod]:
    try:
        spec = catalog.get_method(method)
    except catalog.CatalogError as exc:
        raise Talk2DinoError(str(exc)) from None
    return getattr(importlib.import_module(spec.module), spec.builder)
