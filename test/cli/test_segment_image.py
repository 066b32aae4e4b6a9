"""segment_image CLI: npz layout, overlay, RGB reading, and one-line errors (tiny random weights)."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from talk2dino_ros.cli import segment_image
from talk2dino_ros.model.random_weights import tiny_segmenter_config
from talk2dino_ros.model.segmenter import Segmenter
from talk2dino_ros.model.types import InferenceOptions

REPO = Path(__file__).resolve().parents[2]


def _scene(height, width, seed):
    """An RGB image with distinct regions and a red/blue asymmetry (a BGR swap would be visible)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = 200
    img[..., 2] = 30
    img[height // 2:, : width // 2] = (20, 160, 40)
    img[: height // 3, width // 2:] = (30, 60, 220)
    return np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)


def _write_rgb(path, rgb):
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp('images')
    rgb_a, rgb_b = _scene(42, 56, 0), _scene(30, 71, 1)  # two sizes, one of them odd
    return [(_write_rgb(folder / 'first.png', rgb_a), rgb_a), (_write_rgb(folder / 'second.png', rgb_b), rgb_b)]


def _weight_args(paths):
    return ['--dinov2-weights', str(paths['dinov2']), '--clip-weights', str(paths['clip']),
            '--proj-weights', str(paths['proj']), '--allow-random-weights', '--device', 'cpu']


def _one_error_line(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith('error: ')
    assert 'Traceback' not in err
    return lines[0]


def test_read_image_rgb_returns_rgb_at_original_size(images):
    path, rgb = images[1]
    got = segment_image.read_image_rgb(path)
    assert got.dtype == np.uint8 and got.shape == rgb.shape
    np.testing.assert_array_equal(got, rgb)


def test_two_images_with_background_channel(tmp_path, images, tiny_weights, capsys):
    out = tmp_path / 'out'
    argv = [str(p) for p, _ in images] + ['--vocab', 'cat, dog,', '--out', str(out),
                                          '--background-threshold', '0.5', '--bg-clean', '--scores', 'full'
                                          ] + _weight_args(tiny_weights)
    assert segment_image.main(argv) == 0
    printed = capsys.readouterr().out
    assert 'first.png' in printed and 'second.png' in printed

    options = InferenceOptions(background=True, background_threshold=0.5, bg_clean=True)
    reference = Segmenter.from_config(tiny_segmenter_config(tiny_weights, options=options))
    reference.set_vocabulary(['cat', 'dog'])
    for path, rgb in images:
        H, W = rgb.shape[:2]
        with np.load(out / f'{path.stem}.npz') as data:
            assert set(data.files) == {'scores', 'labels', 'classes', 'random_weights'}
            assert bool(data['random_weights'])
            scores, labels, classes = data['scores'], data['labels'], data['classes']
        assert classes.tolist() == ['background', 'cat', 'dog']
        assert scores.dtype == np.float32 and scores.shape == (3, H, W)
        assert labels.dtype == np.uint8 and labels.shape == (H, W)
        np.testing.assert_allclose(scores[0], 0.5, atol=1e-6)  # constant background channel (merge rounding)
        np.testing.assert_array_equal(labels, scores.argmax(axis=0))
        expected = reference.segment(rgb)
        np.testing.assert_allclose(scores, expected.scores, atol=1e-6)
        overlay = cv2.imread(str(out / f'{path.stem}_overlay.png'), cv2.IMREAD_UNCHANGED)
        assert overlay is not None and overlay.shape == (H, W, 3)


def test_weights_dir_and_no_background(tmp_path, images, tiny_weights):
    path, rgb = images[0]
    out = tmp_path / 'out'
    folder = Path(tiny_weights['dinov2']).parent  # holds the files under their published names
    argv = [str(path), '--vocab', 'sky\nroad\ntree', '--out', str(out), '--weights-dir', str(folder),
            '--allow-random-weights', '--device', 'cpu', '--no-overlay']
    assert segment_image.main(argv) == 0
    with np.load(out / 'first.npz') as data:
        assert data['classes'].tolist() == ['sky', 'road', 'tree']
        assert data['scores'].shape == (3,) + rgb.shape[:2]
        assert ((data['scores'] > 0) & (data['scores'] < 1)).all()  # sigmoid scores, no constant channel
    assert not (out / 'first_overlay.png').exists()


def test_missing_image_subprocess_exit_2_one_line(tmp_path, tiny_weights):
    missing = tmp_path / 'nope.png'
    cmd = [sys.executable, '-m', 'talk2dino_ros.cli.segment_image', str(missing), '--vocab', 'a,b',
           '--out', str(tmp_path / 'o')] + _weight_args(tiny_weights)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, 'PYTHONPATH': str(REPO)})
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc.stderr)
    assert str(missing) in line
    assert not (tmp_path / 'o').exists()  # failed before writing anything


def test_not_an_image_fails_and_skip_bad_continues(tmp_path, images, tiny_weights, capsys):
    junk = tmp_path / 'junk.png'
    junk.write_text('not an image')
    good = str(images[0][0])
    assert segment_image.main([good, str(junk), '--vocab', 'a', '--out', str(tmp_path / 'o')]
                              + _weight_args(tiny_weights)) == 2
    assert str(junk) in _one_error_line(capsys.readouterr().err)

    out = tmp_path / 'skip'
    assert segment_image.main([good, str(junk), '--vocab', 'a', '--out', str(out), '--skip-bad', '--no-overlay']
                              + _weight_args(tiny_weights)) == 0
    err = capsys.readouterr().err
    assert 'warning' in err and str(junk) in err and 'Traceback' not in err
    assert sorted(p.name for p in out.iterdir()) == ['first.npz']


def test_missing_weight_file_is_named(tmp_path, images, capsys):
    empty = tmp_path / 'weights'
    empty.mkdir()
    argv = [str(images[0][0]), '--vocab', 'a', '--out', str(tmp_path / 'o'), '--weights-dir', str(empty),
            '--device', 'cpu']
    assert segment_image.main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(empty / 'dinov2_vitb14_reg4_pretrain.pth') in line


def test_explicit_missing_clip_file_is_named(tmp_path, images, tiny_weights, capsys):
    args = _weight_args(tiny_weights)
    args[args.index('--clip-weights') + 1] = str(tmp_path / 'gone' / 'ViT-B-16.pt')
    assert segment_image.main([str(images[0][0]), '--vocab', 'a', '--out', str(tmp_path / 'o')] + args) == 2
    assert str(tmp_path / 'gone' / 'ViT-B-16.pt') in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize('extra, needle', [
    (['--vocab', ' , '], 'empty'),
    (['--vocab', 'cat,Cat'], 'duplicate'),
    (['--vocab', 'a', '--openclip-weights', 'x.bin'], '--openclip-weights'),
])
def test_user_errors_are_one_line(tmp_path, images, tiny_weights, capsys, extra, needle):
    argv = [str(images[0][0]), '--out', str(tmp_path / 'o')] + extra + _weight_args(tiny_weights)
    assert segment_image.main(argv) == 2
    assert needle in _one_error_line(capsys.readouterr().err)


def test_same_stem_twice_is_refused(tmp_path, images, tiny_weights, capsys):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    one = _write_rgb(tmp_path / 'a' / 'x.png', images[0][1])
    two = _write_rgb(tmp_path / 'b' / 'x.png', images[1][1])
    argv = [str(one), str(two), '--vocab', 'a', '--out', str(tmp_path / 'o')] + _weight_args(tiny_weights)
    assert segment_image.main(argv) == 2
    assert 'x.npz' in _one_error_line(capsys.readouterr().err)


def test_corrupt_image_after_good_ones_stops_before_any_output(tmp_path, images, tiny_weights, capsys):
    png = cv2.imencode('.png', images[0][1])[1].tobytes()
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(png[:60])  # a valid PNG signature and header, the pixel data cut off
    out = tmp_path / 'o'
    argv = [str(images[0][0]), str(images[1][0]), str(corrupt), '--vocab', 'a', '--out', str(out)]
    assert segment_image.main(argv + _weight_args(tiny_weights)) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(corrupt) in line and '--skip-bad' in line
    assert not out.exists()  # nothing written for the good images before it either

    assert segment_image.main(argv + ['--skip-bad', '--no-overlay'] + _weight_args(tiny_weights)) == 0
    assert sorted(p.name for p in out.iterdir()) == ['first.npz', 'second.npz']  # and no temporary files


def test_slide_mode_on_a_1x10000_image(tmp_path, tiny_weights, capsys):
    strip = _write_rgb(tmp_path / 'strip.png', _scene(1, 10000, 3))
    out = tmp_path / 'o'
    argv = [str(strip), '--vocab', 'a,b', '--out', str(out), '--mode', 'slide'] + _weight_args(tiny_weights)
    assert segment_image.main(argv) == 0, capsys.readouterr().err
    with np.load(out / 'strip.npz') as z:
        assert z['scores'].shape == (2, 1, 10000) and z['labels'].shape == (1, 10000)
    assert sorted(p.name for p in out.iterdir()) == ['strip.npz', 'strip_overlay.png']


# -- presets (issue 18) ----------------------------------------------------------------------------
@pytest.mark.parametrize('preset,extra,expected', [
    ('benchmark', [], 'preset benchmark: mode slide, no background class, cleaning off, PAMR off; '
                      'labels: 0 = the first class of --vocab, class i = i'),
    ('node', [], 'preset node: mode whole, background class at 0.55, cleaning on, PAMR off; '
                 'labels: 0 = background, class i of --vocab = i + 1'),
    ('node', ['--background-threshold', '0.3', '--no-bg-clean', '--mode', 'slide'],
     'preset node: mode slide, background class at 0.3, cleaning off, PAMR off; labels: 0 = background'),
])
def test_presets_are_printed_and_applied(tmp_path, images, tiny_weights, capsys, preset, extra, expected):
    from talk2dino_ros.cli.reminders import RANDOM_WEIGHTS_NOTE

    path, rgb = images[0]
    out = tmp_path / 'out'
    argv = [str(path), '--vocab', 'sky,road', '--out', str(out), '--no-overlay', '--preset', preset,
            *extra] + _weight_args(tiny_weights)
    assert segment_image.main(argv) == 0
    captured = capsys.readouterr()
    from talk2dino_ros.cli.reminders import RANDOM_WEIGHTS_HEADER

    assert captured.out.splitlines()[0] == RANDOM_WEIGHTS_HEADER  # the first line says what follows
    assert expected in captured.out.splitlines()[1]
    assert captured.err.strip().splitlines()[-1] == RANDOM_WEIGHTS_NOTE
    with np.load(out / 'first.npz') as data:
        classes = data['classes'].tolist()
    assert classes == (['sky', 'road'] if preset == 'benchmark' else ['background', 'sky', 'road'])


def test_node_preset_matches_the_node_defaults():
    from talk2dino_ros.cli.segment_bag import NODE_DEFAULTS

    node = segment_image.PRESETS['node']
    assert {k: node[k] for k in NODE_DEFAULTS} == NODE_DEFAULTS
    assert node['background'] and not node['pamr']
    assert segment_image.build_parser().parse_args(['x', '--vocab', 'a', '--out', 'o']).preset == 'benchmark'


def test_too_wide_image_is_refused_before_any_output(tmp_path, images, tiny_weights, capsys):
    wide = _write_rgb(tmp_path / 'wide.png', np.zeros((1, 20000, 3), np.uint8))
    bomb = tmp_path / 'bomb.png'  # a header claiming 65000x65000 (never decoded)
    bomb.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00\x00\x00\rIHDR' + (65000).to_bytes(4, 'big') * 2
                     + b'\x08\x02\x00\x00\x00' + b'\x00' * 64)
    for bad, needle in ((wide, '20000x1'), (bomb, '65000x65000')):
        out = tmp_path / f'o_{bad.stem}'
        argv = [str(images[0][0]), str(bad), '--vocab', 'a', '--out', str(out)] + _weight_args(tiny_weights)
        assert segment_image.main(argv) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert str(bad) in line and needle in line and '16384' in line
        assert not out.exists()


# ------------------------------------------------------------------------------------------ issue 24
def test_scores_none_compressed_full(tmp_path, images, tiny_weights):
    """--scores: compressed (default) float16 in a zip-compressed file, full float32, none: no scores."""
    path, rgb = images[0]
    arrays = {}
    for choice in ('full', 'compressed', 'none'):
        out = tmp_path / choice
        extra = [] if choice == 'compressed' else ['--scores', choice]
        assert segment_image.main([str(path), '--vocab', 'a,b,c', '--out', str(out), '--no-overlay', *extra]
                                  + _weight_args(tiny_weights)) == 0
        with np.load(out / 'first.npz') as data:
            arrays[choice] = {k: data[k] for k in data.files}
    full, small, none = arrays['full'], arrays['compressed'], arrays['none']
    assert full['scores'].dtype == np.float32 and small['scores'].dtype == np.float16
    np.testing.assert_allclose(small['scores'].astype(np.float32), full['scores'], atol=1e-3)
    assert 'scores' not in none
    for got in (small, none):
        np.testing.assert_array_equal(got['labels'], full['labels'])  # labels from the float32 scores
    with __import__('zipfile').ZipFile(tmp_path / 'compressed' / 'first.npz') as z:
        assert z.getinfo('scores.npy').compress_type == __import__('zipfile').ZIP_DEFLATED


def test_random_weights_banner_on_the_overlay_above_the_legend(tmp_path, tiny_weights):
    """The overlay of a random-weights run carries the red banner, and the legend is drawn below it."""
    from talk2dino_ros.outputs.banner import BANNER_RGB, RANDOM_WEIGHTS_BANNER, banner_height

    rgb = _scene(240, 320, 3)
    path = _write_rgb(tmp_path / 'scene.png', rgb)
    out = tmp_path / 'out'
    assert segment_image.main([str(path), '--vocab', 'red,green,blue', '--out', str(out), '--alpha', '1']
                              + _weight_args(tiny_weights)) == 0
    overlay = cv2.cvtColor(cv2.imread(str(out / 'scene_overlay.png')), cv2.COLOR_BGR2RGB)
    band = banner_height(rgb.shape, RANDOM_WEIGHTS_BANNER)
    assert overlay.shape == rgb.shape and band >= 8
    assert (overlay[1] == BANNER_RGB).all(axis=1).mean() > 0.5
    with np.load(out / 'scene.npz') as data:
        labels, assert_random = data['labels'], bool(data['random_weights'])
    assert assert_random
    from talk2dino_ros.outputs.colors import class_colors

    colors = class_colors(['red', 'green', 'blue'])
    present = np.bincount(labels.ravel(), minlength=3)
    largest = int(np.argmax(present)) + 1  # the first legend row, id in the overlay's convention
    # the swatch of the largest class (first legend row) lies just below the band, not under it
    swatch = overlay[band + 4:band + 10, 4:10].reshape(-1, 3)
    assert (swatch == colors[largest]).all(axis=1).any()


def test_overlay_banner_keeps_the_first_legend_row():
    from talk2dino_ros.outputs.banner import RANDOM_WEIGHTS_BANNER, banner_height
    from talk2dino_ros.outputs.overlay import make_overlay

    rgb = np.full((200, 300, 3), 100, np.uint8)
    labels = np.ones((200, 300), np.int64)
    colors = np.array([[0, 0, 0], [10, 250, 10]], np.uint8)
    plain = make_overlay(rgb, labels, colors, ['background', 'grass'])
    marked = make_overlay(rgb, labels, colors, ['background', 'grass'], banner=RANDOM_WEIGHTS_BANNER)
    band = banner_height(rgb.shape, RANDOM_WEIGHTS_BANNER)
    legend_rows = np.nonzero((plain[:, :8] == colors[1]).all(axis=2).any(axis=1))[0]
    assert len(legend_rows) and legend_rows[0] < band  # without the shift the band would cover the row
    shifted = np.nonzero((marked[:, :8] == colors[1]).all(axis=2).any(axis=1))[0]
    assert shifted[0] >= band and len(shifted) == len(legend_rows)


def test_clip_dinoiser_refuses_pamr_and_warns_for_no_bg_clean(tmp_path, images, capsys):
    from talk2dino_ros.model.random_weights import write_random_weights

    paths = write_random_weights(tmp_path / 'w', method='clip_dinoiser')
    base = [str(images[0][0]), '--vocab', 'a,b', '--out', str(tmp_path / 'o'), '--method', 'clip_dinoiser',
            '--weights-dir', str(tmp_path / 'w'), '--allow-random-weights', '--device', 'cpu', '--no-overlay']
    assert set(paths) == {'openclip', 'clip_dinoiser'}
    assert segment_image.main(base + ['--pamr']) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert '--pamr' in line and 'clip_dinoiser' in line
    assert segment_image.main(base + ['--preset', 'node', '--no-bg-clean']) == 0
    captured = capsys.readouterr()
    assert captured.err.count('--no-bg-clean has no effect') == 1
    settings = captured.out.splitlines()[1]
    assert 'cleaning n/a' in settings and 'PAMR n/a' in settings  # the node preset's cleaning is not 'on'


def test_fp16_on_cpu_is_named_bf16(tmp_path, images, tiny_weights, capsys):
    assert 'bf16' in segment_image.build_parser().format_help()
    assert segment_image.main([str(images[0][0]), '--vocab', 'a', '--out', str(tmp_path / 'o'), '--no-overlay',
                               '--fp16'] + _weight_args(tiny_weights)) == 0
    assert 'bf16 autocast on the CPU' in capsys.readouterr().out


def test_background_threshold_range_is_the_nodes(tmp_path, images, tiny_weights):
    """The flag takes the node parameter's range; <= 0 means no background class, as for the node."""
    from talk2dino_ros import catalog
    from talk2dino_ros.cli.common import background_threshold_arg
    from talk2dino_ros.ros.parameters import SPECS

    assert SPECS['background_threshold'].float_range == catalog.BACKGROUND_THRESHOLD_RANGE
    low, high = catalog.BACKGROUND_THRESHOLD_RANGE
    assert background_threshold_arg(str(low)) == low and background_threshold_arg(str(high)) == high
    out = tmp_path / 'o'
    assert segment_image.main([str(images[0][0]), '--vocab', 'a,b', '--out', str(out), '--no-overlay',
                               '--preset', 'node', '--background-threshold', '-0.5'] + _weight_args(tiny_weights)) == 0
    with np.load(out / 'first.npz') as data:
        assert data['classes'].tolist() == ['a', 'b']


def test_vits_without_psi_says_to_train_one(tmp_path, images, capsys):
    argv = [str(images[0][0]), '--vocab', 'a', '--out', str(tmp_path / 'o'), '--variant', 'vits',
            '--weights-dir', str(tmp_path), '--device', 'cpu']
    assert segment_image.main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert 'train fit --variant vits' in line and '--proj-weights' in line and 'fetch_weights' not in line


def test_depth_writes_a_ply_and_detections(tmp_path, images, tiny_weights, capsys):
    import json

    from talk2dino_ros.spatial.ply import read_ply

    path, rgb = images[0]  # 42 x 56
    depth_mm = np.full((21, 28), 2000, np.uint16)  # half resolution, a wall at 2 m ...
    depth_mm[0, 0] = 0                               # ... with one pixel without a measurement
    depth_png = tmp_path / 'depth.png'
    assert cv2.imwrite(str(depth_png), depth_mm)
    out = tmp_path / 'out'
    argv = [str(path), '--vocab', 'cat,dog', '--out', str(out), '--depth', str(depth_png), '--intrinsics',
            '20,20,13.5,10.5', '--min-region-pixels', '1', '--rgb'] + _weight_args(tiny_weights)
    assert segment_image.main(argv) == 0
    assert 'first.ply' in capsys.readouterr().out
    cloud = read_ply(out / 'first.ply')
    assert cloud['x'].size == 21 * 28 - 1
    np.testing.assert_allclose(cloud['z'], 2.0)
    v, u = np.divmod(np.arange(1, 21 * 28), 28)  # raster order, pixel (0, 0) dropped
    np.testing.assert_allclose(cloud['x'], (u - 13.5) * 2.0 / 20, atol=1e-6)
    np.testing.assert_allclose(cloud['y'], (v - 10.5) * 2.0 / 20, atol=1e-6)
    with np.load(out / 'first.npz') as data:
        labels = data['labels'].astype(int) + 1  # benchmark preset: channel i is class i + 1 in the cloud
    nearest = labels[2 * v + 1, 2 * u + 1]
    np.testing.assert_array_equal(cloud['label'], nearest)
    np.testing.assert_array_equal(np.stack([cloud['red'], cloud['green'], cloud['blue']], 1), rgb[2 * v + 1, 2 * u + 1])
    report = json.loads((out / 'first_detections.json').read_text())
    assert report['classes'] == {'0': 'background', '1': 'cat', '2': 'dog'}
    assert report['random_weights'] is True  # tiny test weights: said in every JSON (issue 24)
    assert report['points'] == cloud['x'].size and report['detections']
    assert sum(d['pixels'] for d in report['detections']) == labels.size  # every pixel is in a region
    for det in report['detections']:
        assert det['name'] == report['classes'][str(det['class_id'])]
        assert det['bbox_3d']['center'][2] == pytest.approx(2.0)


@pytest.mark.parametrize('extra, needle', [
    (['--depth', 'D'], '--depth and --intrinsics go together'),
    (['--depth', 'D', 'E', '--intrinsics', '1,1,1,1'], 'one file per image'),
    (['--depth', 'D', '--intrinsics', '1,1,1'], 'four numbers'),
    (['--depth', 'MISSING', '--intrinsics', '1,1,1,1'], 'no such file'),
    (['--depth', 'D', '--intrinsics', '1,1,1,1', '--stride', '0'], 'stride'),
])
def test_depth_mistakes_are_one_line_before_loading(tmp_path, images, capsys, extra, needle):
    depth = tmp_path / 'd.png'
    assert cv2.imwrite(str(depth), np.ones((4, 4), np.uint16))
    extra = [str(depth) if a in ('D', 'E') else str(tmp_path / a) if a == 'MISSING' else a for a in extra]
    # no weights given: a mistake in the depth flags must be reported before the model would load
    argv = [str(images[0][0]), '--vocab', 'cat', '--out', str(tmp_path / 'o'), '--weights-dir',
            str(tmp_path / 'no_weights')] + extra
    assert segment_image.main(argv) == 2
    assert needle in _one_error_line(capsys.readouterr().err)
