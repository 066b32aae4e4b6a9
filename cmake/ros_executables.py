"""Write one small ``ros2 run`` wrapper per console script of setup.py (called by CMakeLists.txt).

Usage: python ros_executables.py SETUP_PY OUT_DIR PYTHON
The table ``CONSOLE_SCRIPTS`` in setup.py stays the single list of executables (pip and colcon alike);
each wrapper's shebang is PYTHON, the interpreter the build ran with (a venv that has torch).
Prints the names written, one per line.
"""
import ast
import os
import sys
from pathlib import Path

TEMPLATE = '''#!{python}
# Generated at build time from setup.py's CONSOLE_SCRIPTS: `ros2 run talk2dino_ros {name}`.
import sys

from {module} import {func}

if __name__ == '__main__':
    sys.exit({func}())
'''


def console_scripts(setup_py: Path) -> dict:
    """The literal ``CONSOLE_SCRIPTS`` dict of setup.py (name -> 'module:function')."""
    for node in ast.walk(ast.parse(setup_py.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'CONSOLE_SCRIPTS':
            return ast.literal_eval(node.value)
    raise SystemExit(f'CONSOLE_SCRIPTS not found in {setup_py}')


def main(argv: list) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    setup_py, out_dir, python = Path(argv[0]), Path(argv[1]), argv[2]
    out_dir.mkdir(parents=True, exist_ok=True)
    scripts = console_scripts(setup_py)
    for stale in out_dir.iterdir():
        if stale.name not in scripts:
            stale.unlink()
    for name, target in sorted(scripts.items()):
        module, func = target.split(':')
        path = out_dir / name
        text = TEMPLATE.format(python=python, name=name, module=module, func=func)
        if not path.is_file() or path.read_text(encoding='utf-8') != text:
            path.write_text(text, encoding='utf-8')
        os.chmod(path, 0o755)
        print(name)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
