"""The package's own image publisher delivers 640x480 frames to a best-effort subscriber on the same host
(the segmentation node's default QoS) without losing them to UDP fragmentation."""
import os
import subprocess
import sys
import time
from pathlib import Path

from talk2dino_ros.ros.shm_profile import DEFAULT_SEGMENT, large_frame_profile, needs_profile

ROOT = Path(__file__).resolve().parents[2]
VGA = 640 * 480 * 3


def test_profile_only_for_fast_dds_large_frames_and_never_over_the_users_own():
    assert needs_profile(VGA, {}) and needs_profile(VGA, {'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp'})
    assert not needs_profile(64 * 48 * 3, {})                      # fits the default segment
    assert not needs_profile(VGA, {'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'})
    assert not needs_profile(VGA, {'FASTDDS_DEFAULT_PROFILES_FILE': '/mine.xml'})
    env = {}
    path = large_frame_profile(VGA, env)
    try:
        assert env == {'FASTDDS_DEFAULT_PROFILES_FILE': path}
        text = Path(path).read_text()
        size = int(text.split('<segment_size>')[1].split('<')[0])
        assert size >= 5 * VGA > DEFAULT_SEGMENT and '<useBuiltinTransports>true' in text
    finally:
        os.unlink(path)


def test_a_best_effort_subscriber_gets_every_vga_frame(ros_context, spin):
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from talk2dino_ros.ros.qos import image_input_qos

    node = Node('vga_counter', context=ros_context)
    stamps = []
    node.create_subscription(Image, '/t2d_test/vga', lambda m: stamps.append(
        m.header.stamp.sec + m.header.stamp.nanosec * 1e-9), image_input_qos('best_effort', 5))
    spin(node)
    rate, count = 10.0, 40
    proc = subprocess.run([sys.executable, '-m', 'talk2dino_ros.cli.image_folder_publisher', '--topic',
                           '/t2d_test/vga', '--rate', str(rate), '--count', str(count)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    time.sleep(0.5)
    assert proc.returncode == 0, proc.stderr
    assert 'shared-memory segment enlarged' in proc.stderr
    assert len(stamps) >= 10, f'only {len(stamps)} frames arrived'
    # frames sent after the subscription matched (the first one received) must all arrive
    sent = round((stamps[-1] - stamps[0]) * rate) + 1
    assert len(stamps) >= sent - 1, f'{sent - len(stamps)} of {sent} frames lost'
