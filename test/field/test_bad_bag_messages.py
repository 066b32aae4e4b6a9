"""A message that is not valid CDR is skipped with its index and reason (segment_bag, evaluate --bag);
--skip-bad only decides the exit code. A stored class list the name rules reject is refused, not shortened."""
from typing import Dict, Optional, Set

import pytest

from helpers.segmenters import OracleSegmenter
from talk2dino_ros.bags import bag_io
from talk2dino_ros.cli import evaluate as ev, make_demo_bag, segment_bag
from talk2dino_ros.cli.evaluate_bag import stored_classes
from talk2dino_ros.evaluation.bag import evaluate_bag

CLASSES = list(make_demo_bag.CLASSES)
IMG, GT = make_demo_bag.IMAGE_TOPIC, make_demo_bag.LABEL_TOPIC


def corrupted(tmp_path, bad: Dict[str, Set[int]], frames: int = 5, classes: Optional[str] = None,
              name: str = 'bad'):
    """The demo bag with the listed messages (topic -> indices) cut short: no longer valid CDR."""
    src = make_demo_bag.write_demo_bag(tmp_path / f'{name}_src', frames=frames, height=24, width=32)['path']
    dst = tmp_path / name
    reader, writer = bag_io.open_bag(src), bag_io.open_writer(dst, 'sqlite3')
    if classes is not None:
        writer.set_custom_data(make_demo_bag.CLASSES_KEY, classes)
    conns = {c.id: bag_io.copy_connection(writer, c) for c in reader.connections}
    seen: Dict[str, int] = {}
    for conn, t, raw in reader.messages():
        index = seen[conn.topic] = seen.get(conn.topic, -1) + 1
        writer.write(conns[conn.id], t, bytes(raw)[:14] if index in bad.get(conn.topic, ()) else raw)
    writer.close()
    reader.close()
    return dst


def counts(path) -> Dict[str, int]:
    """topic -> message count (without deserialising: the copied corrupt messages are still there)."""
    reader = bag_io.open_bag(path)
    try:
        return {name: info.msgcount for name, info in reader.topics.items()}
    finally:
        reader.close()


@pytest.mark.parametrize('skip_bad', [False, True])
def test_segment_bag_skips_a_corrupt_frame_and_logs_it(tmp_path, capsys, skip_bad):
    bag = corrupted(tmp_path, {IMG: {0, 3}})  # the first frame too: the legend comes with the next one
    summary = segment_bag.segment_bag(OracleSegmenter(make_demo_bag._COLOURS), bag, tmp_path / 'out', IMG,
                                      CLASSES, progress=False, skip_bad=skip_bad)
    assert (summary['frames'], summary['segmented'], summary['skipped'], summary['bad_messages']) == (5, 3, 2, 2)
    assert [e['frame'] for e in summary['skipped_frames']] == [0, 3]
    assert all('not a valid sensor_msgs/msg/Image message' in e['error'] for e in summary['skipped_frames'])
    err = capsys.readouterr().err
    assert f'skipped frame 0 of {IMG}' in err and f'skipped frame 3 of {IMG}' in err
    got = counts(tmp_path / 'out')
    assert got['/talk2dino/labels'] == 3 and got['/talk2dino/class_info'] == 1
    assert got[IMG] == 5  # the input topic is copied as it was, corrupt message included


@pytest.mark.parametrize('flag, code', [([], 1), (['--skip-bad'], 0)])
def test_segment_bag_cli_exit_code_follows_skip_bad(tmp_path, capsys, tiny_weights, flag, code):
    bag = corrupted(tmp_path, {IMG: {1}}, frames=3)
    argv = ['--bag', str(bag), '--image-topic', IMG, '--out', str(tmp_path / 'out'), '--vocab', 'sky,grass',
            '--weights-dir', str(tiny_weights['dinov2'].parent), '--allow-random-weights', '--quiet',
            '--device', 'cpu', '--resolution', '56'] + flag
    assert segment_bag.main(argv) == code
    err = capsys.readouterr().err
    assert f'skipped frame 1 of {IMG}' in err and 'Traceback' not in err
    assert ('error: 1 message(s)' in err) == (code == 1)
    assert (tmp_path / 'out').is_dir()  # every other frame was written either way


def test_evaluate_bag_skips_corrupt_truth_and_images(tmp_path, capsys):
    bag = corrupted(tmp_path, {IMG: {1}, GT: {3}})
    oracle = OracleSegmenter(make_demo_bag._COLOURS)
    result = evaluate_bag(oracle, bag, IMG, GT, CLASSES)
    assert [(b['topic'], b['index']) for b in result['bad_messages']] == [(IMG, 1), (GT, 3)]
    assert all('not a valid' in b['reason'] for b in result['bad_messages'])
    assert result['scored'] == 3 and result['mIoU'] == 100.0
    err = capsys.readouterr().err
    assert f'skipped message 1 of {IMG}' in err and f'skipped message 3 of {GT}' in err


@pytest.mark.parametrize('flag, code', [([], 1), (['--skip-bad'], 0)])
def test_evaluate_cli_exit_code_follows_skip_bad(tmp_path, capsys, flag, code):
    bag = corrupted(tmp_path, {GT: {2}})
    argv = ['--bag', str(bag), '--label-topic', GT, '--prediction-topic', GT, '--classes', ','.join(CLASSES),
            '--quiet'] + flag
    assert ev.main(argv) == code
    captured = capsys.readouterr()
    assert f'skipped message 2 of {GT}' in captured.err and 'Traceback' not in captured.err
    assert '4 of 4 frames scored' in captured.out


def test_stored_class_list_with_a_rejected_name_is_refused(tmp_path, capsys):
    bag = corrupted(tmp_path, {}, frames=2, classes='sky,Sky,grass')
    reader = bag_io.open_bag(bag)
    try:
        with pytest.raises(bag_io.BagError, match=r"'Sky'.*duplicate.*shift the label ids"):
            stored_classes(reader)
    finally:
        reader.close()
    assert ev.main(['--bag', str(bag), '--label-topic', GT, '--prediction-topic', GT, '--quiet']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1 and "'Sky'" in err


def test_legend_with_a_rejected_name_is_refused(tmp_path):
    bag = make_demo_bag.write_demo_bag(tmp_path / 'src', frames=1, height=24, width=32)['path']
    out = tmp_path / 'seg'
    segment_bag.segment_bag(OracleSegmenter({'sky': (0, 0, 255), '&#115;ky': (0, 0, 255)}), bag, out, IMG,
                            ['sky', '&#115;ky'], progress=False)
    reader = bag_io.open_bag(out)
    try:
        with pytest.raises(bag_io.BagError, match=r"ClassInfo legend.*'&#115;ky'.*duplicate"):
            stored_classes(reader)
    finally:
        reader.close()


def test_corrupt_depth_and_camera_info_messages_are_skipped(tmp_path, capsys):
    from talk2dino_ros.spatial.scene import SpatialOptions

    bag = corrupted(tmp_path, {make_demo_bag.DEPTH_TOPIC: {1}, make_demo_bag.DEPTH_INFO_TOPIC: {0}, IMG: {2}},
                    frames=4)
    depth = segment_bag.DepthInput(make_demo_bag.DEPTH_TOPIC, make_demo_bag.DEPTH_INFO_TOPIC, 1_000_000,
                                   SpatialOptions(min_region_pixels=5))
    summary = segment_bag.segment_bag(OracleSegmenter(make_demo_bag._COLOURS), bag, tmp_path / 'seg', IMG, CLASSES,
                                      progress=False, depth=depth)
    assert summary['bad_messages'] == 3 and summary['segmented'] == 3
    assert sorted((m['topic'], m['index']) for m in summary['skipped_messages']) == sorted([
        (make_demo_bag.DEPTH_TOPIC, 1), (make_demo_bag.DEPTH_INFO_TOPIC, 0)])
    err = capsys.readouterr().err
    assert f'skipped message 1 of {make_demo_bag.DEPTH_TOPIC}' in err and f'skipped frame 2 of {IMG}' in err
    assert counts(tmp_path / 'seg')['/talk2dino/points'] == 2  # frame 1 lost its depth, frame 2 itself
