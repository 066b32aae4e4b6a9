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
IS_HOOK = 'type(f).__name__ == "TorchvisionHook"'


def _run(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args, '-c', code], cwd=str(cwd), capture_output=True, text=True,
                          timeout=300)


def _require_installed_hook() -> None:
    site = Path(sysconfig.get_paths()['purelib'])
    if not (site / _compat.PTH_NAME).is_file():
        pytest.fail(f'{site / _compat.PTH_NAME} is missing: run bash scripts/setup.sh')


def test_venv_imports_timm_open_clip_torchvision(tmp_path):
    _require_installed_hook()
    # cwd outside the repo: a user's own script in the project venv
    proc = _run('import timm, open_clip, torchvision; print("ok")', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == 'ok'
    assert 'Error processing line' not in proc.stderr


def test_startup_imports_neither_torch_nor_the_package(tmp_path):
    _require_installed_hook()
    proc = _run(f'import sys; print("torch" in sys.modules, "talk2dino_ros" in sys.modules, '
                f'any({IS_HOOK} for f in sys.meta_path))', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the package must not be bound at start: a source checkout on sys.path would be shadowed
    assert proc.stdout.split() == ['False', 'False', 'True']


def test_installed_files_work_in_a_clean_interpreter(tmp_path):
    """What install_pth writes, processed by site.py in an interpreter without the venv's own .pth files."""
    written = Path(_compat.install_pth(str(tmp_path)))
    assert written == tmp_path / _compat.PTH_NAME
    assert written.read_text() == _compat.PTH_LINE + '\n'
    assert (tmp_path / (_compat.HOOK_MODULE + '.py')).read_text() == \
        (REPO / 'talk2dino_ros' / '_startup_hook.py').read_text()
    purelib = sysconfig.get_paths()['purelib']
    code = (f'import sys; sys.path[:0] = [{str(REPO)!r}, {purelib!r}]; import site; '
            f'site.addsitedir({str(tmp_path)!r}); '
            'assert "torch" not in sys.modules; '
            f'assert any({IS_HOOK} for f in sys.meta_path); '
            'import timm, open_clip, torchvision; '
            f'assert not any({IS_HOOK} for f in sys.meta_path); print("ok")')
    proc = _run(code, '-S', cwd=tmp_path)  # -S: the venv's own .pth files are not processed
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == 'ok'


def test_hook_ignores_other_modules():
    from talk2dino_ros._startup_hook import TorchvisionHook

    hook = TorchvisionHook()
    assert hook.find_spec('numpy') is None
    assert hook.find_spec('torchvision_extra') is None
