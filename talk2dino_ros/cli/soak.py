"""``soak``: run the real segmentation node for a while under load and vocabulary churn; count every fault.

  python -m talk2dino_ros.cli.soak --duration 600            # 10 minutes, tiny random weights, CPU
  python -m talk2dino_ros.cli.soak --duration 5 --json -     # smoke run, JSON summary on stdout

The node runs in its own process (``python -m talk2dino_ros.ros.segment_node`` with tiny random weights
written to a temporary folder, ``allow_random_weights:=true``) on a random ROS domain with
localhost-only discovery. This process publishes camera frames at ``--rate`` Hz and changes the
vocabulary every ``--change-period`` seconds, in turn through ``/t2d/vocab``, the ``vocabulary``
parameter and the ``~/set_vocabulary`` service, cycling through normal, empty, duplicate, unicode,
whitespace/control-character, over-long and 1,000-name vocabularies. It records:

* the node's RSS (``/proc/<pid>/status`` VmRSS) every second, and its growth after the warm-up, with its
  parts (RssAnon: heap and other private memory; RssFile: mapped libraries and files; RssShmem: shared
  memory such as Fast DDS's transport segments) so that a step in the curve can be told apart;
* frames sent, labels received, the node's own processed / dropped counters (``/diagnostics``);
* latency percentiles (frame published -> its labels received);
* faults, each a counter that must stay 0:
  ``header_mismatch`` (an output whose header matches no frame sent), ``size_mismatch``,
  ``duplicate_outputs``, ``labels_exceed_legend`` (a label value above the highest class id of the
  vocabulary the frame was computed with), ``encoding_mismatch`` (mono8 vs mono16 for that class count),
  ``masks_mismatch`` (``~/masks`` that disagree with the labels), ``stale_legend`` (a frame computed with
  an older vocabulary than one already published, or acknowledged by the service answer (or, for
  the topic and the parameter, by its legend) before the frame was sent; or whose version has no ``~/class_info`` with the same names),
  ``legend_not_applied`` (a change that should take effect and did not, or a refused one that changed
  the legend), ``vocab_response_mismatch`` (service / parameter answers that disagree with the node's
  documented vocabulary rules), ``node_tracebacks`` and a node that died.

Which vocabulary a frame was computed with is read from ``~/masks`` (same header as the labels, carries
``vocabulary_version`` and the class names), so the soak subscribes to it and the node computes masks
too. Receive order across topics is not used: DDS does not keep it (a small ``~/class_info`` can overtake
a large ``~/labels`` published just before it).
Exit code 0 when every fault counter is 0 and the node survived, 1 otherwise, 2 for usage errors.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

NODE = '/talk2dino'
CHANNELS = ('topic', 'parameter', 'service')
#: longest wait after the run for a legend that frames name but that has not arrived (a reliable sample lost
#: on the wire comes again after the writer's next heartbeat: 3 s in Fast DDS)
LEGEND_REPAIR_S = 5.0
FAULTS = ('header_mismatch', 'size_mismatch', 'duplicate_outputs', 'labels_exceed_legend', 'encoding_mismatch',
          'masks_mismatch', 'stale_legend', 'legend_not_applied', 'vocab_response_mismatch', 'node_tracebacks')


def vocabularies() -> List[Tuple[str, List[str]]]:
    """The rotation of vocabularies (kind, raw names) the soak sends."""
    return [
        ('normal', ['sky', 'grass', 'car']),
        ('empty', []),
        ('duplicates', ['tree', 'Tree', 'tree', ' road ', 'road', 'TREE']),
        ('unicode', ['猫', 'Straße', 'café ☕', 'ñandú', 'собака', '🚗 car']),
        ('thousand', [f'object {i}' for i in range(1000)]),
        ('whitespace', ['   ', '\t', 'person', '', 'bag\x07pack']),
        ('long', ['x' * 300, 'lamp post', 'background']),
        ('normal2', ['person', 'bicycle', 'dog', 'bench']),
    ]


def expected_names(raw: Sequence[str], channel: str) -> Tuple[str, ...]:
    """What the node must accept for ``raw`` sent through ``channel`` (its documented rules)."""
    from talk2dino_ros.ros.vocabulary import parse_vocabulary

    source: Any = ','.join(raw) if channel == 'topic' else list(raw)
    return parse_vocabulary(source).accepted


def percentiles(values: Sequence[float]) -> Dict[str, Optional[float]]:
    if not values:
        return {'p50': None, 'p90': None, 'p99': None, 'max': None, 'mean': None}
    arr = np.asarray(values, dtype=np.float64)
    return {'p50': float(np.percentile(arr, 50)), 'p90': float(np.percentile(arr, 90)),
            'p99': float(np.percentile(arr, 99)), 'max': float(arr.max()), 'mean': float(arr.mean())}


#: the RSS fields of /proc/<pid>/status the soak records (VmRSS = RssAnon + RssFile + RssShmem)
RSS_FIELDS = ('VmRSS', 'RssAnon', 'RssFile', 'RssShmem')


def read_rss_parts_kb(pid: int) -> Optional[Dict[str, int]]:
    """The :data:`RSS_FIELDS` of a process in kB (None once it is gone; a field the kernel lacks is absent)."""
    parts: Dict[str, int] = {}
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                name, _, value = line.partition(':')
                if name in RSS_FIELDS:
                    parts[name] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return parts if 'VmRSS' in parts else None


def rss_summary(samples: List[Tuple[float, int]], warmup_s: float,
                parts: Optional[List[Tuple[float, Dict[str, int]]]] = None) -> Dict[str, Any]:
    """RSS statistics of the node after its warm-up.

    The vocabulary rotation makes RSS swing (a 1,000-class frame needs far more memory than a 3-class
    one), so growth is judged on the envelope: the run after warm-up is cut into windows (60 s, fewer
    for short runs) and the peak and the floor of the last window are compared with those of the first.
    ``slope_mb_per_min`` is a least-squares fit over every sample after warm-up.

    ``parts``: (time, {RssAnon, RssFile, RssShmem in kB}) samples; each part gets its own floor per window
    (``parts_windows_mb``) and its samples (``parts_series``), so a step in VmRSS can be attributed.
    """
    if not samples:
        return {'samples': 0}
    t = np.array([s[0] for s in samples])
    mb = np.array([s[1] for s in samples], dtype=np.float64) / 1024.0
    out: Dict[str, Any] = {'samples': len(samples), 'start_mb': round(float(mb[0]), 1),
                           'end_mb': round(float(mb[-1]), 1), 'max_mb': round(float(mb.max()), 1),
                           'warmup_s': round(warmup_s, 1), 'window_s': None,
                           'peak_growth_pct': None, 'floor_growth_pct': None, 'slope_mb_per_min': None}
    post = t >= warmup_s
    span = float(t[-1] - warmup_s)
    if post.sum() < 4 or span < 20.0:
        return out  # too short to tell
    window = max(10.0, min(60.0, span / 5.0))
    first = post & (t < warmup_s + window)
    last = t > t[-1] - window
    peak0, peak1 = float(mb[first].max()), float(mb[last].max())
    floor0, floor1 = float(mb[first].min()), float(mb[last].min())
    slope = float(np.polyfit(t[post] / 60.0, mb[post], 1)[0])
    # one [floor, peak] pair per window for the JSON (the shape of the curve tells a leak from noise)
    edges = np.arange(float(t[0]), float(t[-1]) + window, window)
    out['windows_mb'] = [[round(float(edges[i]), 0), round(float(mb[sel].min()), 1), round(float(mb[sel].max()), 1)]
                         for i in range(len(edges) - 1) for sel in [(t >= edges[i]) & (t < edges[i + 1])] if sel.any()]
    out['series'] = [[round(float(a), 1), round(float(b), 1)] for a, b in zip(t, mb)]  # every sample, for re-analysis
    if parts:
        names = [n for n in RSS_FIELDS[1:] if all(n in p for _, p in parts)]
        pt = np.array([p[0] for p in parts])
        pmb = {n: np.array([p[1][n] for p in parts], dtype=np.float64) / 1024.0 for n in names}
        out['parts_fields'] = names
        # [start, floor of each part...] per window: the part whose floor steps with VmRSS is the one growing
        out['parts_windows_mb'] = [[round(float(edges[i]), 0)] + [round(float(pmb[n][sel].min()), 1) for n in names]
                                   for i in range(len(edges) - 1)
                                   for sel in [(pt >= edges[i]) & (pt < edges[i + 1])] if sel.any()]
        out['parts_series'] = [[round(float(pt[i]), 1)] + [round(float(pmb[n][i]), 1) for n in names]
                               for i in range(len(pt))]
    out.update(window_s=round(window, 1), after_warmup_mb=round(float(mb[post][0]), 1),
               first_window_mb=[round(floor0, 1), round(peak0, 1)], last_window_mb=[round(floor1, 1), round(peak1, 1)],
               peak_growth_pct=round(100.0 * (peak1 - peak0) / peak0, 2),
               floor_growth_pct=round(100.0 * (floor1 - floor0) / floor0, 2),
               slope_mb_per_min=round(slope, 2))
    return out


def make_frames(width: int, height: int, count: int = 8, seed: int = 0) -> List[np.ndarray]:
    """A few RGB test frames (coloured blocks over noise), reused in turn."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        img = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        x0 = (i * width // count) % max(1, width - width // 4)
        img[height // 4:height // 2, x0:x0 + width // 4] = rng.integers(0, 256, 3, dtype=np.uint8)
        frames.append(img)
    return frames


def node_command(weights: Dict[str, Path], resolution: int, image_topic: str,
                 extra_params: Sequence[str] = ()) -> List[str]:
    """The node's command line; ``extra_params``: more ``name:=value`` parameters (last one wins)."""
    cmd = [sys.executable, '-m', 'talk2dino_ros.ros.segment_node', '--ros-args',
           '-r', f'image:={image_topic}',  # the vocabulary: the node's own /t2d/vocab, no remap
           '-p', 'allow_random_weights:=true', '-p', 'device:=cpu', '-p', f'resolution:={resolution}',
           '-p', f'dinov2_weights:={weights["dinov2"]}', '-p', f'clip_weights:={weights["clip"]}',
           '-p', f'proj_weights:={weights["proj"]}',
           '-p', 'publish_overlay:=false', '-p', 'diagnostics_period:=1.0']
    for param in extra_params:
        cmd += ['-p', param]
    return cmd


class Soak:
    """The soak client: one rclpy node on one single-threaded executor (no locks needed)."""

    def __init__(self, context, args, node_pid: int):
        from rclpy.node import Node
        from rclpy.parameter_client import AsyncParameterClient
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image
        from std_msgs.msg import String
        from talk2dino_ros.msg import ClassInfo, ClassMasks
        from talk2dino_ros.srv import SetVocabulary

        from talk2dino_ros.ros.qos import latched_qos, legend_qos, output_qos

        self.args = args
        self.pid = node_pid
        self.node = Node('t2d_soak', context=context)
        # legend first: see the module docstring on ordering
        # a deep reader queue: every legend of a burst must arrive to check each frame's version
        self.node.create_subscription(ClassInfo, NODE + '/class_info', self.on_legend, legend_qos(200))
        self.node.create_subscription(Image, NODE + '/labels', self.on_labels, output_qos(depth=50))
        # ~/masks carries the vocabulary version of each frame (labels do not): the exact legend check
        self.node.create_subscription(ClassMasks, NODE + '/masks', self.on_masks, output_qos(depth=50))
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self.on_diagnostics, 10)
        self.image_pub = self.node.create_publisher(
            Image, args.image_topic, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.vocab_pub = self.node.create_publisher(String, '/t2d/vocab', latched_qos())
        self.vocab_srv = self.node.create_client(SetVocabulary, NODE + '/set_vocabulary')
        self.params = AsyncParameterClient(self.node, NODE)
        self.Image, self.String, self.SetVocabulary = Image, String, SetVocabulary

        self.frames = make_frames(args.width, args.height)
        self.sent: Dict[Tuple[int, int, str], float] = {}
        self.sent_constraints: Dict[Tuple[int, int, str], Tuple[int, int]] = {}
        self.seen: set = set()
        self.frame_index = 0
        self.latencies: List[float] = []
        self.legends: List[Any] = []        # every ClassInfo received, in order
        self.legend = None                  # the one in effect
        self.counts = {k: 0 for k in FAULTS}
        self.counts.update(frames_sent=0, labels_received=0, masks_received=0, legends_received=0,
                           frames_checked=0, checked_without_masks=0)
        self.pending_labels: Dict[Tuple[int, int, str], Tuple[float, str, np.ndarray]] = {}
        self.pending_masks: Dict[Tuple[int, int, str], Tuple[int, Tuple[str, ...], Any]] = {}
        self.frame_versions: List[Tuple[Any, int, Tuple[str, ...]]] = []
        self.examples: Dict[str, List[str]] = {}
        self.diag: Dict[str, str] = {}
        self.rss: List[Tuple[float, int]] = []
        self.rss_parts: List[Tuple[float, Dict[str, int]]] = []  # RssAnon / RssFile / RssShmem with each sample
        self.t0 = time.monotonic()
        # vocabulary changes
        self.rotation = vocabularies()
        self.changes: List[Dict[str, Any]] = []
        self.current: Tuple[str, ...] = ()  # the vocabulary the node must have now
        self.acked_change = -1              # index of the last change known to be in effect
        self.pending: Optional[Dict[str, Any]] = None
        self.by_channel = {c: 0 for c in CHANNELS}
        self.by_kind: Dict[str, int] = {}
        self.refused_as_expected = 0
        self.apply_ms: Dict[str, List[float]] = {}  # kind -> time from sending a change to its legend
        self.running = True
        self.last_change_time = time.monotonic()

    # ------------------------------------------------------------------ faults
    def fault(self, name: str, detail: str) -> None:
        self.counts[name] += 1
        examples = self.examples.setdefault(name, [])
        if len(examples) < 5:
            examples.append(detail)

    # ------------------------------------------------------------------ callbacks
    def on_legend(self, msg) -> None:
        self.legend = msg
        self.legends.append((time.monotonic(), int(msg.vocabulary_version), tuple(msg.class_names)))
        self.counts['legends_received'] += 1

    def on_diagnostics(self, msg) -> None:
        for status in msg.status:
            # the node names its status after its fully qualified name, e.g. "/talk2dino: segmentation"
            if status.name.lstrip('/').startswith('talk2dino') and status.name.endswith('segmentation'):
                self.diag = {kv.key: kv.value for kv in status.values}
                self.diag['_level'] = str(int.from_bytes(bytes(status.level), 'little')
                                          if isinstance(status.level, (bytes, bytearray)) else status.level)
                self.diag['_message'] = status.message

    def _known(self, msg, what: str):
        """The frame key of an output, or None (counted) when it matches no frame sent."""
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id)
        if key not in self.sent:
            self.fault('header_mismatch', f'{what} {key}')
            return None
        return key

    def on_labels(self, msg) -> None:
        now = time.monotonic()
        self.counts['labels_received'] += 1
        key = self._known(msg, 'labels')
        if key is None:
            return
        if key in self.seen:
            self.fault('duplicate_outputs', f'labels {key}')
            return
        self.seen.add(key)
        self.latencies.append((now - self.sent[key]) * 1000.0)
        if (msg.height, msg.width) != (self.args.height, self.args.width):
            self.fault('size_mismatch', f'{key}: {msg.width}x{msg.height}')
        dtype = np.uint8 if msg.encoding == 'mono8' else np.dtype('>u2' if msg.is_bigendian else '<u2')
        try:
            labels = np.frombuffer(bytes(msg.data), dtype=dtype)
        except ValueError:
            labels = np.zeros(0, np.uint8)
        self.pending_labels[key] = (now, msg.encoding, labels)
        if key in self.pending_masks:
            self.check_frame(key)

    def on_masks(self, msg) -> None:
        self.counts['masks_received'] += 1
        key = self._known(msg, 'masks')
        if key is None:
            return
        names = tuple(msg.class_names)
        masks = None
        if self.counts['masks_received'] % 10 == 1 and msg.mask_type == 'binary':  # sample the content check
            masks = [np.frombuffer(bytes(m.data), np.uint8) for m in msg.masks]
        if len(msg.masks) != len(names) or list(msg.class_ids) != list(range(1, len(names) + 1)):
            self.fault('masks_mismatch', f'{key}: {len(msg.masks)} masks, ids {list(msg.class_ids)[:4]} for '
                                         f'{len(names)} names')
        self.pending_masks[key] = (int(msg.vocabulary_version), names, masks)
        if key in self.pending_labels:
            self.check_frame(key)

    def check_frame(self, key) -> None:
        """Labels + masks of one frame: the masks carry the vocabulary version the frame was computed with."""
        received, encoding, labels = self.pending_labels.pop(key)
        version, names, masks = self.pending_masks.pop(key)
        self.counts['frames_checked'] += 1
        top = len(names)
        if encoding != ('mono8' if top <= 255 else 'mono16'):
            self.fault('encoding_mismatch', f'{key}: {encoding} for {top} classes')
        if labels.size and int(labels.max()) > top:
            self.fault('labels_exceed_legend', f'{key}: label {int(labels.max())} > {top} (v{version})')
        if masks is not None and labels.size:
            for i, mask in enumerate(masks):
                if not np.array_equal(mask, (labels == i + 1).astype(np.uint8) * 255):
                    self.fault('masks_mismatch', f'{key}: mask {i + 1} differs from the labels')
                    break
        self.frame_versions.append((key, version, names))
        min_version, acked = self.sent_constraints.get(key, (0, -1))
        if version < min_version:
            self.fault('stale_legend', f'{key}: computed with v{version}, but v{min_version} was published '
                                       'before the frame was sent')
        elif acked >= 0:
            allowed = {c['expected'] for c in self.changes[acked:] if c['expected']}
            allowed.add(self.changes[acked]['in_effect'])
            if names not in allowed:
                self.fault('stale_legend', f'{key}: computed with {list(names)[:3]}..., not the vocabulary '
                                           'acknowledged before the frame was sent')

    def final_checks(self) -> None:
        """After the run: every frame's version has its legend; labels without masks get the weak check."""
        legends = {}
        for _, version, names in self.legends:
            legends.setdefault(version, names)
        for key, version, names in self.frame_versions:
            legend = legends.get(version)
            if legend is None:
                self.fault('stale_legend', f'{key}: no ~/class_info was published for v{version}')
            elif legend != ('background',) + names:
                self.fault('stale_legend', f'{key}: ~/class_info v{version} lists {list(legend)[:4]}, '
                                           f'the frame {list(names)[:3]}')
        # frames whose masks never came (~/masks keeps only the newest for a reader that lags): computed with a
        # vocabulary at least as new as the newest legend out before the frame was sent, whose legend came out
        # before the labels (received up to 1 s after them: no cross-topic order); the labels must fit one
        for key, (received, encoding, labels) in self.pending_labels.items():
            self.counts['checked_without_masks'] += 1
            min_version = self.sent_constraints.get(key, (0, -1))[0]
            possible = [n for t, v, n in self.legends if v >= min_version and t <= received + 1.0]
            if labels.size and possible and all(int(labels.max()) > len(n) - 1 for n in possible):
                self.fault('labels_exceed_legend', f'{key}: label {int(labels.max())} fits no legend it can '
                                                   'have been computed with')
        self.pending_labels.clear()

    # ------------------------------------------------------------------ timers
    def publish_frame(self) -> None:
        if not self.running:
            return
        from std_msgs.msg import Header

        i = self.frame_index
        self.frame_index += 1
        rgb = self.frames[i % len(self.frames)]
        header = Header(frame_id=f'soak_cam{i % 7}')
        header.stamp.sec, header.stamp.nanosec = 1_000_000 + i // 1000, (i % 1000) * 1_000_000 + 17
        msg = self.Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8',
                         step=rgb.shape[1] * 3, is_bigendian=0)
        msg.data = rgb.tobytes()
        key = (header.stamp.sec, header.stamp.nanosec, header.frame_id)
        latest_version = self.legends[-1][1] if self.legends else 0
        self.sent_constraints[key] = (latest_version, self.acked_change)
        self.sent[key] = time.monotonic()
        self.image_pub.publish(msg)
        self.counts['frames_sent'] += 1

    def sample_rss(self) -> None:
        parts = read_rss_parts_kb(self.pid)
        if parts is not None:
            now = time.monotonic() - self.t0
            self.rss.append((now, parts['VmRSS']))
            self.rss_parts.append((now, {k: v for k, v in parts.items() if k != 'VmRSS'}))

    # ------------------------------------------------------------------ vocabulary changes
    def start_change(self, now: float) -> None:
        """Start the next change (channel and vocabulary in rotation)."""
        from rclpy.parameter import Parameter

        k = len(self.changes)
        kind, raw = self.rotation[k % len(self.rotation)]
        channel = CHANNELS[k % len(CHANNELS)]
        expected = expected_names(raw, channel)
        change = {'index': k, 'kind': kind, 'channel': channel, 'expected': expected,
                  'in_effect': expected or self.current, 'started': now, 'future': None, 'acked': False}
        self.changes.append(change)
        self.by_channel[channel] += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        if channel == 'topic':
            self.vocab_pub.publish(self.String(data=','.join(raw)))
        elif channel == 'parameter':
            change['future'] = self.params.set_parameters(
                [Parameter('vocabulary', Parameter.Type.STRING_ARRAY, list(raw))])
        else:
            change['future'] = self.vocab_srv.call_async(self.SetVocabulary.Request(names=list(raw)))
        self.pending = change

    def check_answer(self, change: Dict[str, Any]) -> None:
        """Compare a parameter / service answer with the node's documented rules."""
        result = change['future'].result()
        ok_expected = bool(change['expected'])
        if change['channel'] == 'parameter':
            ok = bool(result.results[0].successful) if result is not None and result.results else False
            if ok != ok_expected:
                self.fault('vocab_response_mismatch', f"{change['kind']} via parameter: successful={ok}")
        else:
            if result is None or bool(result.success) != ok_expected or \
                    tuple(result.accepted) != change['in_effect']:
                self.fault('vocab_response_mismatch',
                           f"{change['kind']} via service: success={getattr(result, 'success', None)} "
                           f"accepted={list(getattr(result, 'accepted', []))[:4]}")
        if not ok_expected:
            self.refused_as_expected += 1

    def step_changes(self, now: float) -> None:
        """Advance the change state machine; called often from the main loop."""
        change = self.pending
        if change is not None:
            future = change['future']
            if future is not None and not change.get('answered'):
                if not future.done():
                    if now - change['started'] > self.args.change_timeout:
                        self.fault('legend_not_applied', f"{change['kind']} via {change['channel']}: no answer "
                                                         f"in {self.args.change_timeout} s")
                        self.finish_change(change)
                    return
                self.check_answer(change)
                change['answered'] = True
                if change['channel'] == 'service':  # answers once the new vocabulary is installed
                    change['acked'] = True
                    self.acked_change = change['index']
            want = ('background',) + change['in_effect']
            applied = self.legend is not None and tuple(self.legend.class_names) == want
            if not applied:
                if now - change['started'] > self.args.change_timeout:
                    got = list(self.legend.class_names)[:4] if self.legend is not None else None
                    self.fault('legend_not_applied', f"{change['kind']} via {change['channel']}: legend {got}")
                    self.finish_change(change)
                return
            if not change['expected']:
                # a change the node must refuse: watch the legend for the whole period before moving on
                if now - change['started'] < self.args.change_period:
                    return
                if any(v[0] > change['started'] and v[2] != want for v in self.legends):
                    self.fault('legend_not_applied',
                               f"refused {change['kind']} via {change['channel']} changed the legend")
            # a topic message has no answer and a parameter answer only means "accepted" (the text encoding
            # runs off the executor): both are in effect once their legend is seen
            if change['channel'] != 'service' and not change['acked']:
                change['acked'] = True
                self.acked_change = change['index']
            if change['expected']:
                self.apply_ms.setdefault(change['kind'], []).append((now - change['started']) * 1000.0)
            self.finish_change(change)
        if self.pending is None and self.running and now - self.last_change_time >= self.args.change_period:
            self.last_change_time = now
            self.start_change(now)

    def finish_change(self, change: Dict[str, Any]) -> None:
        self.current = change['in_effect']
        self.pending = None

    # ------------------------------------------------------------------ summary
    def summary(self, node_exit: Optional[int], node_alive_at_end: bool, log_text: str,
                duration: float) -> Dict[str, Any]:
        self.final_checks()
        self.counts['node_tracebacks'] = log_text.count('Traceback (most recent call last)')
        faults = {k: self.counts[k] for k in FAULTS}
        processed = int(self.diag.get('frames_processed', 0) or 0)
        dropped = int(self.diag.get('frames_dropped', 0) or 0)
        # measured (17 min, ~/masks at depth 1): the RSS floor reaches its level within the first minute (model,
        # DDS buffers, the first 1,000-class frames: 471 -> 625 MB), creeps up 0.9 MB until ~8 min, then stays
        # flat (trend -0.14 MB/min after 420 s); a warm-up under a minute reports that fill-up as growth.
        # Floor steps of one ~/masks message (19 MB at 1,000 classes) were DDS writer buffers at depth 5.
        warmup = self.args.warmup if self.args.warmup is not None else min(180.0, 0.3 * duration)
        rss = rss_summary(self.rss, warmup, self.rss_parts)
        ok = (not any(faults.values())) and node_alive_at_end and node_exit == 0 and self.counts['labels_received'] > 0
        return {
            'ok': ok,
            'duration_s': round(duration, 1), 'rate_hz': self.args.rate,
            'image': f'{self.args.width}x{self.args.height} rgb8', 'node_resolution': self.args.resolution,
            'node_params': list(self.args.node_param),
            'frames_sent': self.counts['frames_sent'],
            'labels_received': self.counts['labels_received'],
            'masks_received': self.counts['masks_received'],
            'frames_checked_with_version': self.counts['frames_checked'],
            'frames_checked_without_masks': self.counts['checked_without_masks'],
            'node_frames_received': int(self.diag.get('frames_received', 0) or 0),
            'node_frames_processed': processed,
            'node_frames_dropped': dropped,
            'node_frames_rejected': int(self.diag.get('frames_rejected', 0) or 0),
            'node_frames_failed': int(self.diag.get('frames_failed', 0) or 0),
            'not_answered': self.counts['frames_sent'] - len(self.seen),
            'latency_ms': {k: (None if v is None else round(v, 1)) for k, v in percentiles(self.latencies).items()},
            'vocabulary_changes': len(self.changes), 'changes_by_channel': self.by_channel,
            'changes_by_kind': self.by_kind, 'refused_as_expected': self.refused_as_expected,
            'legends_received': self.counts['legends_received'],
            'legends_after_run': self.counts.get('legends_after_run', 0),  # came in the repair wait after the run
            'vocabulary_apply_ms': {k: {'n': len(v), 'p50': round(float(np.median(v)), 1),
                                        'p99': round(float(np.percentile(v, 99)), 1),
                                        'max': round(float(np.max(v)), 1)} for k, v in self.apply_ms.items()},
            'vocabulary_apply_ms_all': {k: (None if v is None else round(v, 1)) for k, v in
                                        percentiles([x for v in self.apply_ms.values() for x in v]).items()},
            'last_vocabulary_version': self.legends[-1][1] if self.legends else None,
            'faults': faults, 'fault_examples': self.examples,
            'rss': rss,
            'node': {'pid': self.pid, 'exit_code': node_exit, 'alive_at_end': node_alive_at_end,
                     'error_log_lines': log_text.count('[ERROR]'),
                     'last_diagnostics': {k: v for k, v in self.diag.items()}},
        }


def _rss_parts_line(rss: Dict[str, Any]) -> List[str]:
    """The floors of RssAnon / RssFile / RssShmem in the first window after warm-up and the last one."""
    windows = [w for w in rss.get('parts_windows_mb', []) if w[0] >= rss.get('warmup_s', 0.0) - 1.0]
    if len(windows) < 2:
        return []
    first, last = windows[0], windows[-1]
    return ['  RSS parts, floor MB of the first -> last window after warm-up: ' + ', '.join(
        f'{name} {a} -> {b}' for name, a, b in zip(rss['parts_fields'], first[1:], last[1:]))]


def legends_still_missing(soak: Soak) -> set:
    """Vocabulary versions of checked frames whose ``~/class_info`` has not arrived (yet)."""
    return {v for _, v, _ in soak.frame_versions} - {v for _, v, _ in soak.legends}


def format_summary(s: Dict[str, Any]) -> str:
    lat = s['latency_ms']
    rss = s['rss']
    lines = [
        f"soak {'PASSED' if s['ok'] else 'FAILED'}: {s['duration_s']} s at {s['rate_hz']} Hz, {s['image']}, "
        f"node resolution {s['node_resolution']}" + (f", node parameters {s['node_params']}" if s['node_params'] else ''),
        f"  frames: sent {s['frames_sent']}, labels received {s['labels_received']}, node received "
        f"{s['node_frames_received']} / processed {s['node_frames_processed']} / dropped "
        f"{s['node_frames_dropped']} / rejected {s['node_frames_rejected']} / failed {s['node_frames_failed']}, "
        f"not answered {s['not_answered']}; checked with their vocabulary version "
        f"{s['frames_checked_with_version']}, without (no ~/masks) {s['frames_checked_without_masks']}",
        f"  latency ms: p50 {lat['p50']}, p90 {lat['p90']}, p99 {lat['p99']}, max {lat['max']}",
        f"  vocabulary changes: {s['vocabulary_changes']} {s['changes_by_channel']}, refused as expected "
        f"{s['refused_as_expected']}, legends received {s['legends_received']} (last v{s['last_vocabulary_version']})",
        '  vocabulary applied in ms (p50/p99/max): ' + ', '.join(
            f"{k} {v['p50']}/{v['p99']}/{v['max']}" for k, v in s['vocabulary_apply_ms'].items())
        + '; all kinds p50 {p50} / p99 {p99} / max {max}'.format(**s['vocabulary_apply_ms_all']),
        f"  RSS MB: start {rss.get('start_mb')}, end {rss.get('end_mb')}, max {rss.get('max_mb')}; after the "
        f"{rss.get('warmup_s')} s warm-up, [floor, peak] of the first {rss.get('window_s')} s window "
        f"{rss.get('first_window_mb')} -> last window {rss.get('last_window_mb')}: peak growth "
        f"{rss.get('peak_growth_pct')} %, floor growth {rss.get('floor_growth_pct')} %, trend "
        f"{rss.get('slope_mb_per_min')} MB/min",
        *_rss_parts_line(rss),
        '  faults: ' + ', '.join(f'{k} {v}' for k, v in s['faults'].items()),
        f"  node: exit code {s['node']['exit_code']}, alive at end {s['node']['alive_at_end']}, "
        f"error log lines {s['node']['error_log_lines']}",
    ]
    for name, examples in s['fault_examples'].items():
        lines.append(f'  e.g. {name}: ' + ' | '.join(examples[:3]))
    return '\n'.join(lines)


# ------------------------------------------------------------------------------------------ running
def _stop_node(proc: subprocess.Popen, timeout: float = 15.0) -> Optional[int]:
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            return proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=5.0)


def run(args) -> Dict[str, Any]:
    """Run one soak; returns the summary dict."""
    from talk2dino_ros.errors import Talk2DinoError
    from talk2dino_ros.model.random_weights import write_random_weights

    if args.duration <= 0 or args.rate <= 0 or args.change_period <= 0:
        raise Talk2DinoError('--duration, --rate and --change-period must be > 0')
    domain = args.domain_id if args.domain_id is not None else random.SystemRandom().randint(1, 101)
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    os.environ['ROS_LOCALHOST_ONLY'] = '1'
    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parents[1])  # the child runs this very copy of the package
    env['PYTHONPATH'] = pkg_root + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')

    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    with tempfile.TemporaryDirectory(prefix='t2d_soak_') as tmp:
        weights = write_random_weights(Path(tmp) / 'weights', method='talk2dino', width='tiny')
        log_path = Path(args.log) if args.log else Path(tmp) / 'node.log'
        log = open(log_path, 'w')
        proc = subprocess.Popen(node_command(weights, args.resolution, args.image_topic, args.node_param), stdout=log,
                                stderr=subprocess.STDOUT, env=env)
        context = Context()
        rclpy.init(context=context)
        executor = SingleThreadedExecutor(context=context)
        soak = None
        node_exit = None
        alive = False
        try:
            soak = Soak(context, args, proc.pid)
            executor.add_node(soak.node)
            _start(soak, executor, proc, args)
            soak.t0 = time.monotonic()
            frame_timer = soak.node.create_timer(1.0 / args.rate, soak.publish_frame)
            rss_timer = soak.node.create_timer(1.0, soak.sample_rss)
            soak.sample_rss()
            soak.last_change_time = time.monotonic()
            end = soak.t0 + args.duration
            next_report = soak.t0 + 60.0
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.02)
                soak.step_changes(time.monotonic())
                if proc.poll() is not None:
                    break
                if not args.quiet and time.monotonic() >= next_report:
                    next_report += 60.0
                    print(f'[soak] {time.monotonic() - soak.t0:.0f} s: sent {soak.counts["frames_sent"]}, '
                          f'labels {soak.counts["labels_received"]}, changes {len(soak.changes)}, RSS '
                          f'{soak.rss[-1][1] / 1024 if soak.rss else 0:.0f} MB, faults '
                          f'{sum(soak.counts[k] for k in FAULTS)}', file=sys.stderr, flush=True)
            soak.running = False
            frame_timer.cancel()
            drain_end = time.monotonic() + min(3.0, max(1.0, 0.2 * args.duration))  # outputs still in flight
            while time.monotonic() < drain_end and proc.poll() is None:
                executor.spin_once(timeout_sec=0.05)
                soak.step_changes(time.monotonic())
            # a legend lost on the wire under load is resent after the writer's next heartbeat (Fast DDS: every
            # 3 s), possibly after the frames computed with it: wait for the legends those frames name, bounded
            legend_end = time.monotonic() + LEGEND_REPAIR_S
            missing = len(legends_still_missing(soak))
            while legends_still_missing(soak) and time.monotonic() < legend_end and proc.poll() is None:
                executor.spin_once(timeout_sec=0.05)
            soak.counts['legends_after_run'] = missing - len(legends_still_missing(soak))
            rss_timer.cancel()
            alive = proc.poll() is None
            duration = time.monotonic() - soak.t0
        finally:
            node_exit = _stop_node(proc)
            log.close()
            if soak is not None:
                soak.node.destroy_node()
            executor.shutdown(timeout_sec=1.0)
            rclpy.try_shutdown(context=context)
        log_text = log_path.read_text(errors='replace')
        summary = soak.summary(node_exit, alive, log_text, duration)
        summary['ros_domain_id'] = domain
        summary['random_weights'] = True  # the node always runs tiny random weights here: a stability test
        if not summary['ok'] or args.verbose:
            summary['node_log_tail'] = log_text[-3000:]
    return summary


def _start(soak: Soak, executor, proc: subprocess.Popen, args) -> None:
    """Wait for the node's service, set the first vocabulary and wait for its legend (bounded)."""
    from talk2dino_ros.errors import Talk2DinoError

    deadline = time.monotonic() + args.startup_timeout
    while not soak.vocab_srv.service_is_ready():
        executor.spin_once(timeout_sec=0.1)
        if proc.poll() is not None or time.monotonic() > deadline:
            raise Talk2DinoError(f'the node did not come up (exit code {proc.poll()}); see its log')
    first = soak.rotation[0][1]
    future = soak.vocab_srv.call_async(soak.SetVocabulary.Request(names=list(first)))
    want = ('background',) + tuple(first)
    while not (future.done() and soak.legend is not None and tuple(soak.legend.class_names) == want):
        executor.spin_once(timeout_sec=0.1)
        if proc.poll() is not None or time.monotonic() > deadline:
            raise Talk2DinoError('the node published no legend for the first vocabulary in '
                                 f'{args.startup_timeout} s (model not loaded?)')
    soak.current = tuple(first)
    soak.changes.append({'index': 0, 'kind': 'initial', 'channel': 'service', 'expected': tuple(first),
                         'in_effect': tuple(first), 'started': time.monotonic(), 'future': None, 'acked': True})
    soak.acked_change = 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='soak', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--duration', type=float, default=60.0, help='seconds of load (default 60)')
    p.add_argument('--rate', type=float, default=10.0, help='frames per second sent (default 10)')
    p.add_argument('--width', type=int, default=160, help='frame width in pixels (default 160)')
    p.add_argument('--height', type=int, default=120, help='frame height in pixels (default 120)')
    p.add_argument('--resolution', type=int, default=112, help="the node's inference resolution (default 112)")
    p.add_argument('--change-period', type=float, default=1.0, help='seconds between vocabulary changes (default 1)')
    p.add_argument('--change-timeout', type=float, default=60.0,
                   help='longest wait for a change to be answered and its legend to arrive (default 60 s)')
    p.add_argument('--warmup', type=float, default=None,
                   help='seconds excluded from the RSS growth (default: 30 %% of the run, at most 180)')
    p.add_argument('--startup-timeout', type=float, default=120.0,
                   help='longest wait for the node to load and answer the first frame (default 120 s)')
    p.add_argument('--image-topic', default='/t2d_soak/image', help='topic the frames are sent on (default /t2d_soak/image)')
    p.add_argument('--domain-id', type=int, default=None, help='ROS_DOMAIN_ID (default: random 1..101)')
    p.add_argument('--node-param', action='append', default=[], metavar='NAME:=VALUE',
                   help='extra node parameter, repeatable (e.g. mask_topics_limit:=0)')
    p.add_argument('--log', default=None, help="keep the node's log in this file")
    p.add_argument('--json', default=None, metavar='FILE', help="write the summary as JSON ('-' = stdout)")
    p.add_argument('--quiet', action='store_true', help='no progress lines')
    p.add_argument('--verbose', action='store_true', help="include the node's log tail in the summary")
    return p


def _run(argv: Optional[Sequence[str]]) -> int:
    args = build_parser().parse_args(argv)
    summary = run(args)
    text = format_summary(summary)
    if args.json == '-':
        print(json.dumps(summary, indent=1, default=str, ensure_ascii=False))
        print(text, file=sys.stderr)
    else:
        print(text)
        if args.json:
            from talk2dino_ros.atomic_files import atomic_write_text

            atomic_write_text(Path(args.json), json.dumps(summary, indent=1, default=str, ensure_ascii=False))
    if not summary['ok'] and 'node_log_tail' in summary:
        print('node log (tail):\n' + summary['node_log_tail'], file=sys.stderr)
    return 0 if summary['ok'] else 1


def main(argv: Optional[List[str]] = None) -> int:
    from talk2dino_ros.cli.common import run_cli
    return run_cli(_run, argv)


if __name__ == '__main__':
    sys.exit(main())
