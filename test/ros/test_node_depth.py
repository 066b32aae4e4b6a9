"""The node's 3D side through real rclpy pub/sub (fake engine): depth pairing, ~/points, ~/locate.

The fake engine labels vertical stripes (class i over the i-th part of the width), so every point's label
is known; the depth image is a wall at 2 m, at half the colour resolution.
"""
import time

import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from helpers.ros import NODE, wait_for
from helpers.segmenters import expected_labels
from talk2dino_ros.ros.image_conversion import numpy_to_image
from talk2dino_ros.spatial.cloud import read_cloud
from talk2dino_ros.srv import Locate

H, W = 24, 32
DH, DW = 12, 16


def _info(header):
    info = CameraInfo(header=header, width=DW, height=DH)
    info.k = [20.0, 0.0, 7.5, 0.0, 20.0, 5.5, 0.0, 0.0, 1.0]
    return info


def _depth_pubs(probe):
    qos = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    return (probe.create_publisher(Image, '/depth/image_raw', qos),
            probe.create_publisher(CameraInfo, '/depth/camera_info', qos))


def _send_pair(probe, depth_pub, info_pub, rgb, with_depth=True, topic=NODE + '/points'):
    """Publish a colour frame (and its depth frame, same stamp) until the node's output for it arrives."""
    header = probe.next_header(frame_id='color_optical')
    depth_header = type(header)(stamp=header.stamp, frame_id='depth_optical')
    depth = numpy_to_image(np.full((DH, DW), 2.0, np.float32), '32FC1', depth_header)
    colour = numpy_to_image(rgb, 'rgb8', header)
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        if with_depth:
            info_pub.publish(_info(depth_header))
            depth_pub.publish(depth)
            time.sleep(0.05)  # the depth frame is in the node's buffer before its colour frame is taken
        probe.image_pub.publish(colour)
        try:
            return header, wait_for(lambda: probe.output_for(topic, header if topic.endswith('labels') else
                                                             depth_header), timeout=0.5)
        except AssertionError:
            continue
    raise AssertionError(f'no {topic} for {header.stamp}')


def _call(client, request):
    future = client.call_async(request)
    return wait_for(lambda: future.done() and future.result(), timeout=20.0, what='service answer')


def test_points_follow_depth_and_labels_and_a_frame_without_depth_costs_nothing(make_node):
    node, probe, factory = make_node(params={'depth': True, 'background_threshold': 0.0},
                                     vocabulary=['a', 'b', 'c', 'd'])
    depth_pub, info_pub = _depth_pubs(probe)
    probe.listen(NODE + '/points', PointCloud2)
    wait_for(lambda: node.outputs_for().pubs['points'].get_subscription_count() > 0, what='points match')
    rgb = np.full((H, W, 3), 200, np.uint8)
    header, cloud = _send_pair(probe, depth_pub, info_pub, rgb)
    # the cloud carries the depth image's header: its frame and its stamp
    assert cloud.header.frame_id == 'depth_optical' and cloud.header.stamp == header.stamp
    assert (cloud.height, cloud.width, cloud.point_step, cloud.is_dense) == (1, DH * DW, 20, True)
    assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
        ('x', 0, 7), ('y', 4, 7), ('z', 8, 7), ('confidence', 12, 7), ('label', 16, 4)]
    pts = read_cloud(cloud.fields, cloud.point_step, bytes(cloud.data), cloud.width, cloud.height)
    np.testing.assert_allclose(pts['z'], 2.0)
    v, u = np.divmod(np.arange(DH * DW), DW)
    np.testing.assert_allclose(pts['x'], (u - 7.5) * 2.0 / 20.0, atol=1e-6)
    labels = expected_labels(rgb, 4, background=False)
    np.testing.assert_array_equal(pts['label'], labels[2 * v + 1, 2 * u + 1])  # nearest neighbour, never blended
    np.testing.assert_allclose(pts['confidence'], 0.9)

    # a colour frame without a depth partner: its labels come out as usual, no cloud for it
    probe.listen(NODE + '/labels', Image)
    wait_for(lambda: node.outputs_for().pubs['labels'].get_subscription_count() > 0, what='labels match')
    lonely, _ = _send_pair(probe, depth_pub, info_pub, rgb, with_depth=False, topic=NODE + '/labels')
    time.sleep(0.3)
    assert not any(m.header.stamp == lonely.stamp for m in probe.got(NODE + '/points'))
    diag = node._spatial.diagnostics()
    assert int(diag['frames_without_depth']) >= 1 and int(diag['depth_frames_paired']) >= 1
    assert diag['depth_topic'] == '/depth/image_raw'
    # vision_msgs is not installed here: no detection publishers, the cloud works
    assert 'detections' not in node.outputs_for().pubs and 'detections_3d' not in node.outputs_for().pubs


def test_locate_answers_in_3d_and_looks_for_names_outside_the_vocabulary(make_node):
    node, probe, factory = make_node(params={'depth': True, 'background_threshold': 0.0, 'min_region_pixels': 10},
                                     vocabulary=['a', 'b'])
    client = probe.create_client(Locate, NODE + '/locate')
    assert client.wait_for_service(timeout_sec=10.0)
    answer = _call(client, Locate.Request(names=['a']))
    assert not answer.success and 'no camera frame' in answer.message
    depth_pub, info_pub = _depth_pubs(probe)
    probe.listen(NODE + '/points', PointCloud2)
    wait_for(lambda: node.outputs_for().pubs['points'].get_subscription_count() > 0, what='points match')
    header, _ = _send_pair(probe, depth_pub, info_pub, np.full((H, W, 3), 200, np.uint8))

    answer = _call(client, Locate.Request(names=['b', 'Zebra', 'background', 'B']))
    assert answer.success and answer.has_depth, answer.message
    assert answer.header.frame_id == 'depth_optical' and answer.header.stamp == header.stamp
    assert list(answer.rejected) == ['background', 'B']
    b, zebra = answer.results
    assert (b.name, b.in_vocabulary, b.class_id) == ('b', True, 2)
    (obj,) = b.objects
    # with Zebra the fake engine draws three stripes: b is the middle one, straight ahead
    assert obj.has_3d and abs(obj.center.z - 2.0) < 1e-3 and abs(obj.center.x) < 0.05 and obj.center_x == 16.0
    assert (zebra.in_vocabulary, zebra.class_id) == (False, 0)
    # looked for with the vocabulary plus the new name, never installed
    segmenter = factory.loads[-1]
    assert segmenter.built_names[-1] == ('a', 'b', 'Zebra')
    assert 'Zebra' not in segmenter.encoded_names and node.legend_state.names == ('a', 'b')
    assert list(node.get_parameter('vocabulary').value) == ['a', 'b']

    unknown = _call(client, Locate.Request(names=['a'], camera='side'))
    assert not unknown.success and "unknown camera 'side'" in unknown.message
