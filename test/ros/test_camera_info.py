"""~/camera_info: the camera's calibration with the outputs' header, scaled when the output size differs."""
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from helpers.ros import NODE, wait_for
from talk2dino_ros.ros.camera_info import output_camera_info
from talk2dino_ros.ros.cameras import camera_info_topic
from talk2dino_ros.ros.image_conversion import numpy_to_image


def calibration(width=40, height=30):
    info = CameraInfo(width=width, height=height, distortion_model='plumb_bob')
    info.k = [50.0, 0.0, 19.5, 0.0, 52.0, 14.5, 0.0, 0.0, 1.0]
    info.p = [50.0, 0.0, 19.5, -5.0, 0.0, 52.0, 14.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.d = [0.1, 0.0, 0.0, 0.0, 0.0]
    return info


def test_camera_info_topic_is_the_image_topics_sibling():
    assert camera_info_topic('/front/camera/image_raw') == '/front/camera/camera_info'
    assert camera_info_topic('/image') == '/camera_info'


def test_same_size_is_a_copy_with_the_output_header():
    info = calibration()
    header = Header(frame_id='cam')
    header.stamp.sec = 7
    out = output_camera_info(info, header, (40, 30), (40, 30))
    assert out.header == header and list(out.k) == list(info.k) and list(out.p) == list(info.p)
    assert (out.width, out.height, list(out.d)) == (40, 30, list(info.d))
    assert info.header.frame_id == ''  # the camera's message is left alone


def test_half_size_scales_the_calibration_like_an_image_resize():
    out = output_camera_info(calibration(), Header(), (40, 30), (20, 15))
    assert (out.width, out.height) == (20, 15)
    fx, cx, fy, cy = out.k[0], out.k[2], out.k[4], out.k[5]
    assert (fx, fy) == pytest.approx((25.0, 26.0))
    # pixel edges stay aligned: the centre of a 40-wide image (19.5) is the centre of a 20-wide one (9.5)
    assert (cx, cy) == pytest.approx((9.5, 7.0))
    assert (out.p[0], out.p[2], out.p[3]) == pytest.approx((25.0, 9.5, -2.5))


def test_node_publishes_camera_info_with_the_labels_header(make_node):
    node, probe, _ = make_node(vocabulary=['a', 'b'])
    probe.listen(NODE + '/camera_info', CameraInfo)
    info_pub = probe.create_publisher(CameraInfo, '/camera_info', 10)
    wait_for(lambda: node.outputs_for().pubs['camera_info'].get_subscription_count()
             and info_pub.get_subscription_count(), what='matching')
    info = calibration(16, 12)
    info.header.frame_id = 'camera'
    info_pub.publish(info)
    wait_for(lambda: node._frame_worker.camera_infos.get(''), what='the calibration')
    header = probe.next_header()
    probe.send(numpy_to_image(np.full((12, 16, 3), 200, np.uint8), 'rgb8', header))
    got = wait_for(lambda: probe.output_for(NODE + '/camera_info', header), what='camera_info')
    labels = probe.output_for(NODE + '/labels', header)
    assert got.header == labels.header == header
    assert (got.width, got.height) == (labels.width, labels.height) == (16, 12)
    assert list(got.k) == list(info.k) and got.distortion_model == 'plumb_bob'


def test_no_camera_info_from_the_camera_means_none_from_the_node(make_node):
    node, probe, _ = make_node(vocabulary=['a'])
    probe.listen(NODE + '/camera_info', CameraInfo)
    wait_for(lambda: node.outputs_for().pubs['camera_info'].get_subscription_count(), what='matching')
    header = probe.next_header()
    probe.send(numpy_to_image(np.full((8, 8, 3), 200, np.uint8), 'rgb8', header))
    assert probe.output_for(NODE + '/camera_info', header) is None
    assert isinstance(probe.output_for(NODE + '/labels', header), Image)
