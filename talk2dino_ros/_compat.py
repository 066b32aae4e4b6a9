"""Make ``timm`` and ``open_clip`` importable next to a CPU build of torch.

PyPI's torchvision wheel is CUDA-built; with the CPU torch wheel its ``_C`` extension cannot be loaded
and ``import torchvision`` (hence ``import timm`` / ``import open_clip``) fails with
"operator torchvision::nms does not exist". We only need torchvision's Python transforms, so when the
extension does not load we declare the two operator schemas its Python side registers fakes for.
Where ``_C`` loads (a matching CUDA/CPU build) this is a no-op.

``scripts/setup.sh`` also installs a one-line ``.pth`` start-up hook into the venv (:func:`install_pth`) that
runs this fix just before anything first imports ``torchvision``, so a user's own ``import timm`` works in
the project venv too; torch itself is not imported at interpreter start.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
from typing import Optional

_LIBRARY = None  # keep the fragment alive for the life of the process


def ensure_torchvision_importable() -> None:
    """Prepare torch so that ``import torchvision`` works; call before importing timm/open_clip."""
    global _LIBRARY
    if _LIBRARY is not None or 'torchvision' in sys.modules:
        return
    hook = sys.modules.get(HOOK_MODULE)
    if hook is not None:  # the fix runs now: the start-up hook must not run it again from find_spec below
        hook.uninstall()
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


# ------------------------------------------------------------------------------------------ start-up hook
#: the hook module (a copy of ``_startup_hook.py``, top-level so that start-up never imports this package)
#: and the .pth line that site.py runs at every interpreter start (lines starting with ``import`` run)
HOOK_MODULE = '_talk2dino_ros_startup_hook'
PTH_NAME = 'talk2dino_ros_torchvision.pth'
PTH_LINE = f'import {HOOK_MODULE}; {HOOK_MODULE}.install()'


def install_pth(site_dir: Optional[str] = None) -> str:
    """Install the start-up hook into ``site_dir`` (default: this interpreter's site-packages).

    Writes ``_talk2dino_ros_startup_hook.py`` (a copy of ``talk2dino_ros/_startup_hook.py``) and
    :data:`PTH_NAME`; every interpreter of that environment then runs :func:`ensure_torchvision_importable`
    just before its first ``import torchvision``, so ``import timm`` in a user's own script works without
    importing this package first. Returns the .pth path.
    """
    folder = site_dir or sysconfig.get_paths()['purelib']
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '_startup_hook.py'), encoding='utf-8') as f:
        _write_atomic(os.path.join(folder, HOOK_MODULE + '.py'), f.read())
    target = os.path.join(folder, PTH_NAME)
    _write_atomic(target, PTH_LINE + '\n')  # after the module: the line must never name a missing module
    return target


def _write_atomic(path: str, text: str) -> None:
    """Write then rename: an interpreter starting meanwhile never reads half a file."""
    from talk2dino_ros.atomic_files import atomic_write_text  # stdlib only, like this module

    atomic_write_text(path, text)
