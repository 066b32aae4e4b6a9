"""output_saver: overlays are written whole (atomically), and a bad frame is logged, not fatal."""
import cv2
import numpy as np
from sensor_msgs.msg import Image

from talk2dino_ros.cli.output_saver import OutputSaver


def _image(rgb, encoding='rgb8'):
    msg = Image()
    msg.height, msg.width = rgb.shape[:2]
    msg.encoding = encoding
    msg.step = rgb.shape[1] * 3
    msg.data = rgb.tobytes()
    return msg


def test_saves_every_nth_overlay_atomically_and_survives_bad_frames(ros_context, tmp_path):
    node = OutputSaver('/talk2dino', str(tmp_path), every=2, context=ros_context)
    try:
        rgb = np.zeros((6, 8, 3), np.uint8)
        rgb[:, :4] = (255, 0, 0)
        node.on_overlay(_image(rgb))            # 1: not saved
        node.on_overlay(_image(rgb))            # 2: saved
        node.on_overlay(_image(rgb))            # 3
        node.on_overlay(_image(rgb, 'no_such_encoding'))  # 4: refused and logged, no exception
        assert sorted(p.name for p in tmp_path.iterdir()) == ['overlay_00002.png']  # no temporaries left
        bgr = cv2.imread(str(tmp_path / 'overlay_00002.png'))
        np.testing.assert_array_equal(bgr[..., ::-1], rgb)
        (tmp_path / 'overlay_00006.png').mkdir()  # the target cannot be replaced: logged, no exception
        node.on_overlay(_image(rgb))
        node.on_overlay(_image(rgb))
        assert sorted(p.name for p in tmp_path.iterdir()) == ['overlay_00002.png', 'overlay_00006.png']
    finally:
        node.destroy_node()
