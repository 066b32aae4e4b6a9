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
from typing import Optional

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


# ------------------------------------------------------------------------------------------ import hook
#: file name of the start-up hook in the venv's site-packages (see :func:`install_pth`)
PTH_NAME = 'talk2dino_ros_torchvision.pth'
#: its one line: site.py executes lines that start with ``import``. ``find_spec`` of the top-level package
#: imports nothing, and ``getattr`` tolerates an older installed copy, so an uninstalled or outdated
#: package leaves the line silent instead of printing a traceback at every start.
PTH_LINE = ("import importlib.util as _u; _u.find_spec('talk2dino_ros') and getattr("
            "__import__('talk2dino_ros._compat').__dict__['_compat'], 'install_import_hook', lambda: None)()")


class _TorchvisionHook:
    """A ``sys.meta_path`` entry that runs :func:`ensure_torchvision_importable` just before the first
    ``import torchvision``, then steps aside (it never loads anything itself). Installing it imports
    nothing, so interpreter start-up stays as fast as without it."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: D401 - importlib protocol
        if fullname != 'torchvision':
            return None
        remove_import_hook()  # first: the fix below looks torchvision up through sys.meta_path again
        try:
            ensure_torchvision_importable()
        except Exception:  # never break an import because of the fix; the normal error then shows
            pass
        return None  # let the regular finders import torchvision


def install_import_hook() -> bool:
    """Put the torchvision hook first in ``sys.meta_path`` (once); False when torchvision is already in."""
    if 'torchvision' in sys.modules or _LIBRARY is not None:
        return False
    if not any(isinstance(f, _TorchvisionHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionHook())
    return True


def remove_import_hook() -> None:
    """Take the hook out of ``sys.meta_path`` (no-op when it is not there)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TorchvisionHook)]


def install_pth(site_dir: Optional[str] = None) -> str:
    """Write :data:`PTH_NAME` into ``site_dir`` (default: this interpreter's site-packages); returns its path.

    Every interpreter of that environment then installs the hook at start, so ``import timm`` in a
    user's own script works without importing this package first.
    """
    import sysconfig

    folder = site_dir or sysconfig.get_paths()['purelib']
    target = os.path.join(folder, PTH_NAME)
    tmp = target + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as fh:
        fh.write(PTH_LINE + '\n')
    os.replace(tmp, target)
    return target

