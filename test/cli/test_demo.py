"""scripts/demo.sh offline: RANDOM weights, said in the log and on every overlay, every pixel classed,
and a closing summary (issue 18). Runs the installed package (bash scripts/setup.sh after changes)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from talk2dino_ros.outputs.banner import BANNER_RGB, draw_banner

REPO = Path(__file__).resolve().parents[2]


def test_banner_is_a_red_band_with_text():
    rgb = np.full((120, 200, 3), 90, np.uint8)
    out = draw_banner(rgb, 'RANDOM WEIGHTS')
    assert out.shape == rgb.shape and (rgb == 90).all()  # the input is left alone
    band = np.nonzero((out != 90).any(axis=(1, 2)))[0]
    assert band[0] == 0 and 8 <= band[-1] < 120 // 4
    top = out[:band[-1] + 1]
    red = (top == BANNER_RGB).all(axis=2).mean()
    white = (top > 200).all(axis=2).mean()
    assert red > 0.5 and white > 0.02  # mostly band, some text
    assert (out[band[-1] + 1:] == 90).all()
    with pytest.raises(ValueError):
        draw_banner(np.zeros((4, 4), np.uint8), 'x')


@pytest.mark.slow
def test_demo_offline_finishes_with_random_weights_banner_and_summary(tmp_path):
    out = tmp_path / 'overlays'
    env = dict(os.environ, T2D_WEIGHTS_DIR=str(tmp_path / 'no_weights'), T2D_DEMO_OUT=str(out),
               T2D_DEMO_OFFLINE='1', T2D_VENV=str(Path(sys.executable).parents[1]))
    try:
        proc = subprocess.run(['bash', str(REPO / 'scripts' / 'demo.sh'), '25'], cwd=str(tmp_path), env=env,
                              capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as exc:  # say where it stood
        pytest.fail(f'the demo ran over 300 s:\n{(exc.stdout or b"")[-3000:]!r}\n{(exc.stderr or b"")[-3000:]!r}')
    log = proc.stdout + proc.stderr
    if 'did not stop within 20 s' in log:
        # seen once in a loaded CI run (a process of the demo never exited after Ctrl-C, cause unknown): the demo
        # now ends anyway and names the process; reported here without failing the suite
        import warnings
        warnings.warn('demo: ' + next(line for line in log.splitlines() if 'did not stop within 20 s' in line))
    assert proc.returncode == 0, log[-3000:]
    assert 'RANDOM test weights' in proc.stdout
    summary = re.search(r'\[demo\] summary: (\d+) frames in, (\d+) overlays out in \d+ s \(([\d.]+) overlays/s\); '
                        r'(\d+) saved in (\S+)', proc.stdout)
    assert summary, proc.stdout[-2000:]
    frames_in, frames_out, saved = int(summary[1]), int(summary[2]), int(summary[4])
    # the node keeps only the newest frame, so it never outputs more than arrive (startup races aside)
    assert frames_in >= 2 and frames_out >= 2 and saved >= 1 and Path(summary[5]) == out
    assert proc.stdout.rstrip().splitlines()[-1].startswith('[demo] note: these overlays come from RANDOM weights')
    pngs = sorted(out.glob('overlay_*.png'))
    assert len(pngs) == saved
    import cv2

    rgb = cv2.cvtColor(cv2.imread(str(pngs[-1])), cv2.COLOR_BGR2RGB)
    assert ((rgb[2] == BANNER_RGB).all(axis=1)).mean() > 0.5  # the banner is on the picture itself
    # no background class: the lower half (ground, a square) is covered by class colours, not left as is
    from talk2dino_ros.cli.image_folder_publisher import synthetic_frame

    scene = synthetic_frame(0, 640, 480)
    lower = slice(300, 480)
    assert np.abs(rgb[lower].astype(int) - scene[lower].astype(int)).mean() > 10
