"""Demo image source: publish a folder of images, a video file, or a generated scene as sensor_msgs/Image.

    image_folder_publisher                              # synthetic scene of moving coloured shapes
    image_folder_publisher --folder ~/pictures --rate 2
    image_folder_publisher --video clip.mp4 --topic /camera/image_raw --frame-id camera
    image_folder_publisher --vocab "red circle, green square, blue triangle, sky, grass"

It lets the README's "run" command show the whole loop without a camera. ROS arguments can follow
``--ros-args`` as usual. ``--vocab`` also publishes the vocabulary (latched) on /t2d/vocab.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Iterator, List, Optional

import numpy as np

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


class SourceError(Exception):
    """A folder without images or a video that cannot be opened."""


def folder_frames(folder: str, loop: bool = True) -> Iterator[np.ndarray]:
    """RGB frames of the images in ``folder`` (sorted by name); unreadable files are skipped."""
    import cv2

    if not os.path.isdir(folder):
        raise SourceError(f'folder {folder!r} does not exist')
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise SourceError(f'folder {folder!r} has no images ({", ".join(IMAGE_EXTENSIONS)})')
    while True:
        produced = False
        for path in files:
            bgr = cv2.imread(path, cv2.IMREAD_COLOR)
            if bgr is None:
                print(f'warning: skipping unreadable image {path}', file=sys.stderr)
                continue
            produced = True
            yield np.ascontiguousarray(bgr[:, :, ::-1])
        if not produced:
            raise SourceError(f'no image in {folder!r} could be read')
        if not loop:
            return


def video_frames(path: str, loop: bool = True) -> Iterator[np.ndarray]:
    """RGB frames of a video file, restarted at the end when ``loop``."""
    import cv2

    if not os.path.isfile(path):
        raise SourceError(f'video file {path!r} does not exist')
    while True:
        capture = cv2.VideoCapture(path)
        if not capture.isOpened():
            raise SourceError(f'cannot open video {path!r} (unsupported format?)')
        count = 0
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                count += 1
                yield np.ascontiguousarray(bgr[:, :, ::-1])
        finally:
            capture.release()
        if count == 0:
            raise SourceError(f'video {path!r} has no readable frame')
        if not loop:
            return


def synthetic_frame(index: int, width: int = 640, height: int = 480) -> np.ndarray:
    """A scene of sky, grass and three moving shapes (red circle, green square, blue triangle), RGB."""
    import cv2

    frame = np.empty((height, width, 3), np.uint8)
    horizon = height * 3 // 5
    sky = np.linspace(0, 1, horizon)[:, None, None]
    frame[:horizon] = (np.array([135, 190, 235]) * (1 - 0.3 * sky)).astype(np.uint8)
    frame[horizon:] = (70, 150, 60)
    t = index / 15.0
    size = max(4, min(width, height) // 8)
    cx = int(width * (0.25 + 0.1 * math.sin(t)))
    cv2.circle(frame, (cx, horizon - size), size, (220, 30, 30), thickness=-1)
    sx = int(width * (0.55 + 0.08 * math.cos(t * 0.8)))
    cv2.rectangle(frame, (sx - size, horizon - size // 2), (sx + size, horizon + int(1.5 * size)),
                  (30, 200, 40), thickness=-1)
    tx = int(width * (0.8 - 0.05 * math.sin(t * 1.3)))
    triangle = np.array([[tx, horizon - 2 * size], [tx - size, horizon], [tx + size, horizon]], np.int32)
    cv2.fillPoly(frame, [triangle], (40, 60, 220))
    return frame


def synthetic_frames(width: int, height: int) -> Iterator[np.ndarray]:
    index = 0
    while True:
        yield synthetic_frame(index, width, height)
        index += 1


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='image_folder_publisher', description=__doc__.split('\n')[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--folder', help='publish the images of this folder (sorted by name)')
    source.add_argument('--video', help='publish the frames of this video file')
    parser.add_argument('--topic', default='/camera/image_raw', help='output topic (default %(default)s)')
    parser.add_argument('--frame-id', default='camera', help='header.frame_id (default %(default)s)')
    parser.add_argument('--rate', type=float, default=5.0, help='frames per second (default %(default)s)')
    parser.add_argument('--encoding', choices=('rgb8', 'bgr8'), default='rgb8',
                        help='sensor_msgs/Image encoding of the published frames (default rgb8)')
    parser.add_argument('--width', type=int, default=640, help='synthetic scene width')
    parser.add_argument('--height', type=int, default=480, help='synthetic scene height')
    parser.add_argument('--count', type=int, default=0, help='stop after this many frames (0 = never)')
    parser.add_argument('--no-loop', action='store_true', help='stop at the end of the folder/video')
    parser.add_argument('--vocab', default='', help='also publish this vocabulary (latched) on /t2d/vocab')
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error('--rate must be > 0')
    if args.width < 8 or args.height < 8:
        parser.error('--width and --height must be >= 8')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    """Publish frames until Ctrl-C, the end of a non-looping source, or --count frames."""
    from rclpy.utilities import remove_ros_args

    full = sys.argv if argv is None else ['image_folder_publisher'] + list(argv)
    args = parse_args(remove_ros_args(full)[1:])
    try:
        if args.folder:
            frames = folder_frames(os.path.expanduser(args.folder), loop=not args.no_loop)
        elif args.video:
            frames = video_frames(os.path.expanduser(args.video), loop=not args.no_loop)
        else:
            frames = synthetic_frames(args.width, args.height)
        first = next(frames)
    except (SourceError, StopIteration) as exc:
        print(f'error: {exc or "the source has no frames"}', file=sys.stderr)
        return 2

    from talk2dino_ros.ros.shm_profile import large_frame_profile

    # same-host subscribers get every large frame through shared memory, best effort ones too
    profile = large_frame_profile(first.nbytes)
    try:
        return _publish(args, full, frames, first, profile)
    finally:
        if profile:
            os.unlink(profile)


def _publish(args: argparse.Namespace, full: List[str], frames: Iterator[np.ndarray], first: np.ndarray,
             profile: Optional[str]) -> int:
    """Start ROS and publish until the end (see :func:`main`)."""
    import rclpy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from talk2dino_ros.ros.image_conversion import numpy_to_image
    from talk2dino_ros.ros.qos import latched_qos, output_qos
    from talk2dino_ros.ros.spin import spin_until_shutdown

    rclpy.init(args=full)
    node = rclpy.create_node('image_folder_publisher')
    if profile:
        node.get_logger().info(f'frames of {first.nbytes // 1024} KiB: Fast DDS shared-memory segment enlarged '
                               f'(profile {profile}; set FASTDDS_DEFAULT_PROFILES_FILE to use your own)')
    publisher = node.create_publisher(Image, args.topic, output_qos())
    if args.vocab:
        vocab_pub = node.create_publisher(String, '/t2d/vocab', latched_qos())
        vocab_pub.publish(String(data=args.vocab))
    state = {'frame': first, 'sent': 0, 'done': False}

    def tick():
        rgb = state['frame']
        if rgb is None:
            state['done'] = True
            return
        pixels = rgb if args.encoding == 'rgb8' else np.ascontiguousarray(rgb[:, :, ::-1])
        msg = numpy_to_image(pixels, args.encoding)
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = args.frame_id
        publisher.publish(msg)
        state['sent'] += 1
        if args.count and state['sent'] >= args.count:
            state['done'] = True
            return
        try:
            state['frame'] = next(frames)
        except StopIteration:
            state['frame'] = None
        except SourceError as exc:
            node.get_logger().error(str(exc))
            state['frame'] = None

    node.create_timer(1.0 / args.rate, tick)
    source = args.folder or args.video or f'synthetic {args.width}x{args.height}'
    node.get_logger().info(f'publishing {source} on {args.topic} at {args.rate:g} Hz (frame_id {args.frame_id})')
    spin_until_shutdown(node, done=lambda: state['done'])
    return 0


if __name__ == '__main__':
    sys.exit(main())
