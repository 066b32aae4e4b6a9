"""``segment_bag``: replay a rosbag2 through the segmenter and write a new bag with the results.

  segment_bag --bag IN --image-topic /camera/image_raw --out OUT --vocab "road,grass,car" [--overlay]
  segment_bag ... --resume          # continue an interrupted run (see below)

Reads sqlite3 and MCAP bags (a rosbag2 folder, or one .db3/.mcap file) with the pure-Python ``rosbags``
library, so no ROS install is needed. Every message on the image topic (``sensor_msgs/Image`` in any
encoding the node accepts, or ``sensor_msgs/CompressedImage``) is segmented; the output bag holds every
input topic unchanged plus, under ``--namespace`` (default ``/talk2dino``, the live node's topics):

* ``<ns>/labels``            mono8 (mono16 above 255 classes): 0 = background, class i = i + 1
* ``<ns>/class_info``        talk2dino_ros/ClassInfo legend (once, transient-local QoS)
* ``<ns>/label_info``        vision_msgs/LabelInfo with the same ids (once, transient-local QoS)
* ``<ns>/confidence``        32FC1 max class score, and ``<ns>/confidence_mono8``: the same clipped to
  0..1 and scaled to 0..255 (what Nav2's semantic segmentation layer reads); ``--confidence`` picks
* ``<ns>/overlay``           rgb8 colour overlay with a legend (``--overlay``)
* with ``--depth-topic`` (a depth image registered to the camera, 16UC1 millimetres or 32FC1 metres) and
  its ``--camera-info-topic``: ``<ns>/points`` (sensor_msgs/PointCloud2: x y z, label, confidence, rgb with
  ``--rgb``), ``<ns>/detections`` (vision_msgs/Detection2DArray) and ``<ns>/detections_3d``
  (vision_msgs/Detection3DArray), the node's 3D outputs, in the depth image's frame. A camera frame is paired
  with the depth frame of the nearest header stamp within ``--depth-sync-tolerance``; frames without one get
  2D detections only (counted in the summary). ``--detections`` writes the 2D detections without depth.

Each output has the exact header of its camera image and the image's bag timestamp. The model defaults
are the node's (its parameter table: mode, background threshold, background cleaning); the topics and
types, as the node publishes them, are listed at the end of ``--help``.

Resumable: the bag is built in ``OUT.partial/`` and renamed to ``OUT`` only when complete; finished
frames are kept there, so ``--resume`` after a crash or Ctrl-C segments only the frames not yet done
(details in ``talk2dino_ros/bags/resume.py``). ``OUT`` is never overwritten.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from talk2dino_ros.bags import bag_io
from talk2dino_ros.bags.resume import PartialOutput
from talk2dino_ros.contract import outputs as contract
from talk2dino_ros.contract.parameters import node_defaults
from talk2dino_ros.errors import Talk2DinoError

CONFIDENCE_CHOICES = ('both', 'float', 'mono8', 'none')
#: record key -> (topic suffix, message type): the per-frame outputs of the contract that segment_bag writes
OUTPUTS = {s.name: (s.topic, s.msg_type) for s in contract.bag_outputs() if s.cadence == 'per_frame'}
#: the latched legends it writes once, before the first frame's outputs
LEGENDS = {s.name: (s.topic, s.msg_type) for s in contract.bag_outputs() if s.cadence == 'latched'}
#: the node's model defaults (the parameter table)
NODE_DEFAULTS = node_defaults('mode', 'background_threshold', 'bg_clean')
#: metadata.yaml custom_data key of an output bag made from random weights
RANDOM_WEIGHTS_KEY = 'talk2dino_ros.random_weights'
#: marks a skipped frame whose message did not deserialise (kept in the resume records)
BAD_MESSAGE = 'bad_message'


def _model_fingerprint(segmenter: Any) -> Dict[str, Any]:
    """What decides a frame's outputs, for refusing a resume with another model."""
    config = getattr(segmenter, 'config', None)
    if config is None:
        return {'segmenter': type(segmenter).__name__}
    weights = {}
    for role, path in dict(getattr(config, 'weights', {}) or {}).items():
        try:
            st = os.stat(path)
            weights[role] = [str(path), st.st_size, int(st.st_mtime)]
        except OSError:
            weights[role] = [str(path)]
    keys = ('method', 'variant', 'mode', 'resolution', 'window', 'stride', 'max_long_side', 'fp16')
    out = {k: getattr(config, k, None) for k in keys}
    out['options'] = json.loads(json.dumps(dataclasses.asdict(config.options), default=str))
    out['weights'] = weights
    # an exported backend or reduced precision changes the outputs slightly (recorded only when chosen, so
    # that runs started before these settings existed still resume)
    for key, default in (('backend', 'torch'), ('precision', 'fp32')):
        if getattr(config, key, default) != default:
            out[key] = getattr(config, key)
    return out


@dataclasses.dataclass
class DepthInput:
    """The depth side of segment_bag: which topics, how frames are paired, what the 3D outputs look like."""

    topic: str
    info_topic: str
    tolerance_ns: int
    options: Any  # SpatialOptions


def _spatial_items(header: Any, rgb: np.ndarray, labels: np.ndarray, confidence: np.ndarray,
                   names: Sequence[str], depth: Optional[Tuple[Any, Any]], options: Any) -> Dict[str, bytes]:
    """Serialized points / detections / detections_3d of a frame (``depth``: (Image, CameraInfo) or None)."""
    from talk2dino_ros.ros.image_conversion import image_to_numpy
    from talk2dino_ros.spatial import messages
    from talk2dino_ros.spatial.depth import depth_to_metres
    from talk2dino_ros.spatial.intrinsics import intrinsics_from_camera_info
    from talk2dino_ros.spatial.scene import build_spatial

    kit = bag_io.RosbagsKit()
    if depth is None:
        frame = build_spatial(labels, confidence, names, options=options, cloud=False)
        return {'detections': bag_io.serialize(messages.detection_2d_array_msg(kit, header, frame.detections))}
    image, info = depth
    metres = depth_to_metres(image_to_numpy(image), str(image.encoding), options.depth_max_m)
    frame = build_spatial(labels, confidence, names, metres, intrinsics_from_camera_info(info), options, rgb=rgb)
    # the cloud and the 3D boxes carry the depth image's header: its frame and its stamp
    depth_header = image.header
    return {'points': bag_io.serialize(messages.point_cloud_msg(kit, depth_header, frame.cloud)),
            'detections': bag_io.serialize(messages.detection_2d_array_msg(kit, header, frame.detections)),
            'detections_3d': bag_io.serialize(messages.detection_3d_array_msg(kit, depth_header, frame.detections))}


def _frame_outputs(raw: bytes, msgtype: str, segmenter: Any, vocab: Any, names: Sequence[str],
                   colors: np.ndarray, confidence: str, overlay: bool, spatial: Optional[Any] = None,
                   depth: Optional[Tuple[Any, Any]] = None, banner: str = '') -> Dict[str, bytes]:
    """Segment one serialized camera image; returns record key -> serialized output message.

    ``spatial``: SpatialOptions when the 3D outputs (or 2D detections) are written; ``depth`` the frame's
    (depth Image, CameraInfo) pair, or None. ``banner``: a warning over the overlay (random weights).
    """
    from talk2dino_ros.outputs import frame
    from talk2dino_ros.spatial.depth import DepthError

    header, rgb = bag_io.decode_image(raw, msgtype)
    result = segmenter.segment(rgb, vocabulary=vocab)
    wanted = {frame.LABELS} | {'both': {frame.CONFIDENCE, frame.CONFIDENCE_MONO8}, 'float': {frame.CONFIDENCE},
                               'mono8': {frame.CONFIDENCE_MONO8}, 'none': set()}[confidence]
    if overlay:
        wanted.add(frame.OVERLAY)
    try:
        images = frame.build_frame_outputs(result, wanted, rgb=rgb, colors=colors, names=names, banner=banner)
    except ValueError as exc:  # the engine's label map does not fit the frame
        raise Talk2DinoError(str(exc)) from None
    items = {'labels': bag_io.serialize(bag_io.image_msg(header, images.labels, images.label_encoding))}
    if images.confidence is not None:
        items['confidence'] = bag_io.serialize(bag_io.image_msg(header, images.confidence, '32FC1'))
    if images.confidence_mono8 is not None:
        items['confidence_mono8'] = bag_io.serialize(bag_io.image_msg(header, images.confidence_mono8, 'mono8'))
    if images.overlay is not None:
        items['overlay'] = bag_io.serialize(bag_io.image_msg(header, images.overlay, 'rgb8'))
    if spatial is not None:
        try:
            items.update(_spatial_items(header, rgb, images.labels, result.confidence(), names, depth, spatial))
        except (DepthError, ValueError) as exc:  # an unusable depth image or CameraInfo for this frame
            raise Talk2DinoError(f'depth: {exc}') from None
    return items


class _DepthStream:
    """The depth frames and CameraInfos of a bag, read alongside the images by header stamp."""

    def __init__(self, reader: Any, depth: DepthInput) -> None:
        from talk2dino_ros.spatial.pairing import StampPairer

        conns = [c for c in reader.connections if c.topic == depth.topic]
        info_conns = [c for c in reader.connections if c.topic == depth.info_topic]
        for topic, found, want in ((depth.topic, conns, bag_io.IMAGE_TYPE),
                                   (depth.info_topic, info_conns, bag_io.CAMERA_INFO_TYPE)):
            if not found:
                raise bag_io.BagError(f'topic {topic!r} is not in bag {reader.path}; topics present: '
                                      f'{bag_io.describe_topics(reader)}')
            bad = sorted({c.msgtype for c in found if c.msgtype != want})
            if bad:
                raise bag_io.BagError(f'topic {topic!r} has type {", ".join(bad)}; expected {want}')
        #: messages of these topics that were not valid CDR (skipped), not yet reported by new_bad()
        self._bad: List[Dict[str, Any]] = []
        # CameraInfo messages are small: all of them, by stamp (a calibration may change mid-bag)
        self._infos = sorted(((bag_io.stamp_ns(m.header), m) for m in self._readable(reader, info_conns)),
                             key=lambda item: item[0])
        self._images = self._readable(reader, conns)
        self._pairer = StampPairer(depth.tolerance_ns, capacity=16)
        self._ahead: Optional[Any] = None
        self.tolerance_ns = depth.tolerance_ns

    def _readable(self, reader: Any, conns: List[Any]) -> Iterator[Any]:
        """The messages of one topic that deserialise; the others are noted with their index and reason."""
        for index, (conn, timestamp, raw) in enumerate(reader.messages(conns)):
            try:
                yield bag_io.deserialize(raw, conn.msgtype)
            except bag_io.BadMessageError as exc:
                self._bad.append({'topic': conn.topic, 'index': index, 'timestamp': timestamp, 'error': str(exc)})

    def new_bad(self) -> List[Dict[str, Any]]:
        """The skipped messages found since the last call."""
        found, self._bad = self._bad, []
        return found

    def take(self, stamp: int) -> Optional[Tuple[Any, Any]]:
        """(depth Image, CameraInfo) for a camera frame stamped ``stamp`` ns, or None."""
        while True:  # read depth frames up to the end of this frame's window
            if self._ahead is None:
                self._ahead = next(self._images, None)
                if self._ahead is None:
                    break
            t = bag_io.stamp_ns(self._ahead.header)
            if t > stamp + self.tolerance_ns:
                break
            self._pairer.add(t, self._ahead)
            self._ahead = None
        image = self._pairer.take(stamp)
        if image is None or not self._infos:
            return None
        t = bag_io.stamp_ns(image.header)
        info = min(self._infos, key=lambda item: abs(item[0] - t))[1]
        return image, info

    def counters(self) -> Dict[str, int]:
        return self._pairer.counters()


def segment_bag(segmenter: Any, bag: os.PathLike | str, out: os.PathLike | str, image_topic: str,
                vocabulary: Sequence[str], *, namespace: str = '/talk2dino', overlay: bool = False,
                confidence: str = 'both', storage: Optional[str] = None, resume: bool = False,
                skip_bad: bool = False, progress: bool = True, depth: Optional[DepthInput] = None,
                detections: bool = False, spatial: Optional[Any] = None) -> Dict[str, Any]:
    """Segment every image of ``image_topic`` in ``bag`` and write ``out`` (see the module docstring).

    Returns a summary: output path, storage, frames, segmented / resumed / skipped counts, topics, timings.
    Raises :class:`~talk2dino_ros.bags.bag_io.BagError` for a missing topic (listing the bag's topics), an
    unreadable bag or an image that cannot be converted (unless ``skip_bad``). A message that is not
    valid CDR is always skipped, logged on stderr with its frame index and reason, and counted in
    ``bad_messages``. ``depth``: the 3D outputs (see the module docstring); ``detections``: 2D detections
    without depth; ``spatial``: SpatialOptions of both (default: the defaults, or ``depth.options``).
    """
    from talk2dino_ros.outputs.banner import RANDOM_WEIGHTS_BANNER
    from talk2dino_ros.outputs.colors import class_colors

    random_weights = bool(getattr(segmenter, 'random_weights', False))
    banner = RANDOM_WEIGHTS_BANNER if random_weights else ''
    if confidence not in CONFIDENCE_CHOICES:
        raise bag_io.BagError(f'confidence must be one of {", ".join(CONFIDENCE_CHOICES)}, got {confidence!r}')
    namespace = '/' + namespace.strip('/') if namespace.strip('/') else ''
    started = time.perf_counter()
    reader = bag_io.open_bag(bag)
    partial = None
    writer = None
    try:
        image_conns = bag_io.image_connections(reader, image_topic)
        storage = storage or bag_io.storage_of(reader)
        keys = ['labels'] + {'both': ['confidence', 'confidence_mono8'], 'float': ['confidence'],
                             'mono8': ['confidence_mono8'], 'none': []}[confidence] + (['overlay'] if overlay else [])
        if depth is not None:
            spatial = depth.options
            keys += ['points', 'detections', 'detections_3d']
            depth_stream = _DepthStream(reader, depth)
        else:
            depth_stream = None
            if detections:
                keys.append('detections')
        if (depth is not None or detections) and spatial is None:
            from talk2dino_ros.spatial.scene import SpatialOptions

            spatial = SpatialOptions()
        if depth is None and not detections:
            spatial = None
        topics = {k: f'{namespace}/{OUTPUTS[k][0]}' for k in keys}
        topics.update({k: f'{namespace}/{topic}' for k, (topic, _) in LEGENDS.items()})
        clash = sorted(set(topics.values()) & set(reader.topics))
        if clash:
            raise bag_io.BagError(f'bag {reader.path} already has {", ".join(clash)}; pick another --namespace')

        vocab = segmenter.set_vocabulary(list(vocabulary))
        names = tuple(vocab.names)
        threshold = float(segmenter.options.background_threshold) if vocab.background else 0.0
        colors = class_colors(names)
        settings = {
            'bag': str(Path(reader.path).resolve()), 'bag_messages': reader.message_count,
            'bag_start': reader.start_time, 'bag_end': reader.end_time, 'image_topic': image_topic,
            'vocabulary': list(names), 'namespace': namespace, 'confidence': confidence, 'overlay': overlay,
            'storage': storage, 'skip_bad': skip_bad, 'model': _model_fingerprint(segmenter),
            'random_weights': random_weights,
            'depth': None if depth is None else {'topic': depth.topic, 'info_topic': depth.info_topic,
                                                 'tolerance_ns': depth.tolerance_ns},
            'spatial': None if spatial is None else dataclasses.asdict(spatial),
        }
        partial = PartialOutput(Path(out))
        already = partial.start(settings, resume)
        writer = bag_io.open_writer(partial.bag, storage)
        if random_weights:  # the bag's metadata.yaml says so too, not only its overlays
            writer.set_custom_data(RANDOM_WEIGHTS_KEY, 'true')
        copies = {}
        not_copied = []
        for conn in reader.connections:
            copied = bag_io.copy_connection(writer, conn)
            copies[conn.id] = copied
            if copied is None:
                not_copied.append(f'{conn.topic} ({conn.msgtype})')
        out_conns = {k: bag_io.add_output_connection(writer, topics[k], OUTPUTS[k][1]) for k in keys}
        info_conn = bag_io.add_output_connection(writer, topics['class_info'], LEGENDS['class_info'][1], latched=True)
        label_info_conn = bag_io.add_output_connection(writer, topics['label_info'], LEGENDS['label_info'][1],
                                                       latched=True)

        total = sum(c.msgcount for c in image_conns)
        image_ids = {c.id for c in image_conns}
        counts = {'frames': 0, 'segmented': 0, 'resumed': 0, 'skipped': 0, 'bad_messages': 0}
        skipped: List[Dict[str, Any]] = []
        skipped_messages: List[Dict[str, Any]] = []  # depth and CameraInfo messages that are not valid
        segment_s = 0.0
        bar = _progress(total, progress, already)
        legend_written = False
        for conn, timestamp, raw in reader.messages():
            target = copies.get(conn.id)
            if target is not None:
                writer.write(target, timestamp, raw)
            if conn.id not in image_ids:
                continue
            frame = counts['frames']
            counts['frames'] += 1
            header = None
            if not legend_written:
                try:
                    header = bag_io.deserialize(raw, conn.msgtype).header
                except bag_io.BadMessageError:
                    pass  # the legend goes with the first frame that reads
            if header is not None:
                writer.write(info_conn, timestamp, bag_io.serialize(bag_io.class_info_msg(
                    header, vocab.version, getattr(getattr(segmenter, 'config', None), 'method', 'talk2dino'), names, colors,
                    threshold)))
                writer.write(label_info_conn, timestamp, bag_io.serialize(
                    bag_io.label_info_msg(header, names, threshold)))
                legend_written = True
            pair = None
            if depth_stream is not None:  # read along even for resumed frames, so pairing stays in step
                try:
                    pair = depth_stream.take(bag_io.stamp_ns(bag_io.deserialize(raw, conn.msgtype).header))
                except bag_io.BadMessageError:
                    pass  # the frame itself is skipped below, with the reason
                for entry in depth_stream.new_bad():
                    counts['bad_messages'] += 1
                    skipped_messages.append(entry)
                    _log(bar, f"skipped message {entry['index']} of {entry['topic']} (bag time "
                              f"{entry['timestamp']} ns): {entry['error']}")
            items = partial.done(frame, timestamp)
            if items is not None:
                counts['resumed'] += 1
            else:
                t0 = time.perf_counter()
                try:
                    items = _frame_outputs(raw, conn.msgtype, segmenter, vocab, names, colors, confidence, overlay,
                                           spatial, pair, banner)
                except bag_io.BadMessageError as exc:
                    # a corrupt message never stops the run; skip_bad only decides the exit code (see _run)
                    items = {'skipped': str(exc).encode(), BAD_MESSAGE: b''}
                except Talk2DinoError as exc:
                    where = f'frame {frame} of {image_topic} (bag time {timestamp} ns)'
                    if not skip_bad:
                        raise bag_io.BagError(f'{where}: {exc} (use --skip-bad to skip such frames)') from None
                    items = {'skipped': str(exc).encode()}
                segment_s += time.perf_counter() - t0
                partial.append(frame, timestamp, items)
                counts['segmented'] += 'skipped' not in items
            if 'skipped' in items:
                counts['skipped'] += 1
                counts['bad_messages'] += BAD_MESSAGE in items
                entry = {'frame': frame, 'timestamp': timestamp, 'error': items['skipped'].decode(),
                         'bad_message': BAD_MESSAGE in items}
                skipped.append(entry)
                _log(bar, f"skipped frame {frame} of {image_topic} (bag time {timestamp} ns): {entry['error']}")
            for key, data in items.items():
                if key in out_conns:
                    writer.write(out_conns[key], timestamp, data)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        writer.close()
        writer = None
        final = partial.finish()
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass
        if partial is not None:
            partial.close()
        raise
    finally:
        reader.close()
    wall = time.perf_counter() - started
    return {
        'random_weights': random_weights,
        'out': str(final), 'storage': storage, 'image_topic': image_topic, 'vocabulary': list(names),
        **counts, 'skipped_frames': skipped, 'skipped_messages': skipped_messages, 'topics': topics, 'not_copied': not_copied,
        'wall_s': wall, 'segment_s': segment_s,
        'depth': depth_stream.counters() if depth_stream is not None else None,
        'segmented_fps': counts['segmented'] / segment_s if segment_s > 0 else None,
    }


def _log(bar: Any, line: str) -> None:
    """One line on stderr, above the progress bar when there is one."""
    if bar is not None:
        bar.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)


def _progress(total: int, enabled: bool, already: int):
    if not enabled:
        return None
    from tqdm import tqdm

    desc = 'segment_bag' + (f' (resuming, {already} done)' if already else '')
    return tqdm(total=total, desc=desc, unit='frame', file=sys.stderr, dynamic_ncols=True)


# ------------------------------------------------------------------------------------------ CLI
def _outputs_epilog() -> str:
    """Every topic segment_bag can write, from the output table (what the node publishes under the same names)."""
    return 'outputs (under --namespace):\n' + '\n'.join(
        '  ' + contract.summary_line(spec, '<ns>') for spec in contract.bag_outputs())


def build_parser() -> argparse.ArgumentParser:
    from talk2dino_ros.cli.common import add_inference_arguments, add_model_arguments
    from talk2dino_ros.cli.spatial_args import add_spatial_arguments
    from talk2dino_ros.spatial.pairing import DEFAULT_TOLERANCE_S

    p = argparse.ArgumentParser(prog='segment_bag', description=__doc__, epilog=_outputs_epilog(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--bag', required=True, type=Path, help='input rosbag2 (folder, .db3 or .mcap)')
    p.add_argument('--image-topic', required=True, help='sensor_msgs/Image or CompressedImage topic to segment')
    p.add_argument('--out', required=True, type=Path, help='output bag folder (must not exist)')
    p.add_argument('--vocab', required=True, help='comma-separated class names, e.g. "road,grass,car"')
    p.add_argument('--namespace', default='/talk2dino', help='prefix of the output topics (default /talk2dino)')
    p.add_argument('--overlay', action='store_true', help='also write <ns>/overlay (rgb8)')
    p.add_argument('--confidence', choices=CONFIDENCE_CHOICES, default='both',
                   help='confidence maps to write: 32FC1 (float), mono8 0..255, both (default) or none')
    p.add_argument('--storage', choices=bag_io.STORAGES, default=None,
                   help='output storage (default: the input bag\'s)')
    p.add_argument('--depth-topic', default=None,
                   help='depth image registered to the camera (16UC1 mm or 32FC1 m): write points, detections '
                        'and detections_3d')
    p.add_argument('--camera-info-topic', default=None,
                   help='CameraInfo of the depth images (default: camera_info next to --depth-topic)')
    p.add_argument('--depth-sync-tolerance', type=float, default=DEFAULT_TOLERANCE_S, metavar='S',
                   help='largest stamp difference of a camera frame and its depth frame, seconds (default 1/30)')
    p.add_argument('--detections', action='store_true',
                   help='write <ns>/detections (2D) also without depth')
    p.add_argument('--resume', action='store_true', help='continue an interrupted run (OUT.partial)')
    p.add_argument('--skip-bad', action='store_true',
                   help='skip frames that cannot be decoded (listed in the summary) instead of stopping; a message '
                        'that is not valid CDR is always skipped and listed, and without this flag makes the '
                        'exit code 1')
    p.add_argument('--json', type=Path, default=None, metavar='FILE', help='write the summary as JSON')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    add_spatial_arguments(p)
    add_model_arguments(p)
    add_inference_arguments(p)
    return p


def depth_input(args: argparse.Namespace) -> Optional[DepthInput]:
    """The DepthInput the flags describe (None without --depth-topic)."""
    from talk2dino_ros.cli.spatial_args import spatial_options

    options = spatial_options(args)
    if args.depth_topic is None:
        if args.camera_info_topic is not None:
            raise Talk2DinoError('--camera-info-topic needs --depth-topic')
        return None
    if not args.depth_sync_tolerance >= 0:
        raise Talk2DinoError(f'--depth-sync-tolerance must be >= 0 s, got {args.depth_sync_tolerance}')
    info = args.camera_info_topic or args.depth_topic.rstrip('/').rsplit('/', 1)[0] + '/camera_info'
    return DepthInput(args.depth_topic, info, int(round(args.depth_sync_tolerance * 1e9)), options)


def _run(argv: Optional[Sequence[str]]) -> int:
    from talk2dino_ros.cli.common import build_segmenter, parse_vocab_arg

    from talk2dino_ros.cli.spatial_args import spatial_options

    args = build_parser().parse_args(argv)
    names = parse_vocab_arg(args.vocab)
    depth = depth_input(args)
    spatial = spatial_options(args)
    # check the input before loading weights: a wrong path or topic fails in a second
    reader = bag_io.open_bag(args.bag)
    try:
        bag_io.image_connections(reader, args.image_topic)
        if depth is not None:
            _DepthStream(reader, depth)  # the topics exist and have the right types
    finally:
        reader.close()
    segmenter = build_segmenter(args, **NODE_DEFAULTS)
    summary = segment_bag(segmenter, args.bag, args.out, args.image_topic, names, namespace=args.namespace,
                          overlay=args.overlay, confidence=args.confidence, storage=args.storage,
                          resume=args.resume, skip_bad=args.skip_bad, progress=not args.quiet, depth=depth,
                          detections=args.detections, spatial=spatial)
    fps = summary['segmented_fps']
    if summary['random_weights']:
        from talk2dino_ros.cli.reminders import RANDOM_WEIGHTS_HEADER

        print(RANDOM_WEIGHTS_HEADER)
    print(f"wrote {summary['out']} ({summary['storage']}): {summary['frames']} frames, "
          f"{summary['segmented']} segmented, {summary['resumed']} resumed, {summary['skipped']} skipped"
          + (f', {fps:.2f} frames/s' if fps else '') + f"; topics: {', '.join(summary['topics'].values())}")
    if summary['depth'] is not None:
        d = summary['depth']
        print(f"depth: {d['depth_paired']} frames paired, {d['colour_unpaired']} without depth, "
              f"{d['depth_unpaired']} depth frames unused")
    if summary['not_copied']:
        print('warning: not copied (no message definition in the bag): ' + ', '.join(summary['not_copied']),
              file=sys.stderr)
    if args.json is not None:
        from talk2dino_ros.atomic_files import atomic_write_text

        atomic_write_text(args.json, json.dumps(summary, indent=1))
    bad = summary['bad_messages'] and not args.skip_bad
    if bad:
        print(f"error: {summary['bad_messages']} message(s) in {args.bag} are not valid messages and were "
              'skipped (listed above; the output holds every other frame); --skip-bad accepts that',
              file=sys.stderr)
    from talk2dino_ros.cli.reminders import remind_random_weights

    remind_random_weights(args, random=summary['random_weights'])  # last, the last line a user reads
    return 1 if bad else 0


def main(argv: Optional[List[str]] = None) -> int:
    from talk2dino_ros.cli.common import run_cli
    return run_cli(_run, argv)


if __name__ == '__main__':
    sys.exit(main())
