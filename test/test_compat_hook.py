"""The venv is self-consistent: timm / open_clip / torchvision import in a fresh interpreter (issue 18).

On the default CPU set-up PyPI's torchvision wheel cannot load its ``_C`` extension; the start-up hook
that ``scripts/setup.sh`` installs (``talk2dino_ros._compat.install_pth``) applies the fix just before the
first ``import torchvision``.
"""
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from talk2dino_ros import _compat

REPO = Path(__file__).resolve().parents[1]


def _run(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args, '-c', code], cwd=str(cwd), capture_output=True, text=True,
                          timeout=300)


def test_venv_imports_timm_open_clip_torchvision(tmp_path):
    site = Path(sysconfig.get_paths()['purelib'])
    if not (site / _compat.PTH_NAME).is_file():
        pytest.fail(f'{site / _compat.PTH_NAME} is missing: run bash scripts/setup.sh')
    # cwd outside the repo: the installed package and the installed hook, as in a user's own script
    proc = _run('import timm, open_clip, torchvision; print("ok")', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == 'ok'
    assert 'Error processing line' not in proc.stderr


def test_startup_does_not_import_torch(tmp_path):
    proc = _run('import sys; print("torch" in sys.modules, '
                'any(type(f).__name__ == "_TorchvisionHook" for f in sys.meta_path))', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ['False', 'True']


def test_pth_line_installs_a_working_hook(tmp_path):
    """The exact line install_pth writes, processed by site.py in an interpreter without the real hook."""
    written = Path(_compat.install_pth(str(tmp_path)))
    assert written == tmp_path / _compat.PTH_NAME
    assert written.read_text() == _compat.PTH_LINE + '\n'
    purelib = sysconfig.get_paths()['purelib']
    code = (f'import sys; sys.path[:0] = [{str(REPO)!r}, {purelib!r}]; import site; '
            f'site.addsitedir({str(tmp_path)!r}); '
            'assert "torch" not in sys.modules; '
            'assert any(type(f).__name__ == "_TorchvisionHook" for f in sys.meta_path); '
            'import timm, torchvision; '
            'assert not any(type(f).__name__ == "_TorchvisionHook" for f in sys.meta_path); print("ok")')
    proc = _run(code, '-S', cwd=tmp_path)  # -S: the venv's own .pth files are not processed
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == 'ok'


def test_hook_is_inert_for_other_modules():
    hook = _compat._TorchvisionHook()
    assert hook.find_spec('numpy') is None
    assert hook.find_spec('torchvision_extra') is None
