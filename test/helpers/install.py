"""Shared by the install tests: the README's install block, the emulated ROS 2 shell, offline rosdep."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / 'test' / 'install' / 'rosdistro'
VENV = Path(sys.prefix)  # the project venv: pip ROS 2 Kilted toolchain, torch, colcon, rosdep
DISTROS = ('jazzy', 'kilted')
OS_NAME = 'ubuntu:noble'
INSTALL_HEADING = '## Installing on a ROS 2 machine'


def readme_install_block() -> List[str]:
    """The command lines of the first ```bash block of the README's install section (comments stripped)."""
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    start = text.index(INSTALL_HEADING)
    section = text[start:text.find('\n## ', start + len(INSTALL_HEADING))]
    block = re.search(r'```bash\n(.*?)```', section, re.S)
    assert block, 'the install section has no ```bash block'
    lines = [line.split(' #')[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith('#')]


def readme_commands(prefix: str) -> List[List[str]]:
    """The README block's commands starting with ``prefix`` (``'rosdep install'``...), split like a shell."""
    found = []
    for line in readme_install_block():
        for part in line.split('&&'):
            words = shlex.split(part.strip())
            if ' '.join(words).startswith(prefix):
                found.append(words)
    return found


def ros_shell_env() -> Dict[str, str]:
    """The environment of a shell where ROS 2 is sourced and the venv with torch is active.

    Here the pip wheels in the project venv stand in for /opt/ros/<distro>: the ament prefix is the venv.
    """
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    env['VIRTUAL_ENV'] = str(VENV)
    env['PATH'] = f'{VENV / "bin"}{os.pathsep}{env.get("PATH", "")}'
    for var in ('AMENT_PREFIX_PATH', 'CMAKE_PREFIX_PATH'):
        env[var] = str(VENV)
    return env


def rosdep_env(home: Path) -> Dict[str, str]:
    """rosdep offline: a sources list naming only the local rules, the local rosdistro index, a private cache."""
    sources = home / 'sources.list.d'
    sources.mkdir(parents=True, exist_ok=True)
    (sources / '20-talk2dino-test.list').write_text(
        f'yaml file://{RULES / "rosdep" / "python.yaml"}\n', encoding='utf-8')
    env = dict(os.environ)
    # a machine before `rosdep install`: --ignore-src would also skip packages found on these paths
    for var in ('ROS_DISTRO', 'AMENT_PREFIX_PATH', 'ROS_PACKAGE_PATH', 'CMAKE_PREFIX_PATH'):
        env.pop(var, None)
    env.update(ROSDEP_SOURCE_PATH=str(sources), ROSDISTRO_INDEX_URL=f'file://{RULES / "index-v4.yaml"}',
               ROS_HOME=str(home / 'ros_home'), PATH=f'{VENV / "bin"}{os.pathsep}{env.get("PATH", "")}')
    return env


def run(cmd: Sequence[str], cwd: Path, env: Dict[str, str], timeout: float = 600.0,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run ``cmd``; on an unexpected exit code fail with the tail of its output."""
    proc = subprocess.run(list(cmd), cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}')
    return proc


def make_workspace(base: Path) -> Path:
    """A colcon workspace with this repository in ``src/talk2dino_ros`` (as `git clone` would put it)."""
    ws = base / 't2d_ws'
    (ws / 'src').mkdir(parents=True)
    (ws / 'src' / 'talk2dino_ros').symlink_to(ROOT, target_is_directory=True)
    return ws
