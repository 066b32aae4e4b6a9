"""Every command the README shows names a real console script, written as ``.venv/bin/NAME`` in code blocks,
and every ``--flag`` it passes exists in that tool's parser (issue 18)."""
import argparse
import re
import shlex
from pathlib import Path

import pytest

from helpers.cli import ROS_NODES, capture_parser, console_scripts

REPO = Path(__file__).resolve().parents[1]
README = (REPO / 'README.md').read_text(encoding='utf-8')
SCRIPTS = console_scripts()
ALL_SCRIPTS = set(SCRIPTS) | ROS_NODES
#: other programs the README may run from the venv
VENV_PROGRAMS = {'python', 'pip', 'csCreateTrainIdLabelImgs'}
ENV_ASSIGNMENT = re.compile(r'^[A-Z_][A-Z0-9_]*=')


def code_block_commands():
    """(line number, command) of every shell command in the README's bash code blocks."""
    commands = []
    for block in re.finditer(r'```bash\n(.*?)```', README, re.DOTALL):
        start = README[:block.start()].count('\n') + 2
        text = block.group(1).replace('\\\n', ' ')  # continuation lines
        for offset, line in enumerate(text.splitlines()):
            tokens = shlex.split(line, comments=True)
            for command in _split_commands(tokens):
                commands.append((start + offset, command))
    return commands


def inline_commands():
    """Inline code spans that run one of our tools (``.venv/bin/NAME ...`` or ``NAME --flag ...``)."""
    found = []
    for span in re.findall(r'`([^`\n]+)`', README):
        try:
            tokens = shlex.split(span)
        except ValueError:
            continue
        for command in _split_commands(tokens):
            name = _program(command)
            if name is None:
                continue
            bare = name.split('/')[-1]
            if name == '.venv/bin/':  # prose naming the folder
                continue
            if name.startswith('.venv/bin/') or (bare in SCRIPTS and any(t.startswith('--') for t in command)):
                found.append(command)
    return found


def _split_commands(tokens):
    command = []
    for token in tokens:
        if token in ('&&', ';', '||', '|'):
            if command:
                yield command
            command = []
        else:
            command.append(token)
    if command:
        yield command


def _program(command):
    for token in command:
        if not ENV_ASSIGNMENT.match(token):
            return token
    return None


_PARSERS = {}


def parser_of(name, monkeypatch):
    if name not in _PARSERS:
        _PARSERS[name] = capture_parser(SCRIPTS[name], monkeypatch)
    return _PARSERS[name]


def unknown_flags(name, args, monkeypatch):
    """Flags in ``args`` that the tool (or its subcommand) does not define."""
    parser = parser_of(name, monkeypatch)
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if subs:
        chosen = next((t for t in args if not t.startswith('-')), None)
        assert chosen in subs[0].choices, f'{name}: unknown subcommand {chosen!r}'
        parser = subs[0].choices[chosen]
    known = {opt for action in parser._actions for opt in action.option_strings}
    flags = [t.split('=', 1)[0] for t in args if t.startswith('--')]
    return [f for f in flags if f not in known]


def check(command, monkeypatch, require_prefix):
    args = command[command.index(_program(command)) + 1:]
    program = _program(command)
    if program == 'ros2' and args[:2] == ['run', 'talk2dino_ros']:
        name, args = args[2], args[3:]
        assert name in ALL_SCRIPTS, f'ros2 run talk2dino_ros {name}: no such executable'
    elif program.startswith('.venv/bin/'):
        name = program[len('.venv/bin/'):]
        assert name in ALL_SCRIPTS or name in VENV_PROGRAMS, f'{program}: not installed by this project'
        if name in VENV_PROGRAMS:
            return
    else:
        assert not (require_prefix and program in ALL_SCRIPTS), \
            f'{" ".join(command)}: write .venv/bin/{program} (the README is runnable as written after setup)'
        return
    if name in ROS_NODES:
        return  # ROS arguments (--ros-args ...), not argparse flags
    bad = unknown_flags(name, args, monkeypatch)
    assert not bad, f'{" ".join(command)}: {name} has no {", ".join(bad)}'


def test_code_blocks_have_commands():
    programs = {_program(c) for _, c in code_block_commands()}
    assert {'.venv/bin/evaluate', '.venv/bin/segment_image', '.venv/bin/train', '.venv/bin/fetch_weights'} <= programs


@pytest.mark.parametrize('line,command', code_block_commands(), ids=lambda v: str(v) if isinstance(v, int) else None)
def test_code_block_command(line, command, monkeypatch):
    check(command, monkeypatch, require_prefix=True)


def test_inline_commands(monkeypatch):
    commands = inline_commands()
    assert any(c[0] == '.venv/bin/convert_dataset' for c in commands)
    for command in commands:
        check(command, monkeypatch, require_prefix=False)


def test_the_checker_catches_mistakes(monkeypatch):
    with pytest.raises(AssertionError, match='has no --no-such-flag'):
        check(['.venv/bin/evaluate', '--no-such-flag'], monkeypatch, True)
    with pytest.raises(AssertionError, match='write .venv/bin/segment_image'):
        check(['segment_image', 'a.png'], monkeypatch, True)
    with pytest.raises(AssertionError, match='not installed'):
        check(['.venv/bin/segment_everything'], monkeypatch, True)
    with pytest.raises(AssertionError, match='has no --epochz'):
        check(['.venv/bin/train', 'fit', '--epochz', '3'], monkeypatch, True)
