"""The Segmenter front door: outputs, input validation, vocabulary swaps, modes, options, devices."""
import dataclasses
import threading

import numpy as np
import pytest
import torch

import talk2dino_ros.model  # noqa: F401
from talk2dino_ros.errors import InputError, Talk2DinoError
from talk2dino_ros.model.random_weights import tiny_segmenter_config
from talk2dino_ros.model.segmenter import Segmenter, SegmenterConfig
from talk2dino_ros.model.types import InferenceOptions

FAST = dict(resolution=56, window=56, stride=28)   # small protocol: the exact geometry is not the point here
VOCAB = ['cat', 'dog', 'tree']


def _image(h=60, w=80, seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (200, 40, 40)
    img[h // 2:, w // 2:] = (30, 160, 60)
    return np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def seg(tiny_weights):
    s = Segmenter.from_config(tiny_segmenter_config(tiny_weights, **FAST))
    s.set_vocabulary(VOCAB)
    return s


# ------------------------------------------------------------------ outputs

def test_result_shapes_and_dtypes(seg):
    res = seg.segment(_image())
    assert res.scores.shape == (3, 60, 80) and res.scores.dtype == np.float32
    assert res.labels.shape == (60, 80) and np.issubdtype(res.labels.dtype, np.integer)
    assert np.array_equal(res.labels, res.scores.argmax(0))
    assert res.class_names == tuple(VOCAB) and not res.has_background
    assert res.vocabulary_version == seg.vocabulary.version
    # sigmoid scores without cleaning live in (0, 1)
    assert 0 < res.scores.min() and res.scores.max() < 1
    assert {'preprocess', 'model', 'postprocess', 'total'} <= set(res.timings)
    assert np.array_equal(res.labels_with_background_zero(), res.labels + 1)
    assert np.allclose(res.background_probability(), 1 - res.scores.max(0))


def test_default_benchmark_protocol_shapes(tiny_weights):
    """Default slide protocol (short side 448, 448² windows): output at the input size."""
    s = Segmenter.from_config(tiny_segmenter_config(tiny_weights))
    s.set_vocabulary(['a', 'b'])
    res = s.segment(_image(75, 100))
    assert res.scores.shape == (2, 75, 100)
    assert np.array_equal(res.labels, res.scores.argmax(0))


def test_background_channel_is_index_zero(seg):
    opts = InferenceOptions(background=True, background_threshold=0.5)
    vocab = seg.build_vocabulary(VOCAB, background=True)
    res = seg.segment(_image(), vocabulary=vocab, options=opts)
    assert res.class_names == ('background',) + tuple(VOCAB) and res.has_background
    assert res.scores.shape == (4, 60, 80)
    assert np.allclose(res.scores[0], 0.5)
    plain = seg.segment(_image())
    assert np.allclose(res.scores[1:], plain.scores, atol=1e-6)
    assert np.array_equal(res.labels == 0, plain.scores.max(0) <= np.float32(0.5))
    assert np.array_equal(res.labels_with_background_zero(), res.labels)


def test_output_size(seg):
    res = seg.segment(_image(), output_size=(30, 40))
    assert res.scores.shape == (3, 30, 40) and res.labels.shape == (30, 40)


def test_deterministic_cpu(seg):
    a = seg.segment(_image(seed=3))
    b = seg.segment(_image(seed=3))
    assert np.array_equal(a.scores, b.scores) and np.array_equal(a.labels, b.labels)


@pytest.mark.parametrize('mode', ['slide', 'whole', 'squash'])
def test_modes_give_input_size_outputs(fresh_tiny_segmenter, mode):
    s = fresh_tiny_segmenter
    s.with_options(mode=mode, **FAST)
    s.set_vocabulary(VOCAB)
    res = s.segment(_image(60, 90))
    assert res.scores.shape == (3, 60, 90) and res.labels.shape == (60, 90)
    assert np.isfinite(res.scores).all()


def test_whole_equals_slide_for_one_square_window(fresh_tiny_segmenter):
    """A 448x448 frame is one benchmark window: 'whole' and 'slide' compute the same thing."""
    s = fresh_tiny_segmenter
    s.set_vocabulary(VOCAB)
    img = _image(448, 448)
    slide = s.segment(img)
    s.with_options(mode='whole')
    whole = s.segment(img)
    assert np.allclose(slide.scores, whole.scores, atol=1e-6)


def test_options_change_scores(fresh_tiny_segmenter):
    s = fresh_tiny_segmenter
    s.with_options(mode='squash', **FAST)
    s.set_vocabulary(VOCAB)
    img = _image()
    base = s.segment(img)
    clean = s.segment(img, options=InferenceOptions(bg_clean=True))
    refined = s.segment(img, options=InferenceOptions(pamr=True, pamr_iterations=2))
    assert np.abs(clean.scores - base.scores).max() > 1e-4
    assert np.abs(refined.scores - base.scores).max() > 1e-4
    # PAMR is a convex combination of neighbours: it cannot leave the range of the input scores
    assert refined.scores.min() >= base.scores.min() - 1e-5 and refined.scores.max() <= base.scores.max() + 1e-5
    # with_options applies to later frames
    s.with_options(bg_clean=True)
    assert np.allclose(s.segment(img).scores, clean.scores, atol=1e-6)


def test_with_options_background_reencodes_vocabulary(fresh_tiny_segmenter):
    s = fresh_tiny_segmenter
    s.with_options(mode='squash', **FAST)
    s.set_vocabulary(VOCAB)
    s.with_options(background=True, background_threshold=0.6)
    assert s.vocabulary.background and s.vocabulary.class_names[0] == 'background'
    res = s.segment(_image())
    assert res.scores.shape[0] == 4 and np.allclose(res.scores[0], 0.6)
    with pytest.raises(Talk2DinoError):
        s.with_options(weights={})
    with pytest.raises(Talk2DinoError):
        s.with_options(mode='tiles')


# ------------------------------------------------------------------ bad inputs

@pytest.mark.parametrize('image,fragment', [
    (np.zeros((20, 20, 3), np.float32), 'uint8'),
    (np.zeros((20, 20), np.uint8), 'shape'),
    (np.zeros((20, 20, 4), np.uint8), 'shape'),
    (np.zeros((20, 20, 1), np.uint8), 'shape'),
    (np.zeros((0, 20, 3), np.uint8), 'zero size'),
    (np.zeros((20, 0, 3), np.uint8), 'zero size'),
    ([[0, 0, 0]], 'numpy'),
])
def test_bad_images(seg, image, fragment):
    with pytest.raises(InputError, match=fragment):
        seg.segment(image)


@pytest.mark.parametrize('names,fragment', [
    ([], 'empty'), ((), 'empty'), (['cat', 'dog', 'cat'], 'duplicate'), ('cat', 'not one string'),
    (['cat', ''], 'invalid class name'), (['cat', '   '], 'invalid class name'), (['cat', None], 'invalid'),
])
def test_bad_vocabularies(fresh_tiny_segmenter, names, fragment):
    s = fresh_tiny_segmenter
    before = s.vocabulary
    with pytest.raises(InputError, match=fragment):
        s.set_vocabulary(names)
    assert s.vocabulary is before


def test_segment_without_vocabulary(fresh_tiny_segmenter):
    with pytest.raises(InputError, match='vocabulary'):
        fresh_tiny_segmenter.segment(_image())


def test_non_contiguous_image_is_accepted(seg):
    img = _image(60, 120)[:, ::2]
    assert not img.flags['C_CONTIGUOUS']
    res = seg.segment(img)
    assert np.array_equal(res.scores, seg.segment(np.ascontiguousarray(img)).scores)


# ------------------------------------------------------------------ atomic vocabulary swap

def test_vocabulary_swap_during_segment_is_atomic(fresh_tiny_segmenter, monkeypatch):
    """set_vocabulary while segment() runs: the running call finishes entirely with the old vocabulary."""
    s = fresh_tiny_segmenter
    s.with_options(mode='squash', **FAST)
    old = s.set_vocabulary(['cat', 'dog'])
    inside, release = threading.Event(), threading.Event()
    original = s.method.window_stages  # the engine's entry into the method

    def blocking(*args, **kwargs):
        inside.set()
        release.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(s.method, 'window_stages', blocking)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault('res', s.segment(_image())))
    t.start()
    assert inside.wait(10)
    new = s.set_vocabulary(['sky', 'road', 'car', 'person'])
    release.set()
    t.join(20)
    res = out['res']
    assert res.class_names == old.class_names and res.vocabulary_version == old.version
    assert res.scores.shape[0] == 2
    monkeypatch.setattr(s.method, 'window_stages', original)
    after = s.segment(_image())
    assert after.class_names == new.class_names and after.vocabulary_version == new.version
    assert after.scores.shape[0] == 4


def test_vocabulary_swap_smoke(fresh_tiny_segmenter):
    s = fresh_tiny_segmenter
    s.with_options(mode='squash', **FAST)
    vocabs = [['cat', 'dog'], ['sky', 'road', 'car'], ['a', 'b', 'c', 'd']]
    versions = {}
    v = s.set_vocabulary(vocabs[0])
    versions[v.version] = v.class_names
    results, errors, stop = [], [], threading.Event()

    def reader():
        try:
            while not stop.is_set():
                results.append(s.segment(_image(28, 28)))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(9):
        v = s.set_vocabulary(vocabs[(i + 1) % 3])
        versions[v.version] = v.class_names
    while len(results) < 3 and t.is_alive():
        t.join(0.05)
    stop.set()
    t.join(30)
    assert not errors, errors
    assert results
    for r in results:
        assert versions[r.vocabulary_version] == r.class_names
        assert r.scores.shape[0] == len(r.class_names)


# ------------------------------------------------------------------ configuration and devices

@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the error on a machine without CUDA')
@pytest.mark.parametrize('device', ['cuda', 'cuda:0'])
def test_cuda_without_gpu_is_a_clear_error(tiny_weights, device):
    with pytest.raises(Talk2DinoError, match='CUDA is not available'):
        Segmenter.from_config(tiny_segmenter_config(tiny_weights, device=device))


def test_auto_device_on_cpu(tiny_weights):
    if torch.cuda.is_available():
        pytest.skip('CPU-only check')
    s = Segmenter.from_config(tiny_segmenter_config(tiny_weights, device='auto'))
    assert s.device.type == 'cpu'


@pytest.mark.parametrize('changes,fragment', [
    (dict(device='tpu'), 'device'), (dict(mode='tiles'), 'mode'), (dict(stride=500), 'stride'),
    (dict(window=7), '14'), (dict(method='nope'), 'unknown method'),
])
def test_bad_config(tiny_weights, changes, fragment):
    with pytest.raises(Talk2DinoError, match=fragment):
        Segmenter.from_config(tiny_segmenter_config(tiny_weights, **changes))


def test_missing_weight_role(tiny_weights):
    cfg = tiny_segmenter_config(tiny_weights)
    cfg = dataclasses.replace(cfg, weights={k: v for k, v in cfg.weights.items() if k != 'proj'})
    with pytest.raises(Talk2DinoError, match='proj'):
        Segmenter.from_config(cfg)


def test_random_weights_need_permission(tiny_weights):
    cfg = dataclasses.replace(tiny_segmenter_config(tiny_weights), allow_random_weights=False)
    with pytest.raises(Talk2DinoError, match='non-standard width'):
        Segmenter.from_config(cfg)


def test_default_config_values():
    cfg = SegmenterConfig()
    assert (cfg.mode, cfg.resolution, cfg.window, cfg.stride, cfg.max_long_side) == ('slide', 448, 448, 224, 2048)
    assert cfg.options == InferenceOptions() and not cfg.options.bg_clean and not cfg.allow_random_weights


# ------------------------------------------------------------------ windows smaller than 448 (reference behaviour)

def test_small_window_upsampled_straight_to_its_size(tiny_segmenter):
    """A window smaller than 448 (images with aspect > 4.57): the reference squashes it to 448² for DINOv2,
    then upsamples the score grid straight to the window size (align_corners=True) and runs PAMR there,
    guided by the un-resized window (generate_masks: ``F.interpolate(mask, (pH, pW))``, ``ori_image``)."""
    from talk2dino_ros.model.backbone import normalize_rgb255, resize_square
    from talk2dino_ros.model.pamr import pamr
    from talk2dino_ros.model.postprocess import sigmoid_cosine_scores, upsample_scores

    m = tiny_segmenter.method
    x = torch.from_numpy(_image(56, 84)).permute(2, 0, 1)[None].float()
    with torch.inference_mode():
        text = m.encode_text(['cat', 'dog'])
        feats, _ = m.backbone(normalize_rgb255(resize_square(x, 448)))
        expected = upsample_scores(sigmoid_cosine_scores(feats, text), (56, 84))
        out = m.window_scores(x, text, InferenceOptions())
        expected_pamr = pamr(x, expected, iterations=2)
        out_pamr = m.window_scores(x, text, InferenceOptions(pamr=True, pamr_iterations=2))
    assert out.shape == expected.shape == (1, 2, 56, 84)
    assert torch.allclose(out, expected, atol=1e-6), (
        'BUG methods/talk2dino.py window_scores: for a window smaller than 448 the scores are upsampled to 448² '
        '(and refined there) and then resized to the window with align_corners=False; the reference upsamples '
        f'straight to the window size. max diff {(out - expected).abs().max():.2e}')
    assert torch.allclose(out_pamr, expected_pamr, atol=1e-5), 'BUG: PAMR must run at the window size on the window'


def test_whole_mode_keeps_the_frame_aspect(fresh_tiny_segmenter):
    """'whole' mode (docs/method.md §5.1): one non-square pass at the inference size, never a square resize."""
    s = fresh_tiny_segmenter
    s.with_options(mode='whole', resolution=224)
    s.set_vocabulary(VOCAB)
    shapes = []
    handle = s.method.backbone.register_forward_pre_hook(lambda mod, args: shapes.append(tuple(args[0].shape[-2:])))
    try:
        res = s.segment(_image(60, 80))
    finally:
        handle.remove()
    assert res.scores.shape == (3, 60, 80)
    assert shapes == [(224, 294)], (
        f'BUG methods/talk2dino.py window_scores: whole mode with a short side < 448 is squashed to 448² '
        f'(backbone saw {shapes}); only the benchmark slide windows should get the reference 448² resize')
