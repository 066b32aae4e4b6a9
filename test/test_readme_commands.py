"""Every command the README shows names a real console script, written as ``.venv/bin/NAME`` in code blocks,
and every ``--flag`` it passes exists in that tool's parser (issue 18); every tool command runs (issue 24)."""
import argparse
import json
import os
import re
import shlex
import sys
from pathlib import Path

import numpy as np
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


# ------------------------------------------------------------------------------------------ running them
# Every tool command of the README is also run (issue 24), in README order, in one sandbox that stands in for
# a user's checkout: tiny random weights where fetch_weights would put the real ones (~/.cache/talk2dino_ros
# under a sandbox HOME), a photo, small datasets in the benchmark layouts, a COCO-captions folder. What is
# changed, and only that: --allow-random-weights is added where a tool loads a model; published-size random
# weights (--random-weights vitb, --width vitb) become tiny ones and the speed benchmark runs one repeat of one
# pipeline; evaluate scores one image per benchmark without PAMR; train fit runs 2 epochs; fetch_weights'
# download is replaced by a copy (no network in tests).
#: tools that run until stopped (ROS nodes), or are not ours
NOT_RUN = ROS_NODES | {'image_folder_publisher'} | VENV_PROGRAMS
#: tools whose flags include --allow-random-weights and load a model
LOADS_MODEL = {'segment_image', 'evaluate', 'segment_bag', 'benchmark', 'export_model'}
BENCHMARK_SPEED = ['--repeats', '1', '--warmup', '0', '--pipelines', 'whole-plain', '--memory-classes', 'none',
                   '--cameras', '1', '--no-first-frame', '--quiet']


def runnable_commands():
    """(where, command) of every README command that runs one of our tools, in README order."""
    out = [(f'line {line}', c) for line, c in code_block_commands()] + [('inline', c) for c in inline_commands()]
    keep = []
    for where, command in out:
        program = _program(command)
        if not program or not program.startswith('.venv/bin/'):
            continue
        if program[len('.venv/bin/'):] in NOT_RUN:
            continue
        keep.append((where, command))
    return keep


def adapt(command, sandbox: Path):
    """(tool, argv, env) of a README command as the sandbox runs it (see above)."""
    env = {}
    tokens = list(command)
    while ENV_ASSIGNMENT.match(tokens[0]):
        key, value = tokens.pop(0).split('=', 1)
        env[key] = value
    tool, args = tokens[0][len('.venv/bin/'):], tokens[1:]
    # the shell's work: ~ expanded (HOME is the sandbox's); /tmp/... kept inside the sandbox
    args = [str(sandbox / a[len('/tmp/'):]) if a.startswith('/tmp/') else a for a in args]
    args = [os.path.expanduser(a) if a.startswith('~') else a for a in args]
    if tool == 'make_random_weights' or tool == 'benchmark':
        for flag in ('--width', '--random-weights'):
            if flag in args and args[args.index(flag) + 1] != 'tiny':
                args[args.index(flag) + 1] = 'tiny'
    if tool == 'benchmark':
        args += BENCHMARK_SPEED + ([] if '--threads' in args else ['--threads', '1'])
    if tool == 'train' and args[:1] == ['fit'] and '--help' not in args:
        args += ['--epochs', '2', '--no-progress']
    if tool == 'train' and args[:1] == ['extract'] and '--help' not in args:
        args += ['--allow-random-weights', '--no-progress']
    if tool == 'evaluate':  # one image per benchmark, without PAMR (seconds per image on a busy CPU)
        args += ['--quiet'] + ([] if '--limit' in args or '--bag' in args else ['--limit', '1'])
        if '--method' not in args and '--bag' not in args:
            args.append('--no-pamr')
    if tool in LOADS_MODEL and '--help' not in args and '--allow-random-weights' not in args \
            and '--random-weights' not in args:
        args.append('--allow-random-weights')
    return tool, args, env


def _write_coco(images: Path, annotations: Path, seed: int) -> None:
    from PIL import Image

    images.mkdir(parents=True, exist_ok=True)
    annotations.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    entries, captions = [], []
    for i in range(3):
        name = f'COCO_{images.name}_{i:012d}.jpg'
        Image.fromarray(rng.integers(0, 255, (30 + 5 * i, 40, 3), dtype=np.uint8)).save(images / name)
        entries.append({'id': 10 + i, 'file_name': name, 'height': 30 + 5 * i, 'width': 40})
        captions += [{'id': 100 + 2 * i + c, 'image_id': 10 + i, 'caption': f'picture {i} caption {c}'}
                     for c in range(2)]
    annotations.write_text(json.dumps({'info': {}, 'images': entries, 'annotations': captions}))


@pytest.fixture(scope='module')
def sandbox(tmp_path_factory):
    """A user's checkout after setup, with tiny random weights and small inputs for every README command."""
    import shutil

    import cv2

    from helpers.datasets import make_layout

    sys.path.insert(0, str(Path(__file__).parent / 'data'))
    from test_converters import _detail_json, _raw_maps

    from talk2dino_ros.model.random_weights import write_random_weights

    root = tmp_path_factory.mktemp('readme')
    weights = root / 'home' / '.cache' / 'talk2dino_ros'
    write_random_weights(weights)
    write_random_weights(weights, method='clip_dinoiser')
    shutil.copytree(REPO / 'config', root / 'config')
    rng = np.random.default_rng(0)
    assert cv2.imwrite(str(root / 'photo.jpg'), rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))
    # its registered depth at half resolution, millimetres (the README's segment_image --depth)
    assert cv2.imwrite(str(root / 'photo_depth.png'), rng.integers(500, 4000, (20, 28), dtype=np.uint16))
    for name in ('voc21', 'ade20k'):
        make_layout(root / 'data', name, n=2)
    _detail_json(root / 'data')  # data/VOCdevkit/VOC2010/trainval_merged.json
    (root / 'data' / 'VOCdevkit' / 'VOC2010' / 'JPEGImages').mkdir(exist_ok=True)
    _raw_maps(root / 'data' / 'coco_stuff164k')
    for split, seed in (('train2014', 1), ('val2014', 2)):
        _write_coco(root / 'coco' / split, root / 'coco' / 'annotations' / f'captions_{split}.json', seed)
    return root


RUNNABLE = runnable_commands()


def test_the_readme_runs_the_tools():
    tools = {adapt(c, Path('/sandbox'))[0] for _, c in RUNNABLE}
    assert {'fetch_weights', 'segment_image', 'evaluate', 'train', 'make_demo_bag', 'make_random_weights',
            'segment_bag', 'benchmark', 'convert_dataset'} <= tools


@pytest.mark.slow
@pytest.mark.parametrize('where,command', RUNNABLE, ids=[f'{w}: {" ".join(c)[:60]}' for w, c in RUNNABLE])
def test_readme_command_runs(where, command, sandbox, monkeypatch, capsys):
    import importlib

    monkeypatch.setenv('HOME', str(sandbox / 'home'))  # before adapt: it expands ~ as the shell would
    tool, args, env = adapt(command, sandbox)
    if tool == 'benchmark' and '--devices' in args and 'cuda' in args[args.index('--devices') + 1]:
        import torch

        if not torch.cuda.is_available():
            pytest.skip('a CUDA command, and this machine has no GPU')
    monkeypatch.chdir(sandbox)
    monkeypatch.delenv('T2D_WEIGHTS_DIR', raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if tool == 'fetch_weights':
        from talk2dino_ros.cli import fetch_weights

        def copy_instead(spec, dest_dir, timeout=30.0, force=False, progress=True):
            dest = Path(dest_dir) / spec.filename
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():  # the tiny random files stay; others get a placeholder
                dest.write_bytes(b'placeholder for ' + spec.name.encode())
            return dest
        monkeypatch.setattr(fetch_weights, 'download', copy_instead)
    module, func = SCRIPTS[tool].split(':')
    main = getattr(importlib.import_module(module), func)
    try:
        code = main(args)
    except SystemExit as exc:  # --help
        code = exc.code or 0
    captured = capsys.readouterr()
    assert code == 0, f'{tool} {" ".join(args)} exited {code}:\n{captured.err[-3000:]}'
    if tool in LOADS_MODEL and '--help' not in args:
        assert 'RANDOM weights' in captured.err or 'RANDOM WEIGHTS' in captured.out  # never passes for real
