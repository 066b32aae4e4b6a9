"""``make_demo_bag``: a small rosbag2 of a synthetic scene with ground-truth labels (no camera, no download).

  make_demo_bag --out demo_bag                      # 20 frames 120x160, sqlite3
  make_demo_bag --out demo_mcap --storage mcap --frames 50 --compressed

Every frame shows sky, grass, a car driving across and a sun; the car and the sun move, so frames
differ. Topics (header stamps = bag timestamps, frame_id ``camera``, 10 Hz from a fixed start time):

* ``/camera/image_raw``           sensor_msgs/Image rgb8
* ``/camera/image_raw/compressed`` sensor_msgs/CompressedImage png (only with ``--compressed``)
* ``/camera/labels``              sensor_msgs/Image mono8 ground truth: 0 = background (unused here),
  class ``i`` of :data:`CLASSES` = ``i + 1`` (the node's label convention)
* ``/camera/depth/image_raw``     sensor_msgs/Image 16UC1 depth registered to the colour image, millimetres
  (0 = no measurement: the sky and the sun), and ``/camera/depth/camera_info`` (sensor_msgs/CameraInfo);
  left out with ``--no-depth``. The scene is a flat meadow seen from :data:`CAMERA_HEIGHT` metres, the
  horizon on the image row where the optical axis meets it, and the car an upright board standing on the
  grass, so its distance and size are known (:func:`car_truth`).

The class list is also stored in the bag's metadata (``custom_data['talk2dino_ros.classes']``).
The bag is deterministic for a given ``--seed``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from talk2dino_ros.atomic_files import temporary_sibling
from talk2dino_ros.errors import Talk2DinoError

CLASSES: Tuple[str, ...] = ('sky', 'grass', 'car', 'sun')
IMAGE_TOPIC = '/camera/image_raw'
COMPRESSED_TOPIC = '/camera/image_raw/compressed'
LABEL_TOPIC = '/camera/labels'
DEPTH_TOPIC = '/camera/depth/image_raw'
DEPTH_INFO_TOPIC = '/camera/depth/camera_info'
#: metres between the camera and the grass
CAMERA_HEIGHT = 0.3
FRAME_ID = 'camera'
START_NS = 1_700_000_000 * 1_000_000_000
CLASSES_KEY = 'talk2dino_ros.classes'
_COLOURS = {'sky': (110, 160, 235), 'grass': (60, 150, 50), 'car': (200, 30, 30), 'sun': (250, 220, 60)}


def render_frame(index: int, height: int = 120, width: int = 160,
                 rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [H, W, 3], labels uint8 [H, W]) of frame ``index``; labels use ids 1..len(CLASSES)."""
    ids = {name: i + 1 for i, name in enumerate(CLASSES)}
    labels = np.empty((height, width), np.uint8)
    lay = _layout(height, width)
    horizon = lay['horizon']
    labels[:horizon] = ids['sky']
    labels[horizon:] = ids['grass']
    yy, xx = np.mgrid[0:height, 0:width]
    # sun: a disc moving slowly to the right in the sky
    r = max(2, height // 10)
    cx = int(width * 0.15 + index * width * 0.02) % width
    cy = max(r, horizon // 3)
    labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = ids['sun']
    # car: a box straddling the horizon, driving left to right and wrapping
    cw, ch = lay['car_w'], lay['car_h']
    x0 = int(index * width * 0.07) % width
    y0 = lay['car_top']
    labels[y0:y0 + ch, x0:min(width, x0 + cw)] = ids['car']
    palette = np.zeros((len(CLASSES) + 1, 3), np.uint8)
    for name, i in ids.items():
        palette[i] = _COLOURS[name]
    rgb = palette[labels].astype(np.int16)
    if rng is not None:  # mild texture so that images are not piecewise constant
        rgb += rng.integers(-12, 13, size=rgb.shape, dtype=np.int16)
    return np.clip(rgb, 0, 255).astype(np.uint8), labels


def _layout(height: int, width: int) -> Dict[str, int]:
    """Where render_frame puts the horizon and the car (pixels)."""
    horizon = max(1, int(height * 0.55))
    cw, ch = max(4, width // 4), max(3, height // 6)
    return {'horizon': horizon, 'car_w': cw, 'car_h': ch, 'car_top': max(0, horizon - ch // 2)}


def camera_intrinsics(height: int, width: int) -> Tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of the demo camera: about 53 degrees across, the optical axis through the horizon."""
    f = float(width)
    return f, f, (width - 1) / 2.0, _layout(height, width)['horizon'] - 0.5


def car_truth(height: int, width: int) -> Tuple[float, float, float]:
    """(distance, width, height) of the car in metres: it stands on the grass where its bottom row meets it."""
    fx, fy, _, cy = camera_intrinsics(height, width)
    lay = _layout(height, width)
    bottom = min(height, lay['car_top'] + lay['car_h'])  # the edge below the car's last row
    z = CAMERA_HEIGHT * fy / (bottom - cy)
    return z, lay['car_w'] * z / fx, (bottom - lay['car_top']) * z / fy


def render_depth(labels: np.ndarray) -> np.ndarray:
    """float32 metres [H, W] of a frame's labels (NaN = no measurement): the grass is the ground plane seen
    from CAMERA_HEIGHT, the car a board at :func:`car_truth`'s distance, sky and sun out of range."""
    height, width = labels.shape
    _, fy, _, cy = camera_intrinsics(height, width)
    depth = np.full(labels.shape, np.nan, np.float32)
    rows = np.arange(height, dtype=np.float64)[:, None] - cy
    with np.errstate(divide='ignore'):
        ground = np.where(rows > 0, CAMERA_HEIGHT * fy / np.where(rows > 0, rows, 1.0), np.nan)
    grass = labels == CLASSES.index('grass') + 1
    depth[grass] = np.broadcast_to(ground, labels.shape)[grass]
    depth[labels == CLASSES.index('car') + 1] = car_truth(height, width)[0]
    return depth


def write_demo_bag(out: Path, frames: int = 20, height: int = 120, width: int = 160, storage: str = 'sqlite3',
                   compressed: bool = False, rate: float = 10.0, seed: int = 0, depth: bool = True) -> Dict[str, object]:
    """Write the demo bag; returns a summary (path, topics, classes, frames)."""
    from talk2dino_ros.bags import bag_io
    from talk2dino_ros.ros.image_conversion import encode_compressed

    if frames < 1 or height < 1 or width < 1:
        raise Talk2DinoError(f'frames, height and width must be >= 1, got {frames}, {height}, {width}')
    if rate <= 0:
        raise Talk2DinoError(f'rate must be > 0 Hz, got {rate}')
    out = Path(out).expanduser()
    if out.exists():
        raise Talk2DinoError(f'{out} exists already; remove it or choose another --out')
    rng = np.random.default_rng(seed)
    store = bag_io.make_typestore()
    # built in a hidden sibling folder (under its final name: rosbag2 names its files after the folder)
    # and moved to --out when complete, so an interrupted run leaves no half bag that a rerun would refuse
    work_root = temporary_sibling(out)
    work_root.mkdir(parents=True)
    work = work_root / out.name
    try:
        writer = bag_io.open_writer(work, storage)
    except BaseException:
        shutil.rmtree(work_root, ignore_errors=True)
        raise
    try:
        writer.set_custom_data(CLASSES_KEY, ','.join(CLASSES))
        image_conn = bag_io.add_output_connection(writer, IMAGE_TOPIC, bag_io.IMAGE_TYPE)
        label_conn = bag_io.add_output_connection(writer, LABEL_TOPIC, bag_io.IMAGE_TYPE)
        comp_conn = (bag_io.add_output_connection(writer, COMPRESSED_TOPIC, bag_io.COMPRESSED_TYPE)
                     if compressed else None)
        depth_conn = bag_io.add_output_connection(writer, DEPTH_TOPIC, bag_io.IMAGE_TYPE) if depth else None
        info_conn = bag_io.add_output_connection(writer, DEPTH_INFO_TOPIC, bag_io.CAMERA_INFO_TYPE) if depth else None
        Compressed = store.types[bag_io.COMPRESSED_TYPE]
        period = int(round(1e9 / rate))
        for i in range(frames):
            t = START_NS + i * period
            header = bag_io.header_msg(t // 1_000_000_000, t % 1_000_000_000, FRAME_ID)
            rgb, labels = render_frame(i, height, width, rng)
            writer.write(image_conn, t, bag_io.serialize(bag_io.image_msg(header, rgb, 'rgb8')))
            if comp_conn is not None:
                # encode with the node's encoder, then move the bytes into a rosbags message
                enc = encode_compressed(rgb, 'png', msg_factory=_Plain)
                msg = Compressed(header=header, format=enc.format,
                                 data=np.frombuffer(bytes(enc.data), np.uint8))
                writer.write(comp_conn, t, bag_io.serialize(msg))
            writer.write(label_conn, t, bag_io.serialize(bag_io.image_msg(header, labels, 'mono8')))
            if depth_conn is not None:
                from talk2dino_ros.spatial.depth import metres_to_depth

                mm = metres_to_depth(render_depth(labels), '16UC1')
                writer.write(depth_conn, t, bag_io.serialize(bag_io.image_msg(header, mm, '16UC1')))
                writer.write(info_conn, t, bag_io.serialize(bag_io.camera_info_msg(
                    header, *camera_intrinsics(height, width), width, height)))
    except BaseException:
        try:
            writer.close()
        finally:
            shutil.rmtree(work_root, ignore_errors=True)
        raise
    writer.close()
    os.replace(work, out)
    work_root.rmdir()
    topics = ([IMAGE_TOPIC, LABEL_TOPIC] + ([COMPRESSED_TOPIC] if compressed else [])
              + ([DEPTH_TOPIC, DEPTH_INFO_TOPIC] if depth else []))
    return {'path': str(out), 'storage': storage, 'frames': frames, 'size': [height, width],
            'topics': topics, 'classes': list(CLASSES)}


class _Plain:
    """A bare attribute holder standing in for a message class (for encode_compressed)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='make_demo_bag', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, type=Path, help='bag folder to create (must not exist)')
    p.add_argument('--storage', choices=('sqlite3', 'mcap'), default='sqlite3', help='rosbag2 storage (default sqlite3)')
    p.add_argument('--frames', type=int, default=20, help='number of frames (default 20)')
    p.add_argument('--height', type=int, default=120, help='frame height in pixels (default 120)')
    p.add_argument('--width', type=int, default=160, help='frame width in pixels (default 160)')
    p.add_argument('--rate', type=float, default=10.0, help='frame rate in Hz (default 10)')
    p.add_argument('--compressed', action='store_true', help=f'also write {COMPRESSED_TOPIC} (png)')
    p.add_argument('--no-depth', dest='depth', action='store_false',
                   help=f'leave out {DEPTH_TOPIC} and {DEPTH_INFO_TOPIC}')
    p.add_argument('--seed', type=int, default=0, help='random seed of the scenes\' texture; same seed, same bag (default 0)')
    return p


def _run(argv: Optional[Sequence[str]]) -> int:
    args = build_parser().parse_args(argv)
    info = write_demo_bag(args.out, args.frames, args.height, args.width, args.storage, args.compressed,
                          args.rate, args.seed, args.depth)
    print(f"wrote {info['path']} ({info['storage']}, {info['frames']} frames {args.height}x{args.width}); "
          f"topics: {', '.join(info['topics'])}; classes: {','.join(CLASSES)}")
    print(f"next: segment_bag --bag {info['path']} --image-topic {IMAGE_TOPIC} --out {info['path']}_seg "
          f"--vocab {','.join(CLASSES)} --weights-dir DIR"
          + (f" --depth-topic {DEPTH_TOPIC} --camera-info-topic {DEPTH_INFO_TOPIC}" if args.depth else ''))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    from talk2dino_ros.cli.common import run_cli
    return run_cli(_run, argv)


if __name__ == '__main__':
    sys.exit(main())
