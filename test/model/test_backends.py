"""Exported backends (openvino, onnxruntime): fp32 equals the torch path on both methods, slide and whole,
every option; the exported file's metadata, cache and one-line refusals (tiny random weights)."""
import dataclasses

import numpy as np
import pytest

from talk2dino_ros.errors import Talk2DinoError
from talk2dino_ros.model import runtimes
from talk2dino_ros.model.exported_network import ExportedNetwork, cache_folder, onnx_cache_name
from talk2dino_ros.model.graph_export import ExportError, GraphFacts, check_metadata, export_onnx, read_metadata
from talk2dino_ros.model.random_weights import tiny_segmenter_config, write_random_weights
from talk2dino_ros.model.segmenter import Segmenter
from talk2dino_ros.model.types import InferenceOptions

CPU_BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(
    not _installed, reason=f'{name} not installed (pip install .[{name}])'))
    for name, _installed in [(b, __import__('importlib').util.find_spec(b) is not None)
                             for b in ('onnxruntime', 'openvino')]]
NAMES = ['grass', 'sky', 'cat', 'road']
MAX_ABS = 1e-4
MIN_LABEL_AGREEMENT = 0.9999


def _scene(height, width, seed):
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = 190
    img[height // 2:, : width // 2] = (20, 160, 40)
    img[: height // 3, width // 2:] = (30, 60, 220)
    return np.clip(img.astype(int) + rng.integers(-25, 25, img.shape), 0, 255).astype(np.uint8)


IMAGES = [_scene(96, 150, 0), _scene(130, 61, 1)]


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp('backend_weights')
    return {method: write_random_weights(root / method, method=method, width='tiny')
            for method in ('talk2dino', 'clip_dinoiser')}


def _options(method):
    if method == 'talk2dino':
        # each switch on and off; PAMR with and without the cleaning it refines
        return [InferenceOptions(background=bg, bg_clean=clean, pamr=pamr, pamr_iterations=3)
                for bg, clean, pamr in [(False, False, False), (True, False, False), (True, True, False),
                                        (False, True, True), (True, False, True)]]
    return [InferenceOptions(background=False), InferenceOptions(background=True),
            InferenceOptions(background=True, background_rule=False)]


#: small frames keep the tests fast: the short side goes to 112 and slide uses 112-pixel windows
SMALL = dict(resolution=112, window=112, stride=56)


def _segmenter(weights, method, mode, backend='torch', **changes):
    config = dataclasses.replace(tiny_segmenter_config(weights[method], method=method), mode=mode,
                                 backend=backend, **SMALL, **changes)
    seg = Segmenter.from_config(config, on_event=lambda message: None)
    return seg


@pytest.mark.parametrize('backend', CPU_BACKENDS)
@pytest.mark.parametrize('method', ['talk2dino', 'clip_dinoiser'])
@pytest.mark.parametrize('mode', ['slide', 'whole'])
def test_fp32_backend_matches_torch_for_every_option(weights, method, mode, backend):
    reference = _segmenter(weights, method, mode)
    exported = _segmenter(weights, method, mode, backend)
    assert isinstance(exported.exported, ExportedNetwork) and reference.exported is None
    for options in _options(method):
        vocab_ref = reference.build_vocabulary(NAMES, background=options.background)
        vocab_exp = exported.build_vocabulary(NAMES, background=options.background)
        for image in IMAGES:
            want = reference.segment(image, vocabulary=vocab_ref, options=options)
            got = exported.segment(image, vocabulary=vocab_exp, options=options)
            assert np.abs(got.scores - want.scores).max() <= MAX_ABS, options
            assert (got.labels == want.labels).mean() >= MIN_LABEL_AGREEMENT, options


@pytest.mark.parametrize('backend', CPU_BACKENDS)
def test_dinov3_variant_exports_and_matches(tmp_path, backend):
    paths = write_random_weights(tmp_path, method='talk2dino', width='tiny', variant='dinov3_vitb')
    config = dataclasses.replace(tiny_segmenter_config(paths, variant='dinov3_vitb'), mode='whole', **SMALL)
    reference = Segmenter.from_config(config)
    exported = Segmenter.from_config(dataclasses.replace(config, backend=backend), on_event=lambda m: None)
    for seg in (reference, exported):
        seg.set_vocabulary(NAMES)
    want, got = reference.segment(IMAGES[0]), exported.segment(IMAGES[0])
    assert np.abs(got.scores - want.scores).max() <= MAX_ABS
    assert (got.labels == want.labels).mean() >= MIN_LABEL_AGREEMENT


def test_torch_stays_the_default_and_untouched(weights):
    config = tiny_segmenter_config(weights['talk2dino'])
    assert (config.backend, config.precision) == ('torch', 'fp32')
    seg = Segmenter.from_config(config)
    assert seg.exported is None
    assert type(seg.method.backbone).__name__ == 'DinoBackbone'


@pytest.mark.skipif(not runtimes.cpu_has_bf16() or __import__('importlib').util.find_spec('openvino') is None,
                    reason='needs openvino and a CPU with bf16')
def test_openvino_bf16_runs_close_to_torch(weights):
    reference = _segmenter(weights, 'talk2dino', 'whole')
    reduced = _segmenter(weights, 'talk2dino', 'whole', 'openvino', precision='bf16')
    for seg in (reference, reduced):
        seg.set_vocabulary(NAMES)
    diff = np.abs(reduced.segment(IMAGES[0]).scores - reference.segment(IMAGES[0]).scores).max()
    assert 0 < diff < 0.2  # really reduced (not the fp32 graph), and still the same model


# ------------------------------------------------------------------------------------------ cache and metadata
@pytest.mark.parametrize('backend', CPU_BACKENDS)
def test_exported_file_is_cached_next_to_the_weights_and_reused(weights, backend):
    events = []
    config = dataclasses.replace(tiny_segmenter_config(weights['clip_dinoiser'], method='clip_dinoiser'),
                                 backend=backend)
    Segmenter.from_config(config, on_event=events.append)
    folder = cache_folder(weights['clip_dinoiser']['openclip'])
    assert folder.parent == weights['clip_dinoiser']['openclip'].parent
    files = list(folder.glob('clip_dinoiser-*.onnx'))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = []
    Segmenter.from_config(config, on_event=again.append)
    assert files[0].stat().st_mtime_ns == stamp
    assert not any('exporting' in e for e in again)
    meta = read_metadata(files[0])
    assert meta['method'] == 'clip_dinoiser' and meta['input_size'] == 'dynamic'
    assert len(meta['weights_sha256']) == 64


def test_build_is_logged_with_its_time(tmp_path):
    paths = write_random_weights(tmp_path, method='talk2dino', width='tiny')
    events = []
    pytest.importorskip('onnxruntime')
    Segmenter.from_config(dataclasses.replace(tiny_segmenter_config(paths), backend='onnxruntime'),
                          on_event=events.append)
    assert any(e.startswith('exported ') and e.endswith(' s') for e in events), events


def test_mismatched_exported_file_is_refused_in_one_line(weights, tmp_path):
    pytest.importorskip('onnxruntime')
    seg = _segmenter(weights, 'talk2dino', 'whole')
    other = GraphFacts('talk2dino', 'vitb', '0' * 64, None)
    stale = tmp_path / 'stale.onnx'
    export_onnx(seg.method, other, stale)
    config = dataclasses.replace(tiny_segmenter_config(weights['talk2dino']), backend='onnxruntime',
                                 exported_model=str(stale))
    with pytest.raises(ExportError) as err:
        Segmenter.from_config(config)
    message = str(err.value)
    assert '\n' not in message and 'weights_sha256' in message and 'export_model' in message


def test_fixed_size_file_refuses_another_size(weights, tmp_path):
    pytest.importorskip('onnxruntime')
    from talk2dino_ros.model.checkpoints import sha256_file

    seg = _segmenter(weights, 'talk2dino', 'whole')
    size = seg._input_size(*IMAGES[0].shape[:2], seg.config)  # 96x150 -> 112x182
    facts = GraphFacts('talk2dino', 'vitb', sha256_file(weights['talk2dino']['dinov2']), size)
    fixed = tmp_path / 'fixed.onnx'
    export_onnx(seg.method, facts, fixed)
    made_for = f'{size[0]}x{size[1]}'
    assert read_metadata(fixed)['input_size'] == made_for
    with pytest.raises(ExportError, match=f'made for input {made_for}'):
        check_metadata(fixed, facts, (size[0] + 14, size[1]))
    exported = _segmenter(weights, 'talk2dino', 'whole', 'onnxruntime', exported_model=str(fixed))
    exported.set_vocabulary(NAMES)
    assert exported.segment(IMAGES[0]).labels.shape == IMAGES[0].shape[:2]
    with pytest.raises(Talk2DinoError, match=f'made for input {made_for}'):
        exported.segment(IMAGES[1])


def test_cache_name_holds_every_key():
    name = onnx_cache_name(GraphFacts('talk2dino', 'vitl', 'ab' * 32, (448, 602)))
    assert name.startswith('talk2dino-vitl-abababababababab-448x602-torch') and 'opset' in name


# ------------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize('backend, precision, device, words', [
    ('onnxruntime', 'bf16', 'cpu', 'use backend openvino'),
    ('onnxruntime', 'fp16', 'cpu', 'use backend tensorrt'),
    ('tensorrt', 'fp16', 'cpu', 'needs an NVIDIA GPU'),
    ('torch', 'fp16', 'cpu', 'needs a CUDA device'),
    ('openvino', 'fp16', 'cpu', 'Intel GPU'),
    ('tflite', 'fp32', 'cpu', 'backend must be one of'),
    ('torch', 'int8', 'cpu', 'precision must be one of'),
])
def test_unusable_choice_is_one_line(backend, precision, device, words):
    import torch

    if backend in ('onnxruntime', 'openvino'):
        pytest.importorskip(backend)
        if backend == 'openvino' and 'GPU' in __import__('openvino').Core().available_devices:
            pytest.skip('this machine has an Intel GPU')
    with pytest.raises(runtimes.BackendUnavailable) as err:
        runtimes.check_backend(backend, precision, torch.device(device))
    assert words in str(err.value) and '\n' not in str(err.value)


def test_missing_runtime_names_its_extra(monkeypatch):
    import builtins
    import torch

    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == 'openvino' or name.startswith('openvino.'):
            raise ImportError('No module named openvino')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', no_openvino)
    monkeypatch.delitem(__import__('sys').modules, 'openvino', raising=False)
    with pytest.raises(runtimes.BackendUnavailable) as err:
        runtimes.check_backend('openvino', 'fp32', torch.device('cpu'))
    assert "talk2dino_ros[openvino]" in str(err.value) and 'T2D_EXTRAS=openvino' in str(err.value)


def test_config_refuses_a_torch_fast_path_with_an_exported_backend(weights):
    pytest.importorskip('onnxruntime')
    config = dataclasses.replace(tiny_segmenter_config(weights['talk2dino']), backend='onnxruntime',
                                 fast_path='compile')
    with pytest.raises(Talk2DinoError, match='backend torch only'):
        config.validate()


def test_exported_file_without_an_exported_backend_is_refused(weights):
    config = dataclasses.replace(tiny_segmenter_config(weights['talk2dino']), exported_model='/some/model.onnx')
    with pytest.raises(Talk2DinoError, match='set backend to openvino, onnxruntime or tensorrt'):
        config.validate()


def test_cli_refusal_is_one_line_at_start(weights, capsys, tmp_path):
    import cv2

    from talk2dino_ros.cli import segment_image

    paths = weights['talk2dino']
    image = tmp_path / 'frame.png'
    cv2.imwrite(str(image), IMAGES[0])
    code = segment_image.main([str(image), '--vocab', 'cat', '--out', str(tmp_path / 'out'), '--device', 'cpu',
                               '--dinov2-weights', str(paths['dinov2']), '--clip-weights', str(paths['clip']),
                               '--proj-weights', str(paths['proj']), '--allow-random-weights',
                               '--backend', 'tensorrt', '--precision', 'fp16'])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and 'tensorrt needs an NVIDIA GPU' in err[0]


@pytest.mark.parametrize('method', ['talk2dino', 'clip_dinoiser'])
def test_exported_backend_frees_the_torch_blocks_and_keeps_the_text_side(weights, method):
    pytest.importorskip('onnxruntime')
    seg = _segmenter(weights, method, 'whole', 'onnxruntime')
    inner = seg.exported.inner
    blocks = inner.vit.blocks if method == 'talk2dino' else inner.visual.transformer.resblocks
    assert len(blocks) == 0
    seg.set_vocabulary(['a brand new name'])  # text encoding does not need the image blocks
    assert seg.segment(IMAGES[1]).labels.shape == IMAGES[1].shape[:2]
