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

Each output has the exact header of its camera image and the image's bag timestamp. The model defaults
are the node's (mode ``whole``, background threshold 0.55, background cleaning on).

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
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from talk2dino_ros.bags import bag_io
from talk2dino_ros.bags.resume import PartialOutput
from talk2dino_ros.errors import Talk2DinoError

CONFIDENCE_CHOICES = ('both', 'float', 'mono8', 'none')
#: record key -> (topic suffix, message type)
OUTPUTS = {
    'labels': ('labels', bag_io.IMAGE_TYPE),
    'confidence': ('confidence', bag_io.IMAGE_TYPE),
    'confidence_mono8': ('confidence_mono8', bag_io.IMAGE_TYPE),
    'overlay': ('overlay', bag_io.IMAGE_TYPE),
}
#: the node's model defaults (talk2dino_ros/ros/parameters.py)
NODE_DEFAULTS = dict(mode='whole', background_threshold=0.55, bg_clean=True)


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


def _frame_outputs(raw: bytes, msgtype: str, segmenter: Any, vocab: Any, names: Sequence[str],
                   colors: np.ndarray, confidence: str, overlay: bool) -> Dict[str, bytes]:
    """Segment one serialized camera image; returns record key -> serialized output message."""
    from talk2dino_ros.outputs import frame

    header, rgb = bag_io.decode_image(raw, msgtype)
    result = segmenter.segment(rgb, vocabulary=vocab)
    wanted = {frame.LABELS} | {'both': {frame.CONFIDENCE, frame.CONFIDENCE_MONO8}, 'float': {frame.CONFIDENCE},
                               'mono8': {frame.CONFIDENCE_MONO8}, 'none': set()}[confidence]
    if overlay:
        wanted.add(frame.OVERLAY)
    try:
        images = frame.build_frame_outputs(result, wanted, rgb=rgb, colors=colors, names=names)
    except ValueError as exc:  # the engine's label map does not fit the frame
        raise Talk2DinoError(str(exc)) from None
    items = {'labels': bag_io.serialize(bag_io.image_msg(header, images.labels, images.label_encoding))}
    if images.confidence is not None:
        items['confidence'] = bag_io.serialize(bag_io.image_msg(header, images.confidence, '32FC1'))
    if images.confidence_mono8 is not None:
        items['confidence_mono8'] = bag_io.serialize(bag_io.image_msg(header, images.confidence_mono8, 'mono8'))
    if images.overlay is not None:
        items['overlay'] = bag_io.serialize(bag_io.image_msg(header, images.overlay, 'rgb8'))
    return items


def segment_bag(segmenter: Any, bag: os.PathLike | str, out: os.PathLike | str, image_topic: str,
                vocabulary: Sequence[str], *, namespace: str = '/talk2dino', overlay: bool = False,
                confidence: str = 'both', storage: Optional[str] = None, resume: bool = False,
                skip_bad: bool = False, progress: bool = True) -> Dict[str, Any]:
    """Segment every image of ``image_topic`` in ``bag`` and write ``out`` (see the module docstring).

    Returns a summary: output path, storage, frames, segmented / resumed / skipped counts, topics, timings.
    Raises :class:`~talk2dino_ros.bags.bag_io.BagError` for a missing topic (listing the bag's topics), an
    unreadable bag or an image that cannot be converted (unless ``skip_bad``).
    """
    from talk2dino_ros.outputs.colors import class_colors

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
        topics = {k: f'{namespace}/{OUTPUTS[k][0]}' for k in keys}
        topics['class_info'] = f'{namespace}/class_info'
        topics['label_info'] = f'{namespace}/label_info'
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
        }
        partial = PartialOutput(Path(out))
        already = partial.start(settings, resume)
        writer = bag_io.open_writer(partial.bag, storage)
        copies = {}
        not_copied = []
        for conn in reader.connections:
            copied = bag_io.copy_connection(writer, conn)
            copies[conn.id] = copied
            if copied is None:
                not_copied.append(f'{conn.topic} ({conn.msgtype})')
        out_conns = {k: bag_io.add_output_connection(writer, topics[k], OUTPUTS[k][1]) for k in keys}
        info_conn = bag_io.add_output_connection(writer, topics['class_info'], bag_io.CLASS_INFO_TYPE, latched=True)
        label_info_conn = bag_io.add_output_connection(writer, topics['label_info'], bag_io.LABEL_INFO_TYPE,
                                                       latched=True)

        total = sum(c.msgcount for c in image_conns)
        image_ids = {c.id for c in image_conns}
        counts = {'frames': 0, 'segmented': 0, 'resumed': 0, 'skipped': 0}
        skipped: List[Dict[str, Any]] = []
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
            if not legend_written:
                header = bag_io.make_typestore().deserialize_cdr(raw, conn.msgtype).header
                writer.write(info_conn, timestamp, bag_io.serialize(bag_io.class_info_msg(
                    header, vocab.version, getattr(getattr(segmenter, 'config', None), 'method', 'talk2dino'), names, colors,
                    threshold)))
                writer.write(label_info_conn, timestamp, bag_io.serialize(
                    bag_io.label_info_msg(header, names, threshold)))
                legend_written = True
            items = partial.done(frame, timestamp)
            if items is not None:
                counts['resumed'] += 1
            else:
                t0 = time.perf_counter()
                try:
                    items = _frame_outputs(raw, conn.msgtype, segmenter, vocab, names, colors, confidence, overlay)
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
                skipped.append({'frame': frame, 'timestamp': timestamp, 'error': items['skipped'].decode()})
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
        'out': str(final), 'storage': storage, 'image_topic': image_topic, 'vocabulary': list(names),
        **counts, 'skipped_frames': skipped, 'topics': topics, 'not_copied': not_copied,
        'wall_s': wall, 'segment_s': segment_s,
        'segmented_fps': counts['segmented'] / segment_s if segment_s > 0 else None,
    }


def _progress(total: int, enabled: bool, already: int):
    if not enabled:
        return None
    from tqdm import tqdm

    desc = 'segment_bag' + (f' (resuming, {already} done)' if already else '')
    return tqdm(total=total, desc=desc, unit='frame', file=sys.stderr, dynamic_ncols=True)


# ------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    from talk2dino_ros.cli.common import add_inference_arguments, add_model_arguments

    p = argparse.ArgumentParser(prog='segment_bag', description=__doc__,
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
    p.add_argument('--resume', action='store_true', help='continue an interrupted run (OUT.partial)')
    p.add_argument('--skip-bad', action='store_true',
                   help='skip frames that cannot be decoded (listed in the summary) instead of stopping')
    p.add_argument('--json', type=Path, default=None, metavar='FILE', help='write the summary as JSON')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    add_model_arguments(p)
    add_inference_arguments(p)
    return p


def _run(argv: Optional[Sequence[str]]) -> int:
    from talk2dino_ros.cli.common import build_segmenter, parse_vocab_arg

    args = build_parser().parse_args(argv)
    names = parse_vocab_arg(args.vocab)
    # check the input before loading weights: a wrong path or topic fails in a second
    reader = bag_io.open_bag(args.bag)
    try:
        bag_io.image_connections(reader, args.image_topic)
    finally:
        reader.close()
    segmenter = build_segmenter(args, **NODE_DEFAULTS)
    summary = segment_bag(segmenter, args.bag, args.out, args.image_topic, names, namespace=args.namespace,
                          overlay=args.overlay, confidence=args.confidence, storage=args.storage,
                          resume=args.resume, skip_bad=args.skip_bad, progress=not args.quiet)
    fps = summary['segmented_fps']
    print(f"wrote {summary['out']} ({summary['storage']}): {summary['frames']} frames, "
          f"{summary['segmented']} segmented, {summary['resumed']} resumed, {summary['skipped']} skipped"
          + (f', {fps:.2f} frames/s' if fps else '') + f"; topics: {', '.join(summary['topics'].values())}")
    for entry in summary['skipped_frames'][:10]:
        print(f"  skipped frame {entry['frame']}: {entry['error']}", file=sys.stderr)
    if summary['not_copied']:
        print('warning: not copied (no message definition in the bag): ' + ', '.join(summary['not_copied']),
              file=sys.stderr)
    if args.json is not None:
        from talk2dino_ros.atomic_files import atomic_write_text

        atomic_write_text(args.json, json.dumps(summary, indent=1))
    from talk2dino_ros.cli.reminders import remind_random_weights

    remind_random_weights(args)  # last, so it is the last line a user reads
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    from talk2dino_ros.cli.common import run_cli
    return run_cli(_run, argv)


if __name__ == '__main__':
    sys.exit(main())
