"""export_model CLI and benchmark --backends (tiny random weights)."""
import dataclasses

import pytest

from talk2dino_ros.cli import export_model, speed_benchmark
from talk2dino_ros.cli.backend_comparison import parse_backends
from talk2dino_ros.cli.common import CliError
from talk2dino_ros.model.checkpoints import sha256_file
from talk2dino_ros.model.random_weights import tiny_segmenter_config, write_random_weights
from talk2dino_ros.model.segmenter import Segmenter

pytest.importorskip('onnx')


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp('export_weights')
    return {m: write_random_weights(root / m, method=m, width='tiny') for m in ('talk2dino', 'clip_dinoiser')}


def _flags(paths):
    return [f'--{role.replace("_", "-")}-weights={path}' for role, path in paths.items()] + ['--allow-random-weights']


def test_export_records_the_weights_and_the_size(weights, tmp_path, capsys):
    from talk2dino_ros.model.graph_export import read_metadata

    out = tmp_path / 'cd.onnx'
    code = export_model.main(['--method', 'clip_dinoiser', '--size', '224x320', '--out', str(out),
                              *_flags(weights['clip_dinoiser'])])
    assert code == 0, capsys.readouterr().err
    meta = read_metadata(out)
    assert meta['method'] == 'clip_dinoiser' and meta['input_size'] == '224x320'
    assert meta['weights_sha256'] == sha256_file(weights['clip_dinoiser']['openclip'])
    assert str(out) in capsys.readouterr().out


def test_default_output_is_the_backends_cache(weights):
    pytest.importorskip('onnxruntime')
    assert export_model.main(_flags(weights['talk2dino'])) == 0
    events = []
    Segmenter.from_config(dataclasses.replace(tiny_segmenter_config(weights['talk2dino']), backend='onnxruntime'),
                          on_event=events.append)
    assert not any('exporting' in e for e in events), events  # found in the cache, not exported again


@pytest.mark.parametrize('args, words', [
    (['--size', '100x140'], 'not a multiple of the patch size 14'),
    (['--size', 'big'], 'input size must be HxW'),
])
def test_bad_size_is_one_line(weights, capsys, args, words):
    assert export_model.main([*args, *_flags(weights['talk2dino'])]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and words in err[0]


def test_parse_backends_expands_precisions_and_reports_skips():
    def available(backend, precision):
        return None if (backend, precision) in {('torch', 'fp32'), ('openvino', 'fp32'), ('openvino', 'bf16')} \
            else f'{backend} {precision} not here'

    chosen, notes = parse_backends('torch,openvino,onnxruntime', available)
    assert chosen == [('torch', 'fp32'), ('openvino', 'fp32'), ('openvino', 'bf16')]
    assert notes == ['onnxruntime fp32 skipped: onnxruntime fp32 not here']
    with pytest.raises(CliError, match='unknown'):
        parse_backends('tflite', available)


def test_benchmark_backends_prints_one_table(capsys):
    pytest.importorskip('onnxruntime')
    code = speed_benchmark.main(['--random-weights', 'tiny', '--backends', 'torch:fp32,onnxruntime:fp32',
                                 '--sizes', '28x42', '--repeats', '1', '--warmup', '0', '--quiet', '--device', 'cpu'])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith('backend'))
    rows = lines[header + 2:header + 4]
    assert rows[0].startswith('torch fp32') and rows[1].startswith('onnxruntime fp32')
    assert 'vs torch' in lines[header] and 'labels equal' in lines[header]
    assert rows[0].split()[4] == '1.00x' and rows[1].endswith('100.000 %')


def test_bag_resume_fingerprint_tells_backends_apart():
    from types import SimpleNamespace

    from talk2dino_ros.cli.segment_bag import _model_fingerprint
    from talk2dino_ros.model.segmenter import SegmenterConfig

    torch_print = _model_fingerprint(SimpleNamespace(config=SegmenterConfig()))
    assert 'backend' not in torch_print  # runs recorded before backends existed still resume
    exported = _model_fingerprint(SimpleNamespace(config=SegmenterConfig(backend='openvino', precision='bf16')))
    assert exported['backend'] == 'openvino' and exported['precision'] == 'bf16'
