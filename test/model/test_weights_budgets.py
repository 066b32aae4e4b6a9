"""Crafted weight files of a few kB must cost little: one CheckpointError line naming the file, <2 s, <200 MB.

Each file is loaded in a child process (test/helpers/load_probe.py) that measures the peak RSS of that
load alone and caps its address space, so a reader without budgets fails the test instead of the machine.
"""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import hostile_weights as hw

HELPERS = Path(__file__).resolve().parents[1] / 'helpers'
MB = 1 << 20
BIG = 256 * MB  # what the bombs claim; each file stays well under 1 MB


def _corrupt_deflated_pickle(path: Path) -> Path:
    """A valid archive whose deflated data.pkl no longer inflates (a bad block type)."""
    with zipfile.ZipFile(path, 'w') as zf:
        for name, data in {'data.pkl': hw.weight_pickle(4, [4], [1]), 'code/__torch__/m.py': hw.NODE_CODE,
                           'data/0': bytes(16)}.items():
            zf.writestr(zipfile.ZipInfo(f'archive/{name}'), data,
                        compress_type=zipfile.ZIP_DEFLATED if name == 'data.pkl' else zipfile.ZIP_STORED)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo('archive/data.pkl')
    raw = bytearray(path.read_bytes())
    name_len, extra_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], 'little'), \
        int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], 'little')
    start = info.header_offset + 30 + name_len + extra_len
    raw[start:start + 8] = b'\xff' * 8
    path.write_bytes(bytes(raw))
    return path


def _craft(d: Path):
    """name -> (path, loader) for every class of crafted file."""
    small = {'0': bytes(16)}
    weight = hw.weight_pickle(4, [4], [1])
    files = {
        'module_dag': (hw.torchscript(d / 'dag.pt', hw.dag_pickle(60), {}), 'clip'),
        'quadratic_regex': (hw.torchscript(d / 'redos.pt', weight, small,
                                           extra={'code/__torch__/slow.py': b'class Slow(Module):\n' + b' \n' * 100_000}), 'clip'),
        'storage_bomb': (hw.torchscript(d / 'storage.pt', hw.weight_pickle(BIG // 4, [4], [1]),
                                        {'0': ('deflate-zeros', BIG)}), 'clip'),
        'byteorder_bomb': (hw.torchscript(d / 'byteorder.pt', weight, small,
                                          extra={'byteorder': ('deflate-spaces', BIG // 2)}), 'clip'),
        'code_bomb': (hw.torchscript(d / 'code.pt', weight, small,
                                     extra={'code/__torch__/big.py': ('deflate-spaces', BIG // 2)}), 'clip'),
        'infinite_size': (hw.torchscript(d / 'inf.pt', hw.weight_pickle(float('inf'), [4], [1]), small), 'clip'),
        'corrupt_pickle': (_corrupt_deflated_pickle(d / 'pickle.pt'), 'clip'),
        'claimed_width': (hw.torchscript(d / 'wide.pt', hw.text_tower_pickle(2048, 12), {'0': bytes(4)},
                                         code=hw.any_param_code()), 'clip'),
        'compressed_pth_record': (hw.write_zip(d / 'dinov2.pth', {
            'data.pkl': hw.program(b'}(' + hw.text('w') + hw.tensor('0', BIG // 4, [4], [1]) + b'u'),
            'data/0': ('deflate-zeros', BIG), 'byteorder': b'little', 'version': b'3\n'}), 'pth'),
        'dinov2_claimed_depth': (hw.dinov2_without_blocks(d / 'dinov2_vitl14_reg4_pretrain.pth'), 'dinov2'),
    }
    return files


@pytest.fixture(scope='module')
def probed(tmp_path_factory):
    files = _craft(tmp_path_factory.mktemp('hostile'))
    for name, (path, _) in files.items():
        assert path.stat().st_size < MB, name  # small on disk: the cost is all in the reading
    argv = [str(a) for path, loader in files.values() for a in (path, loader)]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=os.pathsep.join(
        [str(HELPERS.parents[1])] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, str(HELPERS / 'load_probe.py'), *argv], capture_output=True, text=True,
                          timeout=300, env=env)
    reports = {json.loads(line)['path']: json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{')}
    return {name: reports.get(str(path), {'error': 'no report', 'message': proc.stderr[-2000:]})
            for name, (path, _) in files.items()}


@pytest.mark.parametrize('name', ['module_dag', 'quadratic_regex', 'storage_bomb', 'byteorder_bomb', 'code_bomb',
                                  'infinite_size', 'corrupt_pickle', 'claimed_width', 'compressed_pth_record',
                                  'dinov2_claimed_depth'])
def test_crafted_file_is_one_error_line_within_budget(probed, name):
    report = probed[name]
    assert report['error'] == 'CheckpointError', report
    message = report['message']
    assert '\n' not in message and Path(report['path']).name in message, message
    assert report['seconds'] < 2.0, report
    assert report['peak_bytes'] < 200 * MB, report


@pytest.mark.parametrize('name, reason', [
    ('module_dag', 'more than 100000 objects'), ('storage_bomb', 'compressed'), ('byteorder_bomb', 'byteorder'),
    ('code_bomb', 'code text'), ('infinite_size', 'malformed storage reference'), ('corrupt_pickle', 'corrupt'),
    ('claimed_width', 'crafted view'), ('compressed_pth_record', 'compressed'),
    ('dinov2_claimed_depth', "missing ['blocks.0.")])
def test_crafted_file_is_refused_for_its_own_reason(probed, name, reason):
    assert reason in probed[name]['message'], probed[name]


def test_text_tower_larger_than_published_is_refused_from_shapes_alone():
    import torch
    from talk2dino_ros.errors import CheckpointError
    from talk2dino_ros.model.text import _text_tower_shape
    meta = {'ln_final.weight': torch.empty(2048, device='meta'),
            'text_projection': torch.empty(2048, 512, device='meta')}
    meta.update({f'transformer.resblocks.{i}.ln_1.weight': torch.empty(2048, device='meta') for i in range(12)})
    with pytest.raises(CheckpointError, match=r'width 2048, 12 layers.*larger than'):
        _text_tower_shape(meta, 'wide.pt')
    gappy = {k: torch.empty(64, device='meta') for k in ('ln_final.weight', 'transformer.resblocks.0.ln_1.weight',
                                                          'transformer.resblocks.7.ln_1.weight')}
    gappy['text_projection'] = torch.empty(64, 32, device='meta')
    with pytest.raises(CheckpointError, match=r'numbers its text blocks'):
        _text_tower_shape(gappy, 'gappy.pt')
