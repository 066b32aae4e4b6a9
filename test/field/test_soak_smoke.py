"""A 5-second soak of the real node process: zero faults, every vocabulary channel used."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_soak_smoke_has_no_mismatches(tmp_path):
    out = tmp_path / 'soak.json'
    proc = subprocess.run([sys.executable, '-m', 'talk2dino_ros.soak', '--duration', '5', '--change-period', '0.5',
                           '--rate', '15', '--json', str(out), '--quiet'],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=240)
    assert out.is_file(), proc.stdout + proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary['faults'] == {k: 0 for k in summary['faults']}, summary['fault_examples']
    assert proc.returncode == 0 and summary['ok'], proc.stdout + proc.stderr[-3000:]
    assert summary['labels_received'] > 0 and summary['node']['exit_code'] == 0
    assert all(n >= 1 for n in summary['changes_by_channel'].values()), summary['changes_by_channel']
    assert summary['refused_as_expected'] + summary['changes_by_kind'].get('empty', 0) >= 1
    assert summary['rss']['samples'] >= 4 and summary['latency_ms']['p50'] is not None
