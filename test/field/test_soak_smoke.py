"""A 5-second soak of the real node process: zero faults, every vocabulary channel used."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_soak_smoke_has_no_mismatches(tmp_path):
    out = tmp_path / 'soak.json'
    proc = subprocess.run([sys.executable, '-m', 'talk2dino_ros.cli.soak', '--duration', '5', '--change-period', '0.5',
                           '--rate', '15', '--json', str(out), '--quiet'],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=240)
    assert out.is_file(), proc.stdout + proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary['faults'] == {k: 0 for k in summary['faults']}, summary['fault_examples']
    assert proc.returncode == 0 and summary['ok'], proc.stdout + proc.stderr[-3000:]
    assert summary['labels_received'] > 0 and summary['node']['exit_code'] == 0
    # the node's own counters come from /diagnostics: a renamed status must not read as zeros
    assert summary['node_frames_processed'] > 0, summary['node']['last_diagnostics']
    assert summary['vocabulary_apply_ms_all']['p99'] is not None
    assert all(n >= 1 for n in summary['changes_by_channel'].values()), summary['changes_by_channel']
    assert summary['refused_as_expected'] + summary['changes_by_kind'].get('empty', 0) >= 1
    assert summary['rss']['samples'] >= 4 and summary['latency_ms']['p50'] is not None


def test_soak_checks_count_each_kind_of_fault():
    """The counters can fail: feed the soak's checks outputs that break each rule."""
    import argparse
    import os
    import time

    import numpy as np
    import rclpy
    from rclpy.context import Context
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from talk2dino_ros.msg import ClassInfo, ClassMasks

    from talk2dino_ros.cli.soak import Soak, build_parser

    args = build_parser().parse_args(['--width', '4', '--height', '2'])
    assert isinstance(args, argparse.Namespace)
    context = Context()
    rclpy.init(context=context)
    soak = Soak(context, args, os.getpid())
    try:
        def header(i):
            h = Header(frame_id=f'f{i}')
            h.stamp.sec = i
            return h

        def send(i, min_version=0):
            key = (i, 0, f'f{i}')
            soak.sent[key] = time.monotonic()
            soak.sent_constraints[key] = (min_version, -1)

        def labels(i, values, encoding='mono8'):
            data = np.asarray(values, np.uint8 if encoding == 'mono8' else np.uint16).tobytes()
            soak.on_labels(Image(header=header(i), height=2, width=4, encoding=encoding, step=4, data=data))

        def masks(i, version, names):
            soak.on_masks(ClassMasks(header=header(i), vocabulary_version=version, class_names=list(names),
                                     class_ids=list(range(1, len(names) + 1)), mask_type='score',
                                     masks=[Image() for _ in names]))

        soak.on_legend(ClassInfo(vocabulary_version=1, class_names=['background', 'a', 'b']))
        send(1)
        labels(1, [0, 1, 2, 2, 1, 0, 0, 1])
        masks(1, 1, ['a', 'b'])                      # a correct frame
        send(2)
        labels(2, [0, 1, 2, 3, 1, 0, 0, 1])
        masks(2, 1, ['a', 'b'])                      # label 3 > 2 classes
        send(3, min_version=2)
        labels(3, [0] * 8)
        masks(3, 1, ['a', 'b'])                      # v1 after v2 was published
        labels(9, [0] * 8)                           # never sent
        send(4)
        labels(4, [0] * 8)
        labels(4, [0] * 8)                           # twice
        masks(4, 7, ['z'])                           # no ~/class_info v7
        soak.final_checks()
        faults = {k: v for k, v in soak.counts.items() if v and k in
                  ('labels_exceed_legend', 'stale_legend', 'header_mismatch', 'duplicate_outputs')}
        assert faults == {'labels_exceed_legend': 1, 'stale_legend': 2, 'header_mismatch': 1,
                          'duplicate_outputs': 1}, soak.examples
    finally:
        soak.node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_rss_summary_attributes_a_step_to_its_part():
    """A VmRSS step shows in the floor of the part that grew (here RssAnon), window by window."""
    import os

    from talk2dino_ros.cli.soak import _rss_parts_line, read_rss_parts_kb, rss_summary

    own = read_rss_parts_kb(os.getpid())
    assert own is not None and {'VmRSS', 'RssAnon', 'RssFile'} <= set(own)
    step = 19 * 1024  # kB: one 1,000-class ~/masks message
    samples = [(float(t), 500_000 + (t >= 150) * step) for t in range(240)]
    parts = [(float(t), {'RssAnon': 400_000 + (t >= 150) * step, 'RssFile': 99_000, 'RssShmem': 1_000})
             for t in range(240)]
    rss = rss_summary(samples, 60.0, parts)
    assert rss['parts_fields'] == ['RssAnon', 'RssFile', 'RssShmem']
    assert len(rss['parts_series']) == 240 and len(rss['parts_windows_mb']) == len(rss['windows_mb'])
    first, last = rss['parts_windows_mb'][1], rss['parts_windows_mb'][-1]
    assert round(last[1] - first[1], 1) == 19.0 and last[2:] == first[2:]
    assert 'RssAnon 390.6 -> 409.6' in _rss_parts_line(rss)[0]
