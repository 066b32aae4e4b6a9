"""make_demo_bag -> segment_bag (tiny random weights) -> evaluate_bag, in sqlite3 and MCAP."""
import numpy as np
import pytest

from helpers.bags import read_bag

from helpers.segmenters import OracleSegmenter
from talk2dino_ros.bags import bag_io
from talk2dino_ros.cli import make_demo_bag, segment_bag
from talk2dino_ros.evaluation.bag import evaluate_bag
from talk2dino_ros.bags.resume import ResumeError
from talk2dino_ros.ros.image_conversion import image_to_numpy
from talk2dino_ros.model.types import confidence_mono8

CLASSES = list(make_demo_bag.CLASSES)
IMG, GT = make_demo_bag.IMAGE_TOPIC, make_demo_bag.LABEL_TOPIC


def demo(tmp_path, storage='sqlite3', frames=6, compressed=False, name='demo'):
    return make_demo_bag.write_demo_bag(tmp_path / name, frames=frames, height=36, width=48, storage=storage,
                                        compressed=compressed)['path']


def stamp(header):
    return (header.stamp.sec, header.stamp.nanosec, header.frame_id)


@pytest.mark.parametrize('storage,topic', [('sqlite3', IMG), ('mcap', make_demo_bag.COMPRESSED_TOPIC)])
def test_roundtrip_preserves_topics_and_stamps_and_scores(tmp_path, small_segmenter, storage, topic):
    bag = demo(tmp_path, storage, compressed=True)
    out = tmp_path / 'seg'
    summary = segment_bag.segment_bag(small_segmenter, bag, out, topic, CLASSES, overlay=True, progress=False)
    assert (summary['frames'], summary['segmented'], summary['skipped'], summary['storage']) == (6, 6, 0, storage)
    assert out.is_dir() and not (tmp_path / 'seg.partial').exists()
    if storage == 'mcap':
        assert list(out.glob('*.mcap'))

    src, got = read_bag(bag), read_bag(out)
    for name, msgs in src.items():  # every input topic copied byte for byte, same bag timestamps
        assert [(t, raw) for t, _, raw, _ in got[name]] == [(t, raw) for t, _, raw, _ in msgs]
    inputs = {stamp(m.header): (t, m) for t, m, _, _ in src[topic]}
    for key in ('labels', 'confidence', 'confidence_mono8', 'overlay'):
        outs = got['/talk2dino/' + key]
        assert len(outs) == 6
        for t, msg, _, _ in outs:  # exact header and bag time of the camera image, its resolution
            t_in, img = inputs[stamp(msg.header)]
            assert t == t_in and (msg.height, msg.width) == (36, 48)
    labels = [image_to_numpy(m) for _, m, _, _ in got['/talk2dino/labels']]
    assert all(lab.dtype == np.uint8 and 1 <= lab.min() and lab.max() <= len(CLASSES) for lab in labels)
    conf = image_to_numpy(got['/talk2dino/confidence'][0][1])
    conf8 = image_to_numpy(got['/talk2dino/confidence_mono8'][0][1])
    assert got['/talk2dino/confidence'][0][1].encoding == '32FC1'
    np.testing.assert_array_equal(conf8, confidence_mono8(conf))
    assert got['/talk2dino/overlay'][0][1].encoding == 'rgb8'

    (t_info, info, _, _), = got['/talk2dino/class_info']
    assert list(info.class_names) == ['background'] + CLASSES and list(info.class_ids) == [0, 1, 2, 3, 4]
    assert t_info == min(t for t, _ in inputs.values()) and len(info.colors) == 5
    (_, label_info, _, _), = got['/talk2dino/label_info']
    assert [(c.class_id, c.class_name) for c in label_info.class_map] == list(enumerate(['background'] + CLASSES))

    # scoring the written labels == scoring the segmenter directly on the input bag (same code, same numbers)
    from_bag = evaluate_bag(None, out, None, GT, CLASSES, prediction_topic='/talk2dino/labels')
    direct = evaluate_bag(small_segmenter, bag, topic, GT, CLASSES)
    assert from_bag['scored'] == direct['scored'] == 6 and from_bag['unmatched'] == 0
    assert from_bag['accumulator'] == direct['accumulator']
    assert 0.0 <= from_bag['mIoU'] <= 100.0 and from_bag['mIoU'] == direct['mIoU']


def test_evaluate_bag_oracle_scores_100_and_counts_unpaired(tmp_path):
    bag = demo(tmp_path, frames=5)
    oracle = OracleSegmenter(make_demo_bag._COLOURS)
    result = evaluate_bag(oracle, bag, IMG, GT, CLASSES)
    assert result['mIoU'] == 100.0 and result['scored'] == 5 and oracle.calls == 5
    assert result['IoU']['background'] is None  # no background pixel anywhere: NaN, left out of the mean
    # a wrong class order is scored, not silently fixed
    assert evaluate_bag(oracle, bag, IMG, GT, CLASSES[::-1])['mIoU'] < 50
    # ground truth as its own prediction; limit honoured
    assert evaluate_bag(None, bag, None, GT, CLASSES, prediction_topic=GT, limit=2)['scored'] == 2


def test_missing_topic_lists_topics_and_cli_prints_one_line(tmp_path, capsys, tiny_weights):
    bag = demo(tmp_path, frames=2)
    with pytest.raises(bag_io.BagError) as err:
        segment_bag.segment_bag(OracleSegmenter({}), bag, tmp_path / 'o', '/nope', CLASSES, progress=False)
    assert '/nope' in str(err.value) and IMG in str(err.value) and GT in str(err.value)
    with pytest.raises(bag_io.BagError, match='topics present'):
        evaluate_bag(None, bag, None, '/gt_missing', CLASSES, prediction_topic=GT)
    rc = segment_bag.main(['--bag', str(bag), '--image-topic', '/nope', '--out', str(tmp_path / 'o'),
                           '--vocab', 'a,b', '--weights-dir', str(tiny_weights['dinov2'].parent),
                           '--allow-random-weights', '--quiet'])
    err_text = capsys.readouterr().err
    assert rc == 2 and err_text.startswith('error: ') and err_text.count('\n') == 1 and IMG in err_text
    rc = segment_bag.main(['--bag', str(tmp_path / 'absent'), '--image-topic', IMG, '--out', str(tmp_path / 'o'),
                           '--vocab', 'a'])
    assert rc == 2 and 'absent' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()


def test_unsupported_encoding_is_an_error_or_skipped(tmp_path):
    path = tmp_path / 'odd'
    writer = bag_io.open_writer(path, 'sqlite3')
    conn = bag_io.add_output_connection(writer, '/cam', bag_io.IMAGE_TYPE)
    for i, (enc, pixels) in enumerate([('rgb8', np.zeros((4, 6, 3), np.uint8)),
                                       ('32FC1', np.zeros((4, 6), np.float32))]):
        header = bag_io.header_msg(10 + i, 0, 'cam')
        writer.write(conn, (10 + i) * 10 ** 9, bag_io.serialize(bag_io.image_msg(header, pixels, enc)))
    writer.close()
    oracle = OracleSegmenter({'a': (0, 0, 0)})
    with pytest.raises(bag_io.BagError, match=r"frame 1 of /cam.*'32FC1'.*--skip-bad"):
        segment_bag.segment_bag(oracle, path, tmp_path / 'o1', '/cam', ['a'], progress=False)
    assert not (tmp_path / 'o1').exists()
    summary = segment_bag.segment_bag(oracle, path, tmp_path / 'o2', '/cam', ['a'], progress=False, skip_bad=True)
    assert (summary['segmented'], summary['skipped']) == (1, 1) and '32FC1' in summary['skipped_frames'][0]['error']
    assert len(read_bag(tmp_path / 'o2')['/talk2dino/labels']) == 1


class Interrupting(OracleSegmenter):
    def __init__(self, palette, after):
        super().__init__(palette)
        self.after = after

    def segment(self, image, **kw):
        if self.calls == self.after:
            raise KeyboardInterrupt
        return super().segment(image, **kw)


def test_resume_segments_only_missing_frames_and_gives_the_same_bag(tmp_path):
    bag = demo(tmp_path, frames=7)
    out = tmp_path / 'seg'
    with pytest.raises(KeyboardInterrupt):
        segment_bag.segment_bag(Interrupting(make_demo_bag._COLOURS, after=4), bag, out, IMG, CLASSES,
                                progress=False)
    assert not out.exists() and (tmp_path / 'seg.partial' / 'frames.bin').is_file()
    with pytest.raises(ResumeError, match='--resume'):
        segment_bag.segment_bag(OracleSegmenter(make_demo_bag._COLOURS), bag, out, IMG, CLASSES, progress=False)
    with pytest.raises(ResumeError, match='vocabulary'):
        segment_bag.segment_bag(Interrupting(make_demo_bag._COLOURS, None), bag, out, IMG, CLASSES[:2],
                                progress=False, resume=True)
    with pytest.raises(ResumeError, match='model'):  # another segmenter: its frames would differ
        segment_bag.segment_bag(OracleSegmenter(make_demo_bag._COLOURS), bag, out, IMG, CLASSES,
                                progress=False, resume=True)
    # a torn record at the end (killed mid-write) is dropped, not trusted
    with open(tmp_path / 'seg.partial' / 'frames.bin', 'ab') as f:
        f.write(b'T2DF\x04\x00\x00')
    oracle = Interrupting(make_demo_bag._COLOURS, None)
    summary = segment_bag.segment_bag(oracle, bag, out, IMG, CLASSES, progress=False, resume=True)
    assert (summary['resumed'], summary['segmented'], oracle.calls) == (4, 3, 3)
    fresh = tmp_path / 'fresh'
    segment_bag.segment_bag(OracleSegmenter(make_demo_bag._COLOURS), bag, fresh, IMG, CLASSES, progress=False)
    a, b = read_bag(out), read_bag(fresh)
    assert a.keys() == b.keys()
    for topic in a:
        assert [(t, raw) for t, _, raw, _ in a[topic]] == [(t, raw) for t, _, raw, _ in b[topic]], topic
    assert evaluate_bag(None, out, None, GT, CLASSES, prediction_topic='/talk2dino/labels')['mIoU'] == 100.0
    with pytest.raises(ResumeError, match='exists'):
        segment_bag.segment_bag(oracle, bag, out, IMG, CLASSES, progress=False)


def test_demo_bag_cli_both_storages(tmp_path, capsys):
    for storage in ('sqlite3', 'mcap'):
        assert make_demo_bag.main(['--out', str(tmp_path / storage), '--storage', storage, '--frames', '3',
                                   '--height', '10', '--width', '12']) == 0
        msgs = read_bag(tmp_path / storage)
        assert [len(msgs[t]) for t in (IMG, GT)] == [3, 3]
        gt = image_to_numpy(msgs[GT][0][1])
        assert gt.shape == (10, 12) and set(np.unique(gt)) <= {1, 2, 3, 4}
        assert msgs[IMG][1][1].header.stamp.nanosec == 100_000_000  # 10 Hz
    assert make_demo_bag.main(['--out', str(tmp_path / 'mcap')]) == 2
    assert 'exists' in capsys.readouterr().err


def test_evaluate_bag_cli_flags_fit_evaluates_parser(tmp_path, capsys):
    from talk2dino_ros.cli import evaluate
    from talk2dino_ros.cli.evaluate_bag import run_bag_cli

    bag = demo(tmp_path, frames=3)
    parser = evaluate.build_parser()
    # evaluate's parser carries the bag flags itself

    def parse(*extra):
        base = ['--benchmark', 'voc21', '--data-root', str(tmp_path), '--bag', str(bag), '--quiet']
        return parser.parse_args(base + list(extra))

    out = tmp_path / 'r.json'
    result = run_bag_cli(parse('--image-topic', IMG, '--label-topic', GT, '--classes', ','.join(CLASSES),
                               '--out', str(out)), make_segmenter=lambda: OracleSegmenter(make_demo_bag._COLOURS))
    assert result['mIoU'] == 100.0 and out.is_file() and 'mIoU 100.00' in capsys.readouterr().out
    assert run_bag_cli(parse('--prediction-topic', GT, '--label-topic', GT, '--classes', 'a,b,c,d'))['mIoU'] == 100.0
    # without --classes the class list stored in the demo bag's metadata is used (issue 18); a bag that
    # stores none is refused naming --classes (test/cli/test_evaluate_extras.py)
    assert run_bag_cli(parse('--image-topic', IMG, '--label-topic', GT),
                       make_segmenter=lambda: OracleSegmenter(make_demo_bag._COLOURS))['mIoU'] == 100.0
    with pytest.raises(bag_io.BagError, match='topics present'):
        run_bag_cli(parse('--image-topic', '/wrong', '--label-topic', GT, '--classes', 'a'))


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_depth_gives_points_and_detections_of_the_known_car(tmp_path, storage):
    from talk2dino_ros.spatial.cloud import read_cloud
    from talk2dino_ros.spatial.scene import SpatialOptions

    bag = make_demo_bag.write_demo_bag(tmp_path / 'demo', frames=4, height=72, width=96, storage=storage)['path']
    out = tmp_path / 'seg'
    depth = segment_bag.DepthInput(make_demo_bag.DEPTH_TOPIC, make_demo_bag.DEPTH_INFO_TOPIC, 33_333_333,
                                   SpatialOptions(min_region_pixels=20, rgb=True))
    summary = segment_bag.segment_bag(OracleSegmenter(make_demo_bag._COLOURS), bag, out, IMG, CLASSES,
                                      confidence='none', progress=False, depth=depth)
    assert summary['depth'] == {'depth_received': 4, 'depth_paired': 4, 'colour_unpaired': 0, 'depth_unpaired': 0}
    got = read_bag(out)
    inputs = {stamp(m.header)[:2]: m for _, m, _, _ in got[IMG]}
    depth_headers = [stamp(m.header) for _, m, _, _ in got[make_demo_bag.DEPTH_TOPIC]]
    z, width, height = make_demo_bag.car_truth(72, 96)
    car_id = str(CLASSES.index('car') + 1)
    for key in ('points', 'detections', 'detections_3d'):
        assert len(got['/talk2dino/' + key]) == 4
    for (t, cloud, _, _), (_, det2, _, _), (_, det3, _, _) in zip(
            got['/talk2dino/points'], got['/talk2dino/detections'], got['/talk2dino/detections_3d']):
        assert stamp(det2.header)[:2] in inputs  # 2D: the camera image's header; 3D: the depth image's
        assert stamp(cloud.header) in depth_headers and stamp(det3.header) == stamp(cloud.header)
        fields = read_cloud(cloud.fields, cloud.point_step, bytes(cloud.data), cloud.width, cloud.height)
        assert cloud.height == 1 and cloud.is_dense and cloud.point_step == 24 and cloud.row_step == 24 * cloud.width
        assert set(np.unique(fields['label'])) <= {CLASSES.index('grass') + 1, int(car_id)}  # sky and sun: no depth
        assert np.all(fields['z'] > 0) and np.all(fields['z'] <= 10.0)
        cars = [d for d in det3.detections if d.results[0].hypothesis.class_id == car_id]
        assert len(cars) >= 1
        car = max(cars, key=lambda d: d.bbox.size.x)  # the car wraps around the image edge in some frames
        assert car.bbox.center.position.z == pytest.approx(z, abs=0.01)
        assert car.bbox.size.y == pytest.approx(height, abs=0.02)
        assert car.bbox.size.z == pytest.approx(0.0, abs=0.02)
        assert car.bbox.size.x <= width + 0.02
        assert {d.results[0].hypothesis.class_id for d in det2.detections} >= {car_id}
        assert all(d.results[0].hypothesis.class_id != '0' for d in det2.detections)


def test_a_missing_depth_frame_costs_only_its_3d_outputs(tmp_path):
    from talk2dino_ros.spatial.scene import SpatialOptions

    src = make_demo_bag.write_demo_bag(tmp_path / 'demo', frames=3, height=36, width=48)['path']
    # copy the bag without the second depth frame
    bag = tmp_path / 'gappy'
    reader, writer = bag_io.open_bag(src), bag_io.open_writer(bag, 'sqlite3')
    conns = {c.id: bag_io.copy_connection(writer, c) for c in reader.connections}
    seen = 0
    for conn, t, raw in reader.messages():
        if conn.topic == make_demo_bag.DEPTH_TOPIC:
            seen += 1
            if seen == 2:
                continue
        writer.write(conns[conn.id], t, raw)
    reader.close()
    writer.close()
    depth = segment_bag.DepthInput(make_demo_bag.DEPTH_TOPIC, make_demo_bag.DEPTH_INFO_TOPIC, 1_000_000,
                                   SpatialOptions(min_region_pixels=5))
    summary = segment_bag.segment_bag(OracleSegmenter(make_demo_bag._COLOURS), bag, tmp_path / 'seg', IMG, CLASSES,
                                      progress=False, depth=depth)
    assert summary['segmented'] == 3 and summary['depth']['colour_unpaired'] == 1
    got = read_bag(tmp_path / 'seg')
    assert len(got['/talk2dino/labels']) == 3 and len(got['/talk2dino/detections']) == 3
    assert len(got['/talk2dino/points']) == 2 and len(got['/talk2dino/detections_3d']) == 2


def test_depth_topic_mistakes_are_named(tmp_path):
    from talk2dino_ros.spatial.scene import SpatialOptions

    bag = demo(tmp_path, frames=1)
    wrong = segment_bag.DepthInput('/nope/image_raw', make_demo_bag.DEPTH_INFO_TOPIC, 0, SpatialOptions())
    with pytest.raises(bag_io.BagError, match='/nope/image_raw'):
        segment_bag.segment_bag(OracleSegmenter(make_demo_bag._COLOURS), bag, tmp_path / 's', IMG, CLASSES,
                                progress=False, depth=wrong)
    swapped = segment_bag.DepthInput(make_demo_bag.DEPTH_INFO_TOPIC, make_demo_bag.DEPTH_TOPIC, 0, SpatialOptions())
    with pytest.raises(bag_io.BagError, match='expected sensor_msgs/msg/Image'):
        segment_bag.segment_bag(OracleSegmenter(make_demo_bag._COLOURS), bag, tmp_path / 's', IMG, CLASSES,
                                progress=False, depth=swapped)
