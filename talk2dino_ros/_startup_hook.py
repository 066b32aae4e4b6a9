"""Start-up hook: run talk2dino_ros's torchvision fix just before the first ``import torchvision``.

``talk2dino_ros._compat.install_pth`` copies this file into a venv's site-packages as a top-level module
and adds a .pth line that calls :func:`install`. It must stay self-contained: at interpreter start it
imports nothing beyond ``sys`` (no torch, and not the talk2dino_ros package, whose location on
``sys.path`` is only known once the program runs). See ``talk2dino_ros/_compat.py`` for the fix itself.
"""
import sys


class TorchvisionHook:
    """A ``sys.meta_path`` entry that never loads anything itself: on the first lookup of ``torchvision``
    it steps aside, applies the fix and lets the regular finders import torchvision."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'torchvision':
            return None
        uninstall()  # first: the fix looks torchvision up through sys.meta_path again
        try:
            from talk2dino_ros._compat import ensure_torchvision_importable
            ensure_torchvision_importable()
        except Exception:  # package removed or fix failed: the plain import and its own error follow
            pass
        return None


def install() -> None:
    """Put the hook first in ``sys.meta_path`` (once; not when torchvision is already imported)."""
    if 'torchvision' in sys.modules:
        return
    if not any(type(f).__name__ == 'TorchvisionHook' for f in sys.meta_path):
        sys.meta_path.insert(0, TorchvisionHook())


def uninstall() -> None:
    """Take the hook out of ``sys.meta_path`` (no-op when it is not there)."""
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != 'TorchvisionHook']
