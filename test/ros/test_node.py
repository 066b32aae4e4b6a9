"""The segmentation node end to end through real rclpy pub/sub (with a fast fake engine).

The fake engine's labels are predictable from the RGB image (see helpers.segmenters), so these tests check the
node's conversion, headers, encodings, legend bookkeeping, threading and error handling exactly.
"""
import threading
import time

import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image
from std_msgs.msg import String

from helpers.ros import NODE, Probe, wait_for

from helpers.segmenters import FakeFactory, expected_labels
from talk2dino_ros.ros.image_conversion import encode_compressed, image_to_numpy, numpy_to_image
from talk2dino_ros.ros.qos import latched_qos
from talk2dino_ros.msg import ClassInfo, ClassMasks
from talk2dino_ros.srv import SetVocabulary


def scene(h, w, seed=0):
    """Random RGB image with a dark-red block (red < 10 -> background for the fake engine)."""
    rgb = np.random.default_rng(seed).integers(20, 256, size=(h, w, 3), dtype=np.uint8)
    rgb[: max(1, h // 2), : max(1, w // 3), 0] = 3
    return rgb


def encode(rgb, encoding, header):
    """An Image of ``rgb`` in ``encoding`` and the RGB the node should see after conversion."""
    if encoding == 'rgb8':
        return numpy_to_image(rgb, 'rgb8', header), rgb
    if encoding == 'bgr8':
        return numpy_to_image(np.ascontiguousarray(rgb[:, :, ::-1]), 'bgr8', header), rgb
    if encoding in ('rgba8', 'bgra8'):
        colour = rgb if encoding == 'rgba8' else rgb[:, :, ::-1]
        rgba = np.concatenate([colour, np.full(rgb.shape[:2] + (1,), 77, np.uint8)], axis=2)
        return numpy_to_image(np.ascontiguousarray(rgba), encoding, header), rgb
    grey = rgb[:, :, 0]
    if encoding == 'mono8':
        return numpy_to_image(np.ascontiguousarray(grey), 'mono8', header), np.stack([grey] * 3, axis=2)
    if encoding == 'mono16':
        wide = (grey.astype(np.uint16) << 8) | 0xAB
        return numpy_to_image(wide, 'mono16', header), np.stack([grey] * 3, axis=2)
    raise ValueError(encoding)


def test_every_accepted_encoding_and_size_exact_header_and_labels(make_node):
    node, probe, _ = make_node(vocabulary=['cat', 'dog', 'tree'])
    for encoding in ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16'):
        for h, w in ((1, 1), (5, 7), (48, 64)):
            header = probe.next_header(frame_id=f'cam_{encoding}')
            msg, seen_rgb = encode(scene(h, w, seed=h * w), encoding, header)
            labels = probe.send(msg)
            assert labels.header.stamp == header.stamp and labels.header.frame_id == header.frame_id
            assert (labels.height, labels.width, labels.encoding, labels.step) == (h, w, 'mono8', w)
            got = image_to_numpy(labels)
            np.testing.assert_array_equal(got, expected_labels(seen_rgb, 3, background=True),
                                          err_msg=f'{encoding} {h}x{w}')
            assert got.max() <= 3


def test_padded_rows_and_compressed_input(make_node):
    node, probe, _ = make_node(vocabulary=['a', 'b'])
    rgb = scene(6, 10)
    header = probe.next_header()
    msg = Image(header=header, height=6, width=10, encoding='rgb8', step=34)
    msg.data = b''.join(rgb[r].tobytes() + b'\xee' * 4 for r in range(6))
    np.testing.assert_array_equal(image_to_numpy(probe.send(msg)), expected_labels(rgb, 2, True))


def test_compressed_input_parameter(make_node):
    node, probe, _ = make_node(params={'compressed_input': True}, vocabulary=['a', 'b', 'c'])
    rgb = scene(12, 16)
    msg = encode_compressed(rgb, 'png', header=probe.next_header())
    labels = probe.send(msg, compressed=True)
    np.testing.assert_array_equal(image_to_numpy(labels), expected_labels(rgb, 3, True))


def test_maps_masks_per_class_topics_overlay_and_legend(make_node):
    node, probe, _ = make_node(vocabulary=['red car', 'Tree', '猫'])
    topics = {NODE + '/confidence': Image, NODE + '/confidence_mono8': Image, NODE + '/background': Image,
              NODE + '/masks': ClassMasks,
              NODE + '/mask/red_car': Image, NODE + '/mask/class_3': Image, NODE + '/overlay': Image}
    for topic, msg_type in topics.items():
        probe.listen(topic, msg_type)
    probe.listen(NODE + '/class_info', ClassInfo, latched_qos())
    out = node.outputs_for()
    wait_for(lambda: out.pubs['overlay'].get_subscription_count() and out.pubs['masks'].get_subscription_count()
             and len(out.mask_pubs) == 3 and all(p.get_subscription_count() for t, p in out.mask_pubs.items()
                                                 if t in ('red_car', 'class_3')), what='matching')
    assert set(out.mask_pubs) == {'red_car', 'tree', 'class_3'}
    rgb = scene(24, 30)
    header = probe.next_header()
    probe.send(numpy_to_image(rgb, 'rgb8', header))
    outs = {t: wait_for(lambda t=t: probe.output_for(t, header), what=t) for t in topics}
    labels = expected_labels(rgb, 3, True)

    conf = image_to_numpy(outs[NODE + '/confidence'])
    assert outs[NODE + '/confidence'].encoding == '32FC1' and conf.shape == (24, 30)
    np.testing.assert_allclose(conf, np.where(labels > 0, 0.9, 0.1), rtol=1e-6)
    conf8 = outs[NODE + '/confidence_mono8']
    assert conf8.encoding == 'mono8'
    np.testing.assert_array_equal(image_to_numpy(conf8), np.where(labels > 0, 230, 26))  # rint(0.9/0.1 * 255)
    np.testing.assert_allclose(image_to_numpy(outs[NODE + '/background']), 0.55, rtol=1e-6)

    masks = outs[NODE + '/masks']
    info = wait_for(lambda: probe.got(NODE + '/class_info'), what='class_info')[-1]
    assert masks.vocabulary_version == info.vocabulary_version == node.legend_state.version
    assert list(masks.class_ids) == [1, 2, 3] and list(masks.class_names) == ['red car', 'Tree', '猫']
    assert masks.mask_type == 'binary'
    for i, mask in enumerate(masks.masks):
        assert mask.header == header and mask.encoding == 'mono8'
        np.testing.assert_array_equal(image_to_numpy(mask), (labels == i + 1) * 255)
    np.testing.assert_array_equal(image_to_numpy(outs[NODE + '/mask/red_car']), (labels == 1) * 255)
    np.testing.assert_array_equal(image_to_numpy(outs[NODE + '/mask/class_3']), (labels == 3) * 255)

    assert list(info.class_ids) == [0, 1, 2, 3]
    assert list(info.class_names) == ['background', 'red car', 'Tree', '猫']
    assert len(info.colors) == 4 and all(c.a == 1.0 for c in info.colors)
    assert info.method == 'talk2dino' and info.background_threshold == pytest.approx(0.55)

    overlay = outs[NODE + '/overlay']
    assert (overlay.encoding, overlay.height, overlay.width) == ('rgb8', 24, 30)
    pixels = image_to_numpy(overlay)
    # bottom-right corner is outside the legend: background untouched, classes tinted
    y, x = 23, 29
    assert labels[y, x] == 3 and not np.array_equal(pixels[y, x], rgb[y, x])


def test_score_masks(make_node):
    node, probe, _ = make_node(params={'mask_type': 'score'}, vocabulary=['a', 'b'])
    probe.listen(NODE + '/masks', ClassMasks)
    wait_for(lambda: node.outputs_for().pubs['masks'].get_subscription_count(), what='masks subscription')
    rgb = scene(8, 8)
    header = probe.next_header()
    probe.send(numpy_to_image(rgb, 'rgb8', header))
    masks = wait_for(lambda: probe.output_for(NODE + '/masks', header), what='masks')
    assert masks.mask_type == 'score' and [m.encoding for m in masks.masks] == ['32FC1', '32FC1']
    np.testing.assert_allclose(image_to_numpy(masks.masks[0]),
                               np.where(expected_labels(rgb, 2, True) == 1, 0.9, 0.1), rtol=1e-6)


def test_labels_switch_to_mono16_above_255_classes(make_node):
    names = [f'class {i}' for i in range(300)]
    node, probe, _ = make_node(vocabulary=names)
    rgb = np.full((2, 600, 3), 200, np.uint8)
    labels = probe.send(numpy_to_image(rgb, 'rgb8', probe.next_header()))
    assert labels.encoding == 'mono16'
    values = image_to_numpy(labels)
    assert values.max() == 300 and values.min() == 1
    # per-class topics only for the first mask_topics_limit classes (each is a DDS publisher)
    # (made on the executor thread after the legend: wait for them rather than race them)
    expected = {f'class_{i}' for i in range(32)}
    wait_for(lambda: set(node.outputs_for().mask_pubs) == expected, what='the per-class mask publishers')


def test_vocabulary_via_topic_parameter_service_and_late_legend_subscriber(make_node, ros_context):
    node, probe, factory = make_node()
    wait_for(lambda: node.segmenter is not None, what='model')
    # topic (latched): duplicates / empties are dropped, the parameter follows
    probe.vocab_pub.publish(String(data='cat, dog, , Cat\nbird'))
    wait_for(lambda: node.legend_state and node.legend_state.names == ('cat', 'dog', 'bird'), what='topic vocab')
    assert node.get_parameter('vocabulary').value == ['cat', 'dog', 'bird']
    v1 = node.legend_state.version
    labels = image_to_numpy(probe.send(numpy_to_image(scene(4, 9), 'rgb8', probe.next_header())))
    assert labels.max() == 3

    # service
    client = probe.create_client(SetVocabulary, NODE + '/set_vocabulary')
    assert client.wait_for_service(timeout_sec=5.0)
    future = client.call_async(SetVocabulary.Request(names=['tree', 'sky', 'background', 'x' * 300, 'Sky']))
    response = wait_for(lambda: future.done() and future.result(), what='service answer')
    assert response.success and list(response.accepted) == ['tree', 'sky']
    assert list(response.rejected) == ['background', 'x' * 300, 'Sky']
    assert 'reserved' in response.message and 'duplicate' in response.message
    assert node.legend_state.names == ('tree', 'sky') and node.legend_state.version == v1 + 1

    future = client.call_async(SetVocabulary.Request(names=['  ', '']))
    response = wait_for(lambda: future.done() and future.result(), what='service answer')
    assert not response.success and list(response.accepted) == ['tree', 'sky']
    assert 'no usable class name' in response.message

    # parameter, through the ROS parameter services (what `ros2 param set` does)
    params = AsyncParameterClient(probe, NODE)
    assert params.wait_for_services(timeout_sec=5.0)
    future = params.set_parameters([Parameter('vocabulary', Parameter.Type.STRING_ARRAY, ['road', ' car '])])
    result = wait_for(lambda: future.done() and future.result(), what='param set').results[0]
    assert result.successful
    wait_for(lambda: node.legend_state.names == ('road', 'car'), what='param vocab')
    future = params.set_parameters([Parameter('vocabulary', Parameter.Type.STRING_ARRAY, ['', ' \t'])])
    result = wait_for(lambda: future.done() and future.result(), what='param set').results[0]
    assert not result.successful and 'no usable class name' in result.reason
    assert node.legend_state.names == ('road', 'car')

    # frames use the new vocabulary; a late legend subscriber ends on the current legend (the legend topic
    # keeps a short history for live readers: a late joiner that takes samples while they arrive may see an
    # older one first, never a newer one and never one out of order)
    labels = image_to_numpy(probe.send(numpy_to_image(scene(4, 9), 'rgb8', probe.next_header())))
    assert labels.max() == 2
    late = Probe(ros_context)
    late_msgs = []
    late.create_subscription(ClassInfo, NODE + '/class_info', late_msgs.append, latched_qos())
    from rclpy.executors import SingleThreadedExecutor
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(late)
    deadline = time.monotonic() + 5.0
    current = node.legend_state.version
    while not (late_msgs and late_msgs[-1].vocabulary_version == current) and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    executor.spin_once(timeout_sec=0.2)
    executor.shutdown()
    late.destroy_node()
    versions = [m.vocabulary_version for m in late_msgs]
    assert versions and versions[-1] == current and versions == sorted(set(versions)), versions
    assert list(late_msgs[-1].class_names) == ['background', 'road', 'car']
    # names already encoded once are taken from the engine's cache, the node re-sends them all
    assert factory.loads[0].encoded_names.count('cat') == 1


def test_legend_version_matches_every_frame_while_vocabulary_changes(make_node):
    node, probe, _ = make_node(vocabulary=['a', 'b'], factory=FakeFactory(delay=0.01))
    probe.listen(NODE + '/masks', ClassMasks)
    # a deep reader queue: with depth 1 a slow reader may legitimately skip legends that came in a burst
    deep_latched = latched_qos()
    deep_latched.depth = 200
    probe.listen(NODE + '/class_info', ClassInfo, deep_latched)
    wait_for(lambda: node.outputs_for().pubs['masks'].get_subscription_count(), what='masks subscription')
    # matched (the latched legend arrived): from now on every legend reaches the probe
    wait_for(lambda: [i for i in probe.got(NODE + '/class_info')
                      if i.vocabulary_version == node.legend_state.version], what='the first legend')
    probe.send(numpy_to_image(scene(4, 12), 'rgb8', probe.next_header()))
    stop = threading.Event()

    def churn():
        i = 0
        while not stop.is_set():
            i += 1
            node.apply_vocabulary([f'n{j}' for j in range(1 + i % 5)])
            time.sleep(0.003)
    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(30):
            probe.image_pub.publish(numpy_to_image(scene(4, 12), 'rgb8', probe.next_header()))
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
    last = probe.next_header()
    probe.send(numpy_to_image(scene(4, 12), 'rgb8', last), topic=NODE + '/masks')
    sizes = {i.vocabulary_version: len(i.class_names) - 1 for i in probe.got(NODE + '/class_info')}
    masks = probe.got(NODE + '/masks')
    assert len(masks) >= 5
    for m in masks:
        assert m.vocabulary_version in sizes, 'a frame carries a legend version never published'
        assert len(m.class_names) == sizes[m.vocabulary_version]
        for labels in probe.got(NODE + '/labels'):
            if labels.header.stamp == m.header.stamp:
                assert image_to_numpy(labels).max() <= sizes[m.vocabulary_version]


def test_latest_frame_is_processed_and_stale_frames_dropped(make_node):
    node, probe, _ = make_node(vocabulary=['a', 'b'], factory=FakeFactory(delay=0.15))
    probe.send(numpy_to_image(scene(4, 4), 'rgb8', probe.next_header()))
    before = node.stats.processed.total
    received_before, dropped_before = node.stats.received.total, node.frames_dropped
    headers = [probe.next_header() for _ in range(16)]
    t0 = time.monotonic()
    for header in headers:
        probe.image_pub.publish(numpy_to_image(scene(4, 4), 'rgb8', header))
    wait_for(lambda: probe.output_for(NODE + '/labels', headers[-1]), what='the last frame of the burst')
    elapsed = time.monotonic() - t0
    processed = node.stats.processed.total - before
    assert processed <= 4, f'{processed} frames processed: frames were queued, not dropped'
    received = node.stats.received.total - received_before
    assert received >= 3  # DDS may drop some of a best-effort burst itself (queue depth 5)
    # every frame that reached the node was either processed or replaced by a newer one (counted)
    assert node.frames_dropped - dropped_before == received - processed
    assert elapsed < 16 * 0.15 / 2
    stamps = [m.header.stamp.sec for m in probe.got(NODE + '/labels')]
    assert stamps == sorted(stamps)


def test_max_rate_limits_processing(make_node):
    node, probe, _ = make_node(params={'max_rate': 5.0}, vocabulary=['a'])
    probe.send(numpy_to_image(scene(4, 4), 'rgb8', probe.next_header()))
    before = node.stats.processed.total
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.8:
        probe.image_pub.publish(numpy_to_image(scene(4, 4), 'rgb8', probe.next_header()))
        time.sleep(0.01)
    time.sleep(0.25)
    assert 2 <= node.stats.processed.total - before <= 6


def test_bad_inputs_are_rejected_and_the_node_keeps_running(make_node, ros_log):
    node, probe, _ = make_node(vocabulary=['a', 'b'])
    probe.send(numpy_to_image(scene(4, 4), 'rgb8', probe.next_header()))
    bad = []
    float_img = numpy_to_image(np.zeros((4, 4), np.float32), '32FC1', probe.next_header())
    bad.append(float_img)
    bad.append(Image(header=probe.next_header(), height=0, width=0, encoding='rgb8', step=0))
    wrong_step = numpy_to_image(scene(4, 4), 'rgb8', probe.next_header())
    wrong_step.step = 5
    bad.append(wrong_step)
    short = numpy_to_image(scene(4, 4), 'rgb8', probe.next_header())
    short.data = bytes(short.data)[:-7]
    bad.append(short)
    for msg in bad:
        probe.image_pub.publish(msg)
        wait_for(lambda: node.stats.bad_frames >= bad.index(msg) + 1, what=f'rejection of {msg.encoding}')
    assert node.stats.bad_frames == 4
    assert 'step' in node.stats.last_error or 'too short' in node.stats.last_error
    # empty vocabulary on the topic: ignored, legend unchanged
    version = node.legend_state.version
    probe.vocab_pub.publish(String(data=' ,\n ,'))
    time.sleep(0.3)
    assert node.legend_state.version == version and node.legend_state.names == ('a', 'b')
    # still alive and correct
    rgb = scene(3, 5)
    labels = probe.send(numpy_to_image(rgb, 'rgb8', probe.next_header()))
    np.testing.assert_array_equal(image_to_numpy(labels), expected_labels(rgb, 2, True))
    for msg in bad:
        assert probe.output_for(NODE + '/labels', msg.header) is None
    err = ros_log.wait_for("image rejected: cannot use a '32FC1' image", 'no usable class name')
    assert "image rejected: cannot use a '32FC1' image as a colour input" in err
    assert 'no usable class name' in err


def test_missing_weights_reported_then_fixed_and_failed_reload_keeps_model(make_node, tmp_path):
    good = {name: tmp_path / f'{name}.pth' for name in ('dinov2', 'clip', 'proj', 'dinov2_b', 'broken')}
    for path in good.values():
        path.write_bytes(b'x')
    factory = FakeFactory(fail_paths=[str(good['broken'])])
    node, probe, _ = make_node(
        params={'allow_runtime_weight_changes': True,
                'dinov2_weights': '/nonexistent/dinov2_vitb14_reg4_pretrain.pth', 'clip_weights': str(good['clip']),
                'proj_weights': str(good['proj']), 'vocabulary': ['a', 'b'], 'diagnostics_period': 0.1},
        factory=factory)
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    probe.listen('/diagnostics', DiagnosticArray, QoSProfile(depth=20))
    wait_for(lambda: 'weight file not found' in node.model_error, what='missing-file error')
    assert '/nonexistent/dinov2_vitb14_reg4_pretrain.pth' in node.model_error and factory.loads == []
    diag = wait_for(lambda: [d for d in probe.got('/diagnostics') if d.status[0].level == DiagnosticStatus.ERROR],
                    what='ERROR diagnostics')[-1].status[0]
    assert 'dinov2_weights' in diag.message
    values = {kv.key: kv.value for kv in diag.values}
    assert {'input_rate_hz', 'processed_rate_hz', 'frames_dropped', 'latency_ms_p50', 'device', 'model'} <= set(values)

    # a frame without a model: no output, counted
    probe.image_pub.publish(numpy_to_image(scene(4, 4), 'rgb8', probe.next_header()))
    wait_for(lambda: node.stats.skipped_not_ready >= 1, what='frame skipped without a model')

    params = AsyncParameterClient(probe, NODE)
    assert params.wait_for_services(timeout_sec=5.0)

    def set_param(name, value):
        future = params.set_parameters([Parameter(name, value=value)])
        return wait_for(lambda: future.done() and future.result(), what='param set').results[0]

    result = set_param('dinov2_weights', '/still/missing.pth')
    assert not result.successful and '/still/missing.pth' in result.reason and 'fetch_weights' in result.reason
    assert set_param('dinov2_weights', str(good['dinov2'])).successful
    wait_for(lambda: node.legend_state is not None, what='model loaded at runtime')
    assert node.model_error == '' and len(factory.loads) == 1
    probe.send(numpy_to_image(scene(4, 4), 'rgb8', probe.next_header()))
    version = node.legend_state.version

    assert set_param('dinov2_weights', str(good['broken'])).successful
    wait_for(lambda: 'truncated' in node.load_error, what='failed load')
    assert node.legend_state.segmenter is factory.loads[0] and node.legend_state.version == version
    probe.send(numpy_to_image(scene(4, 4), 'rgb8', probe.next_header()))  # previous model still runs

    assert set_param('dinov2_weights', str(good['dinov2_b'])).successful
    wait_for(lambda: node.legend_state.segmenter is not factory.loads[0], what='second model swapped in')
    assert node.legend_state.version == version + 1 and node.load_error == ''
    assert node.legend_state.segmenter is factory.loads[1]


def test_parameter_validation_reasons(make_node):
    node, probe, _ = make_node(vocabulary=['a', 'b'])
    params = AsyncParameterClient(probe, NODE)
    assert params.wait_for_services(timeout_sec=5.0)

    def set_param(param):
        future = params.set_parameters([param])
        return wait_for(lambda: future.done() and future.result(), what='param set').results[0]

    cases = {
        'method': ('dino', 'not one of talk2dino, clip_dinoiser'),
        'mode': ('tiles', 'not one of slide, whole, squash'),
        'device': ('gpu', 'not auto, cpu, cuda or cuda:N'),
        'background_threshold': (2.0, 'out of range'),
        'resolution': (5, 'out of range'),
        'image_depth': (3, 'read-only'),
    }
    for name, (value, needle) in cases.items():
        result = set_param(Parameter(name, value=value))
        assert not result.successful and needle in result.reason, (name, result.reason)
    result = set_param(Parameter('colors', Parameter.Type.STRING_ARRAY, ['#12345']))
    assert not result.successful and "'#12345' is not #RRGGBB" in result.reason

    version = node.legend_state.version
    assert set_param(Parameter('colors', Parameter.Type.STRING_ARRAY, ['b=#00ff00', '#ff0000'])).successful
    wait_for(lambda: node.legend_state.version == version + 1, what='new legend')
    assert node.legend_state.colors[1:].tolist() == [[255, 0, 0], [0, 255, 0]]
    assert set_param(Parameter('background_threshold', value=0.0)).successful
    wait_for(lambda: not node.legend_state.options.background, what='background off')
    rgb = scene(4, 6)
    labels = image_to_numpy(probe.send(numpy_to_image(rgb, 'rgb8', probe.next_header())))
    np.testing.assert_array_equal(labels, expected_labels(rgb, 2, background=False))
    assert labels.min() >= 1
    assert set_param(Parameter('mode', value='slide')).successful
    wait_for(lambda: node.legend_state.segmenter.mode == 'slide', what='mode change')


def test_invalid_start_values_fall_back_to_defaults(make_node, ros_log):
    node, probe, _ = make_node(params={'method': 'nope', 'vocabulary': ['', ' '], 'mask_type': 'fuzzy',
                                       'image_reliability': 'sometimes'})
    assert node.get_parameter('method').value == 'talk2dino'
    assert node.get_parameter('mask_type').value == 'binary'
    # read-only too: declared with the default, so the parameter shows what the node uses
    assert node.get_parameter('image_reliability').value == 'best_effort'
    assert node._settings.image_reliability == 'best_effort'
    wait_for(lambda: node.segmenter is not None, what='model')
    assert node.legend_state is None
    err = ros_log.wait_for("method 'nope' is not one of", 'vocabulary has no usable class name')
    assert "method 'nope' is not one of" in err and 'vocabulary has no usable class name' in err
    assert "image_reliability 'sometimes' is not one of" in err


def test_missing_weights_log_recommends_only_what_the_running_node_accepts(make_node, tmp_path, ros_log):
    node, _, _ = make_node(params={'dinov2_weights': str(tmp_path / 'missing.pth')})
    err = ros_log.wait_for('weight file not found')
    assert 'weight file not found' in err and 'ros2 param set' not in err
    assert '-p dinov2_weights:=/path/to/file' in err
