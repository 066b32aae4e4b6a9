"""evaluate --plot (benchmark and bag), confusion matrix in the JSON, classes read from the bag, the
random-weights reminder (issue 18)."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.datasets import H, W, make_layout  # noqa: E402
from helpers.segmenters import OracleSegmenter  # noqa: E402
from test_evaluate import FakeSegmenter, constant  # noqa: E402

from talk2dino_ros.bags import bag_io  # noqa: E402
from talk2dino_ros.cli import evaluate as ev, make_demo_bag  # noqa: E402
from talk2dino_ros.cli.common import resolve_weights  # noqa: E402
from talk2dino_ros.cli.evaluate_bag import stored_classes  # noqa: E402
from talk2dino_ros.cli.reminders import RANDOM_WEIGHTS_NOTE  # noqa: E402
from talk2dino_ros.data.benchmarks import BENCHMARKS  # noqa: E402

pytest.importorskip('matplotlib', reason='the plots extra (matplotlib) is in requirements-dev.txt')

IMG, GT = make_demo_bag.IMAGE_TOPIC, make_demo_bag.LABEL_TOPIC
CLASSES = list(make_demo_bag.CLASSES)


def _benchmark_args(tmp_path, *extra):
    """voc21 on tmp_path/data with placeholder weight files at their published names (the fake
    segmenter never reads them; evaluate only hashes them)."""
    argv = ['--benchmark', 'voc21', '--data-root', str(tmp_path / 'data'), '--quiet',
            '--weights-dir', str(tmp_path / 'w'), *extra]
    args = ev.build_parser().parse_args(argv)
    (tmp_path / 'w').mkdir(exist_ok=True)
    for role, path in resolve_weights(args).items():
        Path(path).write_bytes(role.encode())
    return args


def _png_size(path: Path):
    with Image.open(path) as im:
        assert im.format == 'PNG'
        return im.size


def _demo_bag(tmp_path, frames=3):
    return make_demo_bag.write_demo_bag(tmp_path / 'demo', frames=frames, height=24, width=32)['path']


def _bag_without_classes(tmp_path):
    """A bag with an image and a label topic but no class list (no metadata, no legend)."""
    path = tmp_path / 'plain'
    writer = bag_io.open_writer(path, 'sqlite3')
    try:
        img = bag_io.add_output_connection(writer, IMG, bag_io.IMAGE_TYPE)
        gt = bag_io.add_output_connection(writer, GT, bag_io.IMAGE_TYPE)
        for i in range(2):
            header = bag_io.header_msg(100 + i, 0, 'camera')
            writer.write(img, (100 + i) * 10**9, bag_io.serialize(
                bag_io.image_msg(header, np.zeros((8, 10, 3), np.uint8), 'rgb8')))
            writer.write(gt, (100 + i) * 10**9, bag_io.serialize(
                bag_io.image_msg(header, np.ones((8, 10), np.uint8), 'mono8')))
    finally:
        writer.close()
    return path


def test_benchmark_plot_and_confusion_in_json(tmp_path, capsys):
    a = np.zeros((H, W), np.uint8)
    a[10:] = 15                         # 300 px background, 300 px person
    make_layout(tmp_path / 'data', 'voc21', n=1, labels=[a])
    out, plots = tmp_path / 'res.json', tmp_path / 'plots'
    ev.run(_benchmark_args(tmp_path, '--out', str(out), '--plot', str(plots)),
           make_segmenter=lambda: FakeSegmenter(constant(0)))
    report = json.loads(out.read_text())
    cm = np.array(report['benchmarks']['voc21']['accumulator']['confusion_matrix'])
    names = list(BENCHMARKS['voc21'].classes)
    assert cm.shape == (21, 21) and cm.sum() == H * W
    assert cm[0, 0] == 300 and cm[names.index('person'), 0] == 300  # person predicted as background
    files = sorted(plots.iterdir())
    assert [f.name for f in files] == ['voc21_confusion.png', 'voc21_iou.png']
    assert report['plots'] == [str(plots / 'voc21_iou.png'), str(plots / 'voc21_confusion.png')]
    for f in files:
        w, h = _png_size(f)
        assert w > 300 and h > 200
    assert 'pictures: ' in capsys.readouterr().out


def test_bag_plot_and_classes_from_metadata(tmp_path, capsys):
    bag = _demo_bag(tmp_path)
    out, plots = tmp_path / 'bag.json', tmp_path / 'plots'
    args = ev.build_parser().parse_args(['--bag', str(bag), '--image-topic', IMG, '--label-topic', GT,
                                         '--quiet', '--out', str(out), '--plot', str(plots)])
    ev.run(args, make_segmenter=lambda: OracleSegmenter(make_demo_bag._COLOURS))
    text = capsys.readouterr().out
    assert f'classes from the bag: {",".join(CLASSES)}' in text
    report = json.loads(out.read_text())
    assert report['bag']['mIoU'] == 100.0 and report['bag']['classes'] == ['background', *CLASSES]
    cm = np.array(report['bag']['accumulator']['confusion_matrix'])
    assert cm.shape == (5, 5) and cm.sum() == 3 * 24 * 32 and np.count_nonzero(cm - np.diag(np.diag(cm))) == 0
    assert sorted(p.name for p in plots.iterdir()) == ['bag_demo_confusion.png', 'bag_demo_iou.png']


def test_classes_from_a_segment_bag_legend(tmp_path):
    from talk2dino_ros.cli import segment_bag

    bag = _demo_bag(tmp_path, frames=2)
    out = tmp_path / 'seg'
    segment_bag.segment_bag(OracleSegmenter(make_demo_bag._COLOURS), bag, out, IMG, CLASSES, progress=False)
    reader = bag_io.open_bag(out)
    try:
        assert stored_classes(reader) == CLASSES
    finally:
        reader.close()


def test_bag_without_classes_names_the_flag(tmp_path, capsys):
    bag = _bag_without_classes(tmp_path)
    reader = bag_io.open_bag(bag)
    try:
        assert stored_classes(reader) is None
    finally:
        reader.close()
    assert ev.main(['--bag', str(bag), '--image-topic', IMG, '--label-topic', GT, '--quiet']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1 and '--classes' in err


def test_missing_matplotlib_is_one_line_before_any_work(tmp_path, capsys, hide_matplotlib):
    hide_matplotlib()
    bag = _demo_bag(tmp_path)
    rc = ev.main(['--bag', str(bag), '--image-topic', IMG, '--label-topic', GT, '--quiet',
                  '--plot', str(tmp_path / 'plots')])
    captured = capsys.readouterr()
    assert rc == 2 and captured.err.count('\n') == 1
    assert 'matplotlib' in captured.err and "talk2dino_ros[plots]" in captured.err
    assert captured.out == '' and not (tmp_path / 'plots').exists()


def test_random_weights_run_ends_with_the_reminder(tmp_path, capsys, tiny_weights):
    bag = _demo_bag(tmp_path, frames=1)
    argv = ['--bag', str(bag), '--image-topic', IMG, '--label-topic', GT, '--weights-dir',
            str(tiny_weights['dinov2'].parent), '--allow-random-weights', '--device', 'cpu', '--quiet']
    assert ev.main(argv) == 0
    err = capsys.readouterr().err
    assert err.rstrip('\n').splitlines()[-1] == RANDOM_WEIGHTS_NOTE
