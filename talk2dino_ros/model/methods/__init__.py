"""Method registry: name -> builder(weights, variant, allow_test_width) -> SegmentationMethod."""
from __future__ import annotations

import importlib
from typing import Callable, Dict, Tuple

from talk2dino_ros.errors import Talk2DinoError
from talk2dino_ros.model.methods.base import SegmentationMethod

#: name -> (module, builder function, weight roles)
METHOD_REGISTRY: Dict[str, Tuple[str, str, Tuple[str, ...]]] = {
    'talk2dino': ('talk2dino_ros.model.methods.talk2dino', 'build_talk2dino', ('dinov2', 'clip', 'proj')),
    'clip_dinoiser': ('talk2dino_ros.model.methods.clip_dinoiser', 'build_clip_dinoiser',
                      ('openclip', 'clip_dinoiser')),
}


def method_names() -> Tuple[str, ...]:
    return tuple(METHOD_REGISTRY)


def weight_roles(method: str) -> Tuple[str, ...]:
    return _entry(method)[2]


def _entry(method: str):
    if method not in METHOD_REGISTRY:
        raise Talk2DinoError(f'unknown method {method!r}; choose one of {", ".join(METHOD_REGISTRY)}')
    return METHOD_REGISTRY[method]


def get_builder(method: str) -> Callable[..., SegmentationMethod]:
    module, func, _ = _entry(method)
    return getattr(importlib.import_module(module), func)
