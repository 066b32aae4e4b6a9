"""Several cameras on one model, lazy inference and ~/enable, through real rclpy pub/sub (fake engine)."""
import time

import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_srvs.srv import SetBool

from helpers.ros import NODE, wait_for

from helpers.segmenters import FakeFactory, FakeSegmenter, expected_labels, expected_result
from talk2dino_ros.msg import ClassInfo, ClassMasks
from talk2dino_ros.ros.image_conversion import image_to_numpy, numpy_to_image
from talk2dino_ros.ros.qos import latched_qos


def scene(h, w, seed=0):
    rgb = np.random.default_rng(seed).integers(20, 256, size=(h, w, 3), dtype=np.uint8)
    rgb[: max(1, h // 2), : max(1, w // 3), 0] = 3
    return rgb


class BatchSegmenter(FakeSegmenter):
    """FakeSegmenter with ``segment_batch``: records the size of every batch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches = []

    def segment_batch(self, images, *, vocabulary=None, options=None):
        self.batches.append(len(images))
        if self.delay:
            time.sleep(self.delay)
        vocab = vocabulary or self.vocabulary
        return [expected_result(img, vocab, options or self.options) for img in images]


class BatchFactory(FakeFactory):
    def __call__(self, settings):
        seg = BatchSegmenter(settings, delay=self.delay, tag=f'load{len(self.loads) + 1}')
        self.loads.append(seg)
        return seg


CAMERAS = {'front': '/front/camera/image_raw', 'rear': '/rear/camera/image_raw', 'side_cam': '/robot/side_cam/image'}


def _call(probe, client, request):
    future = client.call_async(request)
    return wait_for(lambda: future.done() and future.result(), what='service answer')


def test_several_cameras_one_model_own_namespaces_headers_sizes_and_legends(make_node):
    factory = BatchFactory(delay=0.05)
    node, probe, _ = make_node(params={'image_topics': list(CAMERAS.values())}, factory=factory,
                               vocabulary=['a', 'b', 'c'])
    assert [c.name for c in node.cameras] == ['front', 'rear', 'side_cam']
    pubs = {name: probe.create_publisher(Image, topic, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
            for name, topic in CAMERAS.items()}
    for name in CAMERAS:
        probe.listen(f'{NODE}/{name}/labels', Image)
        probe.listen(f'{NODE}/{name}/masks', ClassMasks)
        deep = latched_qos()
        deep.depth = 50
        probe.listen(f'{NODE}/{name}/class_info', ClassInfo, deep)
    wait_for(lambda: all(node.outputs_for(n).pubs['masks'].get_subscription_count() for n in CAMERAS), what='matching')
    wait_for(lambda: all(probe.got(f'{NODE}/{n}/class_info') for n in CAMERAS), what='a legend per camera')
    # nothing on the single-camera topics
    assert not any(t in ('/talk2dino/labels', '/talk2dino/class_info')
                   for t, _ in node.get_publisher_names_and_types_by_node('talk2dino', '/'))

    sizes = {'front': (6, 9), 'rear': (10, 4), 'side_cam': (3, 12)}
    sent = {}
    for round_ in range(3):
        for name, (h, w) in sizes.items():
            header = probe.next_header(frame_id=f'{name}_optical')
            rgb = scene(h, w, seed=round_ * 10 + h)
            sent.setdefault(name, []).append((header, rgb))
            pubs[name].publish(numpy_to_image(rgb, 'rgb8', header))
        time.sleep(0.02)
    for name, frames in sent.items():  # at least the last frame of each camera comes out
        header, rgb = frames[-1]
        for _ in range(100):
            if probe.output_for(f'{NODE}/{name}/labels', header):
                break
            pubs[name].publish(numpy_to_image(rgb, 'rgb8', header))
            time.sleep(0.1)
    for name, frames in sent.items():
        by_stamp = {(h.stamp.sec, h.stamp.nanosec): (h, rgb) for h, rgb in frames}
        got = probe.got(f'{NODE}/{name}/labels')
        assert got, name
        for msg in got:  # exact header of this camera's image, its size and its labels
            header, rgb = by_stamp[(msg.header.stamp.sec, msg.header.stamp.nanosec)]
            assert msg.header == header
            assert (msg.height, msg.width) == sizes[name]
            np.testing.assert_array_equal(image_to_numpy(msg), expected_labels(rgb, 3, True))
    # one model for every camera, several frames per forward pass
    assert len(factory.loads) == 1 and max(factory.loads[0].batches) >= 2

    # a vocabulary change reaches every camera's legend; each camera's frames carry a published version
    assert node.apply_vocabulary(['x', 'y'])[0]
    version = node.legend_state.version
    for name, (h, w) in sizes.items():
        header = probe.next_header(frame_id=name)
        for _ in range(100):
            pubs[name].publish(numpy_to_image(scene(h, w), 'rgb8', header))
            time.sleep(0.05)
            if probe.output_for(f'{NODE}/{name}/masks', header):
                break
        masks = probe.output_for(f'{NODE}/{name}/masks', header)
        assert masks.vocabulary_version == version and list(masks.class_names) == ['x', 'y']
    for name in CAMERAS:
        versions = [i.vocabulary_version for i in probe.got(f'{NODE}/{name}/class_info')]
        assert versions[-1] == version
        for m in probe.got(f'{NODE}/{name}/masks'):
            assert m.vocabulary_version in versions


def test_latest_frame_per_camera_and_per_camera_drop_counts(make_node):
    factory = BatchFactory(delay=0.2)
    node, probe, _ = make_node(params={'image_topics': ['/cam_a/image_raw', '/cam_b/image_raw'],
                                       'camera_names': ['left', 'right']},
                               factory=factory, vocabulary=['a', 'b'])
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    pub_a = probe.create_publisher(Image, '/cam_a/image_raw', qos)
    pub_b = probe.create_publisher(Image, '/cam_b/image_raw', qos)
    probe.listen(NODE + '/left/labels', Image)
    probe.listen(NODE + '/right/labels', Image)
    wait_for(lambda: node.outputs_for('left').pubs['labels'].get_subscription_count()
             and node.outputs_for('right').pubs['labels'].get_subscription_count(), what='matching')
    wait_for(lambda: pub_a.get_subscription_count() and pub_b.get_subscription_count(), what='inputs matched')
    left = [probe.next_header('left') for _ in range(12)]
    right = probe.next_header('right')
    pub_b.publish(numpy_to_image(scene(4, 4), 'rgb8', right))
    for header in left:
        pub_a.publish(numpy_to_image(scene(4, 4), 'rgb8', header))
        time.sleep(0.01)
    wait_for(lambda: probe.output_for(NODE + '/left/labels', left[-1]), what='the newest left frame')
    wait_for(lambda: probe.output_for(NODE + '/right/labels', right), what='the right frame')
    processed_left = len(probe.got(NODE + '/left/labels'))
    assert processed_left <= 4, 'left frames were queued, not replaced by the newest'
    dropped = node._mailbox.dropped_by
    assert dropped.get('left', 0) == 12 - processed_left and dropped.get('right', 0) == 0
    stamps = [m.header.stamp.sec for m in probe.got(NODE + '/left/labels')]
    assert stamps == sorted(stamps)


def test_lazy_no_inference_without_subscribers_and_resume_with_the_first(make_node, ros_context):
    node, probe, _ = make_node(vocabulary=['a', 'b'], params={'diagnostics_period': 0.1})
    segmenter = node.segmenter
    probe.send(numpy_to_image(scene(4, 6), 'rgb8', probe.next_header()))
    for sub in list(probe.subscriptions):
        probe.destroy_subscription(sub)
    out = node.outputs_for()
    wait_for(lambda: out.pubs['labels'].get_subscription_count() == 0, what='no subscriber left')
    calls, processed = segmenter.segment_calls, node.stats.processed.total
    for _ in range(6):
        probe.image_pub.publish(numpy_to_image(scene(4, 6), 'rgb8', probe.next_header()))
        time.sleep(0.03)
    wait_for(lambda: node.stats.skipped_no_subscriber >= 3, what='frames skipped for no subscriber')
    assert segmenter.segment_calls == calls and node.stats.processed.total == processed
    from diagnostic_msgs.msg import DiagnosticArray
    probe.listen('/diagnostics', DiagnosticArray, QoSProfile(depth=20))
    for _ in range(20):
        probe.image_pub.publish(numpy_to_image(scene(4, 6), 'rgb8', probe.next_header()))
        time.sleep(0.05)
        diag = [d.status[0] for d in probe.got('/diagnostics') if d.status[0].message.startswith('idle')]
        if diag:
            break
    assert diag, 'diagnostics do not say the node is idle'
    values = {kv.key: kv.value for kv in diag[-1].values}
    assert int(values['frames_skipped_no_subscriber']) >= 3

    # the legend stays latched while idle: a late reader gets it
    infos = []
    probe.create_subscription(ClassInfo, NODE + '/class_info', infos.append, latched_qos())
    wait_for(lambda: infos, what='latched legend')
    assert infos[-1].vocabulary_version == node.legend_state.version
    assert segmenter.segment_calls == calls  # a legend reader is not a per-frame reader

    # the first subscriber of any per-frame output resumes inference
    probe.listen(NODE + '/confidence', Image)
    header = probe.next_header()
    conf = probe.send(numpy_to_image(scene(4, 6), 'rgb8', header), topic=NODE + '/confidence')
    assert conf.header == header and segmenter.segment_calls > calls
    assert probe.output_for(NODE + '/labels', header) is None  # labels unread: not published


def test_enable_service_pauses_and_resumes(make_node):
    node, probe, _ = make_node(vocabulary=['a', 'b'])
    probe.send(numpy_to_image(scene(4, 6), 'rgb8', probe.next_header()))
    client = probe.create_client(SetBool, NODE + '/enable')
    assert client.wait_for_service(timeout_sec=5.0)
    response = _call(probe, client, SetBool.Request(data=False))
    assert response.success and response.message == 'paused' and not node.enabled
    calls = node.segmenter.segment_calls
    headers = [probe.next_header() for _ in range(4)]
    for header in headers:
        probe.image_pub.publish(numpy_to_image(scene(4, 6), 'rgb8', header))
        time.sleep(0.05)
    wait_for(lambda: node.stats.skipped_paused >= 2, what='frames skipped while paused')
    assert node.segmenter.segment_calls == calls
    assert all(probe.output_for(NODE + '/labels', h) is None for h in headers)
    assert _call(probe, client, SetBool.Request(data=False)).message == 'already paused'
    response = _call(probe, client, SetBool.Request(data=True))
    assert response.success and response.message == 'resumed' and node.enabled
    rgb = scene(5, 7)
    labels = probe.send(numpy_to_image(rgb, 'rgb8', probe.next_header()))
    np.testing.assert_array_equal(image_to_numpy(labels), expected_labels(rgb, 2, True))


def test_camera_names_that_do_not_fit_give_derived_names_never_the_single_image_topic(make_node, ros_log):
    node, probe, _ = make_node(params={'image_topics': ['/a/image_raw', '/b/image_raw'],
                                       'camera_names': ['only_one']}, vocabulary=['a'])
    assert [(c.name, c.topic) for c in node.cameras] == [('a', '/a/image_raw'), ('b', '/b/image_raw')]
    assert node.get_parameter('camera_names').value == []
    err = ros_log.text
    assert err.count('camera_names has 1 names for 2 image_topics') == 1 and 'names derived from' in err


def test_invalid_or_repeated_camera_topics_are_one_start_error(make_node, ros_log, capfd):
    # an invalid entry: one error line naming it, no traceback, the node runs on the single image topic
    node, probe, _ = make_node(params={'image_topics': ['/front/image_raw', '/rear image']}, vocabulary=['a'])
    assert [c.name for c in node.cameras] == [''] and node.get_parameter('image_topics').value == []
    probe.send(numpy_to_image(scene(3, 3), 'rgb8', probe.next_header()))
    err = ros_log.text
    assert "image_topics entry '/rear image' is not a valid topic name" in err and 'Traceback' not in capfd.readouterr().err
    assert sum('image_topics' in line for line in err.splitlines() if 'WARN' in line or 'ERROR' in line) == 1


def test_one_camera_written_relative_and_absolute_is_one_camera_segmented_once(make_node, ros_log, capfd):
    # the test node runs in the root namespace: 'front/image_raw' resolves to '/front/image_raw'
    node, probe, _ = make_node(params={'image_topics': ['front/image_raw', '/front/image_raw', '/rear/image_raw'],
                                       'camera_names': ['f', 'g', 'r']}, vocabulary=['a'])
    assert [(c.name, c.resolved) for c in node.cameras] == [('f', '/front/image_raw'), ('r', '/rear/image_raw')]
    assert node.get_parameter('image_topics').value == ['front/image_raw', '/rear/image_raw']
    assert node.get_parameter('camera_names').value == ['f', 'r']
    assert len(node.get_publishers_info_by_topic('/front/image_raw')) == 0  # sanity: nobody else publishes
    assert len([s for s in node.subscriptions if s.topic_name == '/front/image_raw']) == 1
    err = ros_log.text
    assert "'front/image_raw' and '/front/image_raw' are both '/front/image_raw'" in err
    assert 'Traceback' not in capfd.readouterr().err


def test_several_compressed_cameras_read_topic_slash_compressed(make_node):
    from sensor_msgs.msg import CompressedImage
    from talk2dino_ros.ros.image_conversion import encode_compressed

    node, probe, _ = make_node(params={'image_topics': ['/left/image_raw', '/right/image_raw'],
                                       'compressed_input': True}, vocabulary=['a', 'b'])
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    for name in ('left', 'right'):
        pub = probe.create_publisher(CompressedImage, f'/{name}/image_raw/compressed', qos)
        probe.listen(f'{NODE}/{name}/labels', Image)
        rgb = scene(6, 10, seed=len(name))
        header = probe.next_header(frame_id=name)
        for _ in range(100):
            pub.publish(encode_compressed(rgb, 'png', header=header))
            time.sleep(0.05)
            labels = probe.output_for(f'{NODE}/{name}/labels', header)
            if labels:
                break
        assert labels is not None and labels.header == header
        np.testing.assert_array_equal(image_to_numpy(labels), expected_labels(rgb, 2, True))
