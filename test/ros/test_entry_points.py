"""The node and the demo publisher as real processes, and the demo publisher's frame sources."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers.ros import wait_for
from talk2dino_ros.cli import image_folder_publisher as pub

ROOT = Path(__file__).resolve().parents[2]


class Process:
    """A child process whose stderr is collected line by line in the background."""

    def __init__(self, args):
        self.proc = subprocess.Popen([sys.executable, '-m'] + args, cwd=ROOT, env=dict(os.environ),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def err(self):
        return ''.join(self.lines)

    def finish(self, sig=None, timeout=15.0):
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self._reader.join(timeout=2.0)
        return code


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_segment_node_process_survives_missing_weights_and_stops_cleanly(sig):
    proc = Process(['talk2dino_ros.ros.segment_node', '--ros-args', '-r', '__node:=t2d_proc',
                    '-p', 'dinov2_weights:=/nonexistent/dinov2_vitb14_reg4_pretrain.pth'])
    try:
        wait_for(lambda: 'weight file not found' in proc.err, timeout=30.0, period=0.05, what='the error log')
        time.sleep(0.3)
        assert proc.proc.poll() is None, 'the node exited instead of staying up'
    finally:
        code = proc.finish(sig)
    err = proc.err
    assert code == 0, err
    assert 'Traceback' not in err
    line = next(l for l in err.splitlines() if 'weight file not found' in l)
    assert "/nonexistent/dinov2_vitb14_reg4_pretrain.pth" in line and 'fetch_weights' in line
    assert sum('weight file not found' in l for l in err.splitlines()) == 1  # one clear error, not a flood


def test_image_folder_publisher_process_publishes_synthetic_frames(ros_context, spin):
    from rclpy.node import Node
    from sensor_msgs.msg import Image
    from talk2dino_ros.ros.qos import output_qos

    received = []
    node = Node('listener', context=ros_context)
    node.create_subscription(Image, '/demo_image', received.append, output_qos(depth=50))
    spin(node)
    proc = Process(['talk2dino_ros.cli.image_folder_publisher', '--topic', '/demo_image', '--rate', '20',
                    '--count', '60', '--width', '64', '--height', '48', '--frame-id', 'demo_cam'])
    try:
        wait_for(lambda: received, timeout=20.0, what='a demo frame')
    finally:
        code = proc.finish(signal.SIGINT)
    assert code == 0, proc.err
    msg = received[0]
    assert (msg.encoding, msg.height, msg.width, msg.header.frame_id) == ('rgb8', 48, 64, 'demo_cam')
    assert msg.header.stamp.sec > 0


def test_image_folder_publisher_bad_source_is_one_error_line(tmp_path, capsys):
    assert pub.main(['--folder', str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and 'has no images' in err and '\n' not in err
    assert pub.main(['--video', str(tmp_path / 'missing.mp4')]) == 2
    assert 'does not exist' in capsys.readouterr().err


def test_folder_source_reads_images_in_order_as_rgb(tmp_path):
    for name, colour in (('b.png', (0, 0, 255)), ('a.png', (255, 0, 0))):  # BGR on disk
        cv2.imwrite(str(tmp_path / name), np.full((4, 6, 3), colour, np.uint8))
    (tmp_path / 'notes.txt').write_text('not an image')
    (tmp_path / 'broken.jpg').write_bytes(b'garbage')
    frames = list(pub.folder_frames(str(tmp_path), loop=False))
    assert [f[0, 0].tolist() for f in frames] == [[0, 0, 255], [255, 0, 0]]  # a.png (blue), b.png (red)
    looping = pub.folder_frames(str(tmp_path), loop=True)
    assert len([next(looping) for _ in range(5)]) == 5


def test_video_source(tmp_path):
    path = str(tmp_path / 'clip.avi')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), 10, (32, 24))
    if not writer.isOpened():
        pytest.skip('this OpenCV build cannot write MJPG/AVI')
    for i in range(3):
        writer.write(np.full((24, 32, 3), (0, 0, 200), np.uint8))  # red in BGR
    writer.release()
    frames = list(pub.video_frames(path, loop=False))
    assert len(frames) == 3 and frames[0].shape == (24, 32, 3)
    assert frames[0][12, 16, 0] > 150 and frames[0][12, 16, 2] < 60  # red first: RGB order
    (tmp_path / 'bad.avi').write_bytes(b'not a video')
    with pytest.raises(pub.SourceError, match='bad.avi'):
        list(pub.video_frames(str(tmp_path / 'bad.avi'), loop=False))


def test_synthetic_scene_moves_and_has_its_shapes():
    a, b = pub.synthetic_frame(0, 160, 120), pub.synthetic_frame(10, 160, 120)
    assert a.shape == (120, 160, 3) and a.dtype == np.uint8 and not np.array_equal(a, b)
    colours = {tuple(c) for c in a.reshape(-1, 3)}
    assert {(220, 30, 30), (30, 200, 40), (40, 60, 220), (70, 150, 60)} <= colours


@pytest.mark.slow
def test_segment_node_process_with_tiny_weights_labels_images(ros_context, spin, request):
    """`segment_node` as users run it: weights found in weights_dir, an image in, labels out."""
    pytest.importorskip('talk2dino_ros.model.random_weights', reason='random_weights.py is not there yet')
    try:
        weights = request.getfixturevalue('tiny_weights')
    except pytest.FixtureLookupError:
        pytest.skip('the tiny_weights fixture (test/conftest.py) is not there yet')
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from talk2dino_ros.ros.image_conversion import numpy_to_image
    from std_msgs.msg import String
    from talk2dino_ros.ros.qos import latched_qos, output_qos

    weights_dir = next(iter(weights.values())).parent
    labels = []
    node = Node('proc_probe', context=ros_context)
    node.create_subscription(Image, '/t2d_proc/labels', labels.append, output_qos())
    image_pub = node.create_publisher(Image, '/proc_image', QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    # the prompts go where the README says, with no remap on the node: /t2d/vocab
    vocab_pub = node.create_publisher(String, '/t2d/vocab', latched_qos())
    vocab_pub.publish(String(data='sky, road'))
    spin(node)
    proc = Process(['talk2dino_ros.ros.segment_node', '--ros-args', '-r', '__node:=t2d_proc', '-r', 'image:=/proc_image',
                    '-p', f'weights_dir:={weights_dir}', '-p', 'allow_random_weights:=true', '-p', 'device:=cpu',
                    '-p', 'resolution:=56'])
    try:
        msg = numpy_to_image(np.zeros((24, 32, 3), np.uint8), 'rgb8')
        msg.header.frame_id = 'proc_cam'

        def sent_and_labelled():
            image_pub.publish(msg)
            return labels
        wait_for(sent_and_labelled, timeout=40.0, period=0.2, what='labels from the node process')
    finally:
        code = proc.finish(signal.SIGINT)
    assert code == 0, proc.err
    assert (labels[0].width, labels[0].height, labels[0].header.frame_id) == (32, 24, 'proc_cam')
    assert 'allow_random_weights is true' in proc.err and 'Traceback' not in proc.err


def test_latency_probe_runs_and_reports(capsys):
    from talk2dino_ros.cli import latency_probe
    assert latency_probe.main(['--frames', '3', '--warmup', '1', '--width', '32', '--height', '24']) == 0
    out = capsys.readouterr().out
    assert 'engine=null image 32x24' in out
    for row in ('end_to_end', 'engine', 'added'):
        assert f'  {row}' in out


def test_segment_node_bad_ros_arguments_are_one_error_line(capsys):
    from talk2dino_ros.ros import segment_node
    assert segment_node.main(['--ros-args', '-p']) == 2
    err = capsys.readouterr().err
    assert 'error: cannot start ROS' in err and 'Traceback' not in err
