"""The `evaluate` loop and CLI, with a fake segmenter on tiny synthetic datasets (and, when the
engine is available, the real segmenter with tiny random weights)."""
import dataclasses
import hashlib
import json
import re
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from helpers.datasets import H, W, make_layout  # noqa: E402

from talk2dino_ros.cli import evaluate as ev  # noqa: E402
from talk2dino_ros.evaluation import loop, report as eval_report  # noqa: E402
from talk2dino_ros.data.benchmarks import BENCHMARK_ORDER, BENCHMARKS, protocol  # noqa: E402
from talk2dino_ros.data.datasets import load_label  # noqa: E402
from talk2dino_ros.evaluation.metrics import reduce_zero_label  # noqa: E402
from talk2dino_ros.errors import Talk2DinoError  # noqa: E402
from talk2dino_ros.model.types import InferenceOptions  # noqa: E402


class FakeSegmenter:
    """Records what it is given; ``predict(image) -> labels``."""

    def __init__(self, predict):
        self.predict = predict
        self.vocabulary = None
        self.options = []
        self.calls = 0

    def set_vocabulary(self, names):
        self.vocabulary = tuple(names)

    def segment(self, image, *, options=None):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        self.calls += 1
        self.options.append(options)
        names = (('background',) if options.background else ()) + self.vocabulary
        return SimpleNamespace(labels=self.predict(image), class_names=names,
                               timings={'total': 0.001})


def constant(value):
    return lambda image: np.full(image.shape[:2], value, np.int64)


def oracle(dataset_root, name):
    """Predicts the ground truth (benchmark ids; ignored pixels -> 0), keyed by image content."""
    from talk2dino_ros.data.datasets import SegmentationDataset

    ds = SegmentationDataset(name, dataset_root)
    table = {}
    for sample in ds:
        image, label = ds.load(sample)
        if ds.benchmark.reduce_zero_label:
            label = reduce_zero_label(label)
        table[zlib.crc32(image.tobytes())] = np.where(label == 255, 0, label)
    return lambda image: table[zlib.crc32(image.tobytes())]


def args_for(tmp_path, *extra, benchmark='voc21', method='talk2dino'):
    argv = ['--benchmark', benchmark, '--data-root', str(tmp_path / 'data'), '--quiet',
            '--method', method, *extra]
    if '--allow-random-weights' not in extra:
        weights = tmp_path / 'w'
        weights.mkdir(exist_ok=True)
        for flag in ev.WEIGHT_FLAGS[method].values():
            f = weights / (flag.strip('-') + '.pth')
            f.write_bytes(flag.encode())
            argv += [flag, str(f)]
    return ev.build_parser().parse_args(argv)


# -- protocol -> options ------------------------------------------------------------------------

def test_make_options_follow_the_protocol():
    o = loop.make_options(protocol('voc21', 'talk2dino', 'vitl'))
    assert (o.background, o.background_threshold, o.bg_clean, o.pamr) == (True, 0.54, True, True)
    o = loop.make_options(protocol('context59', 'talk2dino', 'vitb', pamr=False))
    assert (o.background, o.bg_clean, o.pamr) == (False, False, False)
    o = loop.make_options(protocol('voc21', 'clip_dinoiser'))
    assert o.background and not o.pamr and not o.bg_clean
    has_rule = 'background_rule' in {f.name for f in dataclasses.fields(InferenceOptions)}
    if has_rule:
        assert o.background_rule
        assert not loop.make_options(protocol('context60', 'clip_dinoiser')).background_rule
    else:
        with pytest.raises(Talk2DinoError, match='background_rule'):
            loop.make_options(protocol('context60', 'clip_dinoiser'))


# -- hand-computed run --------------------------------------------------------------------------

def test_constant_prediction_hand_computed_and_json(tmp_path, capsys):
    a = np.zeros((H, W), np.uint8)
    a[10:] = 15                         # 300 px background, 300 px person
    b = np.full((H, W), 15, np.uint8)
    b[0] = 255                          # 570 px person, 30 ignored
    make_layout(tmp_path / 'data', 'voc21', n=2, labels=[a, b])
    fake = FakeSegmenter(constant(0))
    out = tmp_path / 'res.json'
    args = args_for(tmp_path, '--out', str(out))
    ev.run(args, make_segmenter=lambda: fake)
    # class 0: I = 300, U = 1170 (all 1170 valid pixels predicted 0); person: I = 0, U = 870
    report = json.loads(out.read_text())
    r = report['benchmarks']['voc21']
    assert r['mIoU'] == round((300 / 1170 * 100 + 0) / 2, 2) == 12.82
    assert r['mAcc'] == 50.0 and r['aAcc'] == round(300 / 1170 * 100, 2)
    assert r['IoU']['background'] == 25.64 and r['IoU']['person'] == 0.0
    assert r['IoU']['cat'] is None and r['Acc']['person'] == 0.0
    assert r['paper_mIoU'] == 65.8 and r['num_images'] == 2 and r['skipped'] == []
    assert list(r['IoU']) == list(BENCHMARKS['voc21'].classes)
    assert fake.vocabulary == BENCHMARKS['voc21'].classes[1:] and fake.calls == 2
    assert fake.options[0].background and fake.options[0].background_threshold == 0.55
    assert fake.options[0].bg_clean and fake.options[0].pamr
    w = report['weights']['dinov2']
    assert w['sha256'] == hashlib.sha256(b'--dinov2-weights').hexdigest()
    assert report['method'] == 'talk2dino' and r['timings']['images_per_s'] > 0
    text = capsys.readouterr().out
    assert re.search(r'summary\s+mIoU\s+12\.82.*paper mIoU\s+65\.80 \(-52\.98\)', text)


def test_every_layout_with_an_oracle_scores_100(tmp_path):
    for name in BENCHMARK_ORDER:
        make_layout(tmp_path / 'data', name)
    for name in BENCHMARK_ORDER:
        for method in ('talk2dino', 'clip_dinoiser'):
            if name == 'context60' and method == 'clip_dinoiser' and 'background_rule' not in \
                    {f.name for f in dataclasses.fields(InferenceOptions)}:
                continue
            fake = FakeSegmenter(oracle(tmp_path / 'data', name))
            report = ev.run(args_for(tmp_path, benchmark=name, method=method),
                            make_segmenter=lambda: fake)
            r = report['benchmarks'][name]
            assert r['mIoU'] == 100.0 and r['aAcc'] == 100.0, (name, method)
            bench = BENCHMARKS[name]
            expected = bench.class_names(method)
            assert fake.vocabulary == (expected[1:] if bench.has_background else expected)


def test_save_predictions_and_resume(tmp_path):
    make_layout(tmp_path / 'data', 'ade20k')
    preds = tmp_path / 'preds'
    fake = FakeSegmenter(oracle(tmp_path / 'data', 'ade20k'))
    first = ev.run(args_for(tmp_path, '--save-predictions', str(preds), benchmark='ade20k'),
                   make_segmenter=lambda: fake)['benchmarks']['ade20k']
    assert fake.calls == 3
    # saved maps hold the reduced ids (raw label - 1)
    sample_png = preds / 'ade20k' / 'ADE_val_00000001.png'
    raw = load_label(tmp_path / 'data/ade/ADEChallengeData2016/annotations/validation/'
                     'ADE_val_00000001.png')
    saved = np.array(Image.open(sample_png))
    valid = (raw != 0) & (raw != 255)
    np.testing.assert_array_equal(saved[valid], raw[valid] - 1)

    def never():
        raise AssertionError('a fully resumed run must not build the segmenter')
    again = ev.run(args_for(tmp_path, '--save-predictions', str(preds), '--resume',
                            benchmark='ade20k'), make_segmenter=never)['benchmarks']['ade20k']
    assert again['num_resumed'] == 3 and again['num_segmented'] == 0
    assert again['IoU'] == first['IoU'] and again['accumulator'] == first['accumulator']

    sample_png.unlink()
    (preds / 'ade20k' / 'ADE_val_00000002.png').write_bytes(b'truncated')
    fake2 = FakeSegmenter(oracle(tmp_path / 'data', 'ade20k'))
    third = ev.run(args_for(tmp_path, '--save-predictions', str(preds), '--resume',
                            benchmark='ade20k'), make_segmenter=lambda: fake2)['benchmarks']['ade20k']
    assert fake2.calls == 2 and third['num_resumed'] == 1 and third['mIoU'] == first['mIoU']

    with pytest.raises(Talk2DinoError, match='other settings.*protocol'):
        ev.run(args_for(tmp_path, '--save-predictions', str(preds), '--resume', '--no-pamr',
                        benchmark='ade20k'), make_segmenter=lambda: fake2)


def test_skip_bad_and_limit(tmp_path):
    paths = make_layout(tmp_path / 'data', 'cityscapes')
    first_id = sorted(paths)[0]
    paths[first_id][1].write_bytes(b'not a png')
    fake = FakeSegmenter(constant(0))
    with pytest.raises(Talk2DinoError, match=re.escape(str(paths[first_id][1]))):
        ev.run(args_for(tmp_path, benchmark='cityscapes'), make_segmenter=lambda: fake)
    r = ev.run(args_for(tmp_path, '--skip-bad', benchmark='cityscapes'),
               make_segmenter=lambda: fake)['benchmarks']['cityscapes']
    assert r['num_images'] == 2 and [s['id'] for s in r['skipped']] == [first_id]
    r = ev.run(args_for(tmp_path, '--limit', '2', '--skip-bad', benchmark='cityscapes'),
               make_segmenter=lambda: fake)['benchmarks']['cityscapes']
    assert r['num_images'] == 1 and len(r['skipped']) == 1


def test_all_runs_the_present_benchmarks(tmp_path, capsys):
    make_layout(tmp_path / 'data', 'voc20')
    make_layout(tmp_path / 'data', 'coco_stuff', n=2)
    fake = FakeSegmenter(constant(3))
    report = ev.run(args_for(tmp_path, benchmark='all'), make_segmenter=lambda: fake)
    assert set(report['benchmarks']) == {'voc20', 'coco_stuff', 'voc21'}  # voc21 shares VOC2012
    # coco_object shares the images but its converted labels are absent
    assert set(report['missing']) == {'context60', 'context59', 'cityscapes', 'ade20k',
                                      'coco_object'}
    assert 'convert_dataset coco_object' in report['missing']['coco_object']
    out = capsys.readouterr().out
    assert 'benchmark' in out.splitlines()[-4] and 'coco_stuff' in out


def test_bad_segmenter_output_is_reported(tmp_path):
    make_layout(tmp_path / 'data', 'voc20', n=1)
    fake = FakeSegmenter(lambda image: np.zeros((5, 5), np.int64))
    with pytest.raises(Talk2DinoError, match='shape'):
        ev.run(args_for(tmp_path, benchmark='voc20'), make_segmenter=lambda: fake)
    fake = FakeSegmenter(constant(20))  # voc20 has ids 0..19
    with pytest.raises(Talk2DinoError, match='outside 0..19'):
        ev.run(args_for(tmp_path, benchmark='voc20'), make_segmenter=lambda: fake)


def test_ade_table_shows_bed_with_its_space(tmp_path):
    make_layout(tmp_path / 'data', 'ade20k', n=1)
    report = ev.run(args_for(tmp_path, benchmark='ade20k'),
                    make_segmenter=lambda: FakeSegmenter(constant(7)))
    r = report['benchmarks']['ade20k']
    assert 'bed ' in r['IoU'] and "'bed '" in eval_report.format_result(r)


@pytest.mark.parametrize('argv,message', [
    (['--benchmark', 'pascal'], 'unknown benchmark'),
    (['--benchmark', 'voc21', '--resume', '--allow-random-weights'], '--resume needs'),
    (['--benchmark', 'voc21'], 'talk2dino needs --dinov2-weights, --clip-weights, --proj-weights'),
    (['--benchmark', 'voc21', '--openclip-weights', 'x'], 'is a clip_dinoiser weight file'),
    (['--benchmark', 'voc21', '--allow-random-weights'], 'VOC2012/JPEGImages not found'),
    (['--benchmark', 'all', '--allow-random-weights'], 'no benchmark data found'),
    (['--benchmark', 'voc21', '--allow-random-weights', '--limit', '0'], '--limit must be'),
])
def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setenv('T2D_WEIGHTS_DIR', str(tmp_path / 'no_weights'))  # never a real download
    assert ev.main(argv + ['--data-root', str(tmp_path), '--quiet']) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith('warning:')]
    assert len(lines) == 1 and lines[0].startswith('error: ') and message in lines[0]


def test_missing_weight_file_is_named(tmp_path, capsys):
    make_layout(tmp_path / 'data', 'voc20', n=1)
    argv = ['--benchmark', 'voc20', '--data-root', str(tmp_path / 'data'), '--quiet',
            '--dinov2-weights', str(tmp_path / 'nope.pth'), '--allow-random-weights']
    assert ev.main(argv) == 2
    assert f'weight file {tmp_path / "nope.pth"} does not exist' in capsys.readouterr().err


# -- the real engine with tiny random weights ---------------------------------------------------

def _real_engine():
    segmenter = pytest.importorskip('talk2dino_ros.model.segmenter')
    random_weights = pytest.importorskip('talk2dino_ros.model.random_weights')
    return segmenter, random_weights


@pytest.fixture(scope='module')
def tiny_talk2dino_weights(tmp_path_factory):
    _, random_weights = _real_engine()
    return random_weights.write_random_weights(tmp_path_factory.mktemp('tiny_w'), 'talk2dino', 'tiny')


def _real_argv(data, weights, *extra):
    return ['--data-root', str(data), '--quiet', '--allow-random-weights', '--device', 'cpu',
            '--dinov2-weights', str(weights['dinov2']), '--clip-weights', str(weights['clip']),
            '--proj-weights', str(weights['proj']), *extra]


def test_real_engine_tiny_weights_all(tmp_path, tiny_talk2dino_weights):
    """`evaluate --benchmark all` end to end through the real segmenter (tiny random weights, CPU).

    PAMR is off: at the protocol's 448 windows it costs seconds per image on CPU (its wiring is
    checked with the fake segmenter above).
    """
    for name in ('voc21', 'cityscapes', 'ade20k'):   # voc21 brings voc20 (same VOC2012 folder)
        make_layout(tmp_path / 'data', name, n=2)
    out = tmp_path / 'all.json'
    argv = _real_argv(tmp_path / 'data', tiny_talk2dino_weights, '--benchmark', 'all', '--no-pamr',
                      '--limit', '1', '--out', str(out))
    assert ev.main(argv) == 0
    report = json.loads(out.read_text())
    assert set(report['benchmarks']) == {'voc21', 'voc20', 'cityscapes', 'ade20k'}
    assert report['config']['mode'] == 'slide' and report['config']['window'] == 448
    assert report['config']['allow_random_weights'] and len(report['weights']['dinov2']['sha256']) == 64
    for name, r in report['benchmarks'].items():
        assert r['num_images'] == 1 and r['num_segmented'] == 1, name
        assert 0.0 <= r['mIoU'] <= 100.0 and list(r['IoU']) == list(BENCHMARKS[name].classes)
        assert r['timings']['images_per_s'] > 0 and r['protocol']['pamr'] is False
    assert report['benchmarks']['voc21']['protocol']['bg_clean'] is True


def test_real_engine_save_and_resume(tmp_path, tiny_talk2dino_weights):
    make_layout(tmp_path / 'data', 'voc20', n=1)
    preds = tmp_path / 'preds'
    base = _real_argv(tmp_path / 'data', tiny_talk2dino_weights, '--benchmark', 'voc20',
                      '--no-pamr', '--save-predictions', str(preds))
    assert ev.main(base + ['--out', str(tmp_path / 'a.json')]) == 0
    assert ev.main(base + ['--resume', '--out', str(tmp_path / 'b.json')]) == 0
    a = json.loads((tmp_path / 'a.json').read_text())['benchmarks']['voc20']
    b = json.loads((tmp_path / 'b.json').read_text())['benchmarks']['voc20']
    assert a['protocol']['pamr'] is False and a['num_segmented'] == 1
    assert b['num_resumed'] == 1 and b['num_segmented'] == 0 and b['IoU'] == a['IoU']
    pred = np.array(Image.open(preds / 'voc20' / '2007_000033.png'))
    assert pred.shape == (H, W) and pred.max() < 20


# -- evaluate --bag -------------------------------------------------------------------------------

@pytest.mark.parametrize('argv,message', [
    (['--bag', 'b', '--benchmark', 'voc21'], '--bag and --benchmark are exclusive'),
    (['--bag', 'b', '--data-root', 'd'], '--data-root: only used with --benchmark'),
    ([], 'give --benchmark NAME --data-root DIR, or --bag BAG'),
    (['--benchmark', 'voc21'], '--benchmark needs --data-root'),
    (['--benchmark', 'voc21', '--data-root', 'd', '--classes', 'a'], '--classes: only used with --bag'),
    (['--benchmark', 'voc21', '--data-root', 'd', '--background-threshold', '0.5'],
     '--background-threshold: only used with --bag'),
    (['--bag', 'b', '--label-topic', '/l', '--classes', 'a'], '--bag needs --image-topic'),
])
def test_bag_and_benchmark_modes_are_checked(capsys, argv, message):
    assert ev.main(argv + ['--quiet']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1 and message in err


def test_bag_demo_end_to_end_tiny_weights(tmp_path, capsys, tiny_weights):
    """make_demo_bag, then `evaluate --bag` through the real segmenter (tiny random weights, CPU)."""
    from talk2dino_ros.cli import make_demo_bag

    bag = tmp_path / 'demo'
    assert make_demo_bag.main(['--out', str(bag), '--frames', '3', '--height', '32', '--width', '40']) == 0
    out = tmp_path / 'bag.json'
    argv = ['--bag', str(bag), '--image-topic', make_demo_bag.IMAGE_TOPIC,
            '--label-topic', make_demo_bag.LABEL_TOPIC, '--classes', ','.join(make_demo_bag.CLASSES),
            '--background-threshold', '0.4', '--weights-dir', str(tiny_weights['dinov2'].parent),
            '--allow-random-weights', '--device', 'cpu', '--quiet', '--out', str(out)]
    assert ev.main(argv) == 0
    report = json.loads(out.read_text())
    r = report['bag']
    assert r['frames'] == r['scored'] == 3 and r['unmatched'] == 0
    assert isinstance(r['mIoU'], float) and np.isfinite(r['mIoU']) and 0.0 <= r['mIoU'] <= 100.0
    assert list(r['IoU']) == ['background', *make_demo_bag.CLASSES]
    assert r['IoU']['background'] is None  # the demo scene has no background pixel
    cfg = report['config']  # the node's defaults, the threshold as given
    assert cfg['mode'] == 'whole' and cfg['allow_random_weights']
    assert cfg['options']['background'] and cfg['options']['background_threshold'] == 0.4
    assert cfg['options']['bg_clean'] and not cfg['options']['pamr']
    assert set(report['weights']) == {'dinov2', 'clip', 'proj'}
    assert report['weights']['proj']['path'] == str(tiny_weights['proj'])
    assert report['tool'] == 'talk2dino_ros evaluate' and 'finished' in report
    assert re.search(r'summary\s+mIoU\s+\d+\.\d\d', capsys.readouterr().out)
    # a missing weight file is named before anything loads (the bag and topics checked first)
    argv_missing = argv[:argv.index('--weights-dir')] + ['--weights-dir', str(tmp_path / 'none'), '--quiet']
    assert ev.main(argv_missing) == 2
    assert '--dinov2-weights' in capsys.readouterr().err
