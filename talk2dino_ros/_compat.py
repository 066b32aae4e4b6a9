"""Make ``timm`` and ``open_clip`` importable next to a CPU build of torch.

PyPI's torchvision wheel is CUDA-built; with the CPU torch wheel its ``_C`` extension cannot be loaded
and ``import torchvision`` (hence ``import timm`` / ``import open_clip``) fails with
"operator torchvision::nms does not exist". We only need torchvision's Python transforms, so when the
extension does not load we declare the two operator schemas its Python side registers fakes for.
Where ``_C`` loads (a matching CUDA/CPU build) this is a no-op.
"""
from __future__ import annotations

import importlib.util
import os
import sys

_LIBRARY = None  # keep the fragment alive for the life of the process


def ensure_torchvision_importable() -> None:
    """Prepare torch so that ``import torchvision`` works; call before importing timm/open_clip."""
    global _LIBRARY
    if _LIBRARY is not None or 'torchvision' in sys.modules:
        return
    import torch

    spec = importlib.util.find_spec('torchvision')
    if spec is None or not spec.submodule_search_locations:
        return
    tv_dir = list(spec.submodule_search_locations)[0]
    so_path = next((os.path.join(tv_dir, f) for f in sorted(os.listdir(tv_dir))
                    if f.startswith('_C') and f.endswith('.so')), None)
    if so_path is not None:
        try:
            torch.ops.load_library(so_path)
            _LIBRARY = True
            return
        except (OSError, RuntimeError):
            pass
    lib = torch.library.Library('torchvision', 'FRAGMENT')
    lib.define('nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
    lib.define('qnms(Tensor qdets, Tensor qscores, float iou_threshold) -> Tensor')
    _LIBRARY = lib
