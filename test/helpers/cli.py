"""The project's command-line tools as tests see them: the console scripts of setup.py and their parsers."""
import argparse
import importlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: scripts whose command line is ROS's own (--ros-args, parameters), not argparse flags
ROS_NODES = {'segment_node', 'segment_lifecycle_node'}
#: modules run with ``python -m`` by scripts/demo.sh and the docs (not console scripts)
EXTRA_MODULES = {'output_saver': 'talk2dino_ros.cli.output_saver:main',
                 'latency_probe': 'talk2dino_ros.cli.latency_probe:main'}


def console_scripts():
    namespace = {}
    source = (REPO / 'setup.py').read_text()
    exec(compile(source.split('setup(\n')[0], 'setup.py', 'exec'), namespace)  # noqa: S102 - our own file
    scripts = dict(namespace['CONSOLE_SCRIPTS'])
    scripts.update(EXTRA_MODULES)
    return {name: target for name, target in scripts.items() if name not in ROS_NODES}


class _Captured(BaseException):
    """Raised from parse_args to hand the parser back (BaseException: passes run_cli's handlers)."""

    def __init__(self, parser):
        super().__init__()
        self.parser = parser


def capture_parser(target: str, monkeypatch) -> argparse.ArgumentParser:
    module_name, func = target.split(':')
    main = getattr(importlib.import_module(module_name), func)

    def stop(self, *args, **kwargs):
        raise _Captured(self)

    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', stop)
    monkeypatch.setattr(argparse.ArgumentParser, 'parse_known_args', stop)
    try:
        main([])
    except _Captured as captured:
        return captured.parser
    except TypeError:  # a main() without argv
        try:
            main()
        except _Captured as captured:
            return captured.parser
    raise AssertionError(f'{target} never parsed its arguments')
