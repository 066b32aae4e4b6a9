"""vision_msgs/LabelInfo through real rclpy pub/sub, with the TEST-ONLY vision_msgs package.

vision_msgs cannot be installed here, so scripts/build_test_msgs.sh builds upstream's LabelInfo and
VisionClass (test_support/vision_msgs_test) into a private prefix. The pub/sub runs in a child process
that gets that prefix on PYTHONPATH, LD_LIBRARY_PATH and AMENT_PREFIX_PATH: the dynamic loader reads
LD_LIBRARY_PATH only at process start, and this test process must not see a vision_msgs that users
never have.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from talk2dino_ros.ros.label_info import label_info_threshold

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name('label_info_probe.py')
# RIHS01 type hash of upstream vision_msgs/msg/LabelInfo (ros-perception/vision_msgs 4.1.1), computed from
# its .msg files: equal hashes mean the test-only copy has exactly upstream's fields and types.
UPSTREAM_LABEL_INFO_HASH = 'RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783'


def _build() -> subprocess.CompletedProcess:
    env = dict(os.environ, T2D_VENV=sys.prefix)
    return subprocess.run(['bash', str(ROOT / 'scripts' / 'build_test_msgs.sh')], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope='session')
def test_msgs_prefix():
    """Prefix of the built test-only vision_msgs (built once; later runs reuse it)."""
    if shutil.which('cmake') is None:
        print('test-only vision_msgs not built: cmake is not installed')
        pytest.skip('cmake is not installed: cannot build the test-only vision_msgs package')
    proc = _build()
    assert proc.returncode == 0, f'build_test_msgs.sh failed:\n{proc.stdout}\n{proc.stderr}'
    prefix = Path(proc.stdout.strip().splitlines()[-1])
    assert (prefix / 'share' / 'vision_msgs' / 'msg' / 'LabelInfo.json').is_file()
    return prefix


def child_env(prefix: Path) -> dict:
    site = next(prefix.glob('lib/python3*/site-packages'))
    env = dict(os.environ)
    for var, value in (('PYTHONPATH', f'{site}{os.pathsep}{ROOT}'), ('LD_LIBRARY_PATH', str(prefix / 'lib')),
                       ('AMENT_PREFIX_PATH', str(prefix))):
        env[var] = value + (os.pathsep + env[var] if env.get(var) else '')
    return env


def run_probe(prefix: Path, *args, timeout=120) -> dict:
    proc = subprocess.run([sys.executable, str(PROBE), *args], env=child_env(prefix), capture_output=True,
                          text=True, timeout=timeout, cwd=str(ROOT))
    assert proc.returncode == 0, f'probe failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}'
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_test_only_detection_types_match_the_bag_writer(test_msgs_prefix):
    """The node's Detection2DArray/Detection3DArray (test-only package) and segment_bag's are one type."""
    from talk2dino_ros.bags import bag_io

    store = bag_io.make_typestore()
    for name in ('Detection2DArray', 'Detection3DArray'):
        described = json.loads((test_msgs_prefix / f'share/vision_msgs/msg/{name}.json').read_text())
        hashes = {h['type_name']: h['hash_string'] for h in described['type_hashes']}
        assert hashes[f'vision_msgs/msg/{name}'] == store.hash_rihs01(f'vision_msgs/msg/{name}'), name


def test_threshold_is_clamped_to_label_info_range():
    assert [label_info_threshold(t) for t in (-1.0, 0.0, 0.55, 1.0, 3.0)] == [0.0, 0.0, 0.55, 1.0, 1.0]


def test_test_only_package_is_upstream_field_for_field_and_never_installed(test_msgs_prefix):
    from talk2dino_ros.bags import bag_io

    described = json.loads((test_msgs_prefix / 'share/vision_msgs/msg/LabelInfo.json').read_text())
    hashes = {h['type_name']: h['hash_string'] for h in described['type_hashes']}
    assert hashes['vision_msgs/msg/LabelInfo'] == UPSTREAM_LABEL_INFO_HASH
    # the bag writer's built-in definition is the same type
    assert bag_io.make_typestore().hash_rihs01('vision_msgs/msg/LabelInfo') == UPSTREAM_LABEL_INFO_HASH
    assert (ROOT / 'test_support' / 'vision_msgs_test' / 'COLCON_IGNORE').is_file()
    # not on this interpreter's paths: users (and this process) never import the stand-in
    spec = importlib.util.find_spec('vision_msgs')
    assert spec is None or str(test_msgs_prefix) not in str(spec.origin)
    assert not any(str(test_msgs_prefix) in p for p in sys.path)
    # idempotent: a second run only checks the stamp
    started = time.monotonic()
    proc = _build()
    assert proc.returncode == 0 and 'up to date' in proc.stderr and time.monotonic() - started < 10


def test_label_info_real_pubsub_late_subscriber(test_msgs_prefix):
    result = run_probe(test_msgs_prefix, 'pubsub')
    assert result['available'] is True
    (msg,) = result['received']
    assert msg['type'].startswith('vision_msgs.msg')
    assert msg['class_map'] == [[0, 'background'], [1, 'road'], [2, '猫'], [3, 'tall grass']]
    assert msg['threshold'] == pytest.approx(0.55)
    assert msg['stamp'] == [42, 7] and msg['frame_id'] == 'camera'


def test_node_publishes_label_info_beside_class_info(test_msgs_prefix, tiny_weights):
    weights = [str(tiny_weights[k]) for k in ('dinov2', 'clip', 'proj')]
    result = run_probe(test_msgs_prefix, 'node', *weights)
    maps = [m['class_map'] for m in result['received']]
    assert [[0, 'background'], [1, 'cat'], [2, '猫']] in maps
    # re-published on a vocabulary change, latched for a late subscriber, same ids as ~/class_info
    expected = [[0, 'background'], [1, 'dog'], [2, 'tall grass'], [3, 'sky']]
    assert maps[-1] == expected and result['late'][-1]['class_map'] == expected
    info = result['class_info']
    assert [[i, n] for i, n in zip(info['ids'], info['names'])] == expected
    assert result['late'][-1]['threshold'] == pytest.approx(info['threshold'])


def test_node_publishes_2d_and_3d_detections(test_msgs_prefix, tmp_path):
    from talk2dino_ros.model.pretrained import default_paths

    for path in default_paths('talk2dino', 'vitb', tmp_path).values():  # stand-ins: the fake engine reads none
        path.write_bytes(b'stand-in')
    proc = subprocess.run([sys.executable, str(PROBE.with_name('detections_probe.py')), str(tmp_path)],
                          env=child_env(test_msgs_prefix), capture_output=True, text=True, timeout=120,
                          cwd=str(ROOT))
    assert proc.returncode == 0, f'probe failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}'
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    two, three = result['2d'][0], result['3d'][0]
    # 2D: the camera image's header; 3D: the depth image's (same stamp here)
    assert two['frame_id'] == 'color_optical' and three['frame_id'] == 'depth_optical'
    assert two['stamp'] == three['stamp'] == [77, 5]
    # four vertical stripes of 16 x 48 pixels: one detection each, legend ids as strings, mean confidence
    assert [d['class_id'] for d in two['detections']] == ['1', '2', '3', '4']
    assert [d['id'] for d in two['detections']] == ['1-0', '2-0', '3-0', '4-0']
    for k, d in enumerate(two['detections']):
        assert d['center'] == [16 * k + 7.5, 23.5] and d['size'] == [16.0, 48.0]
        assert d['score'] == pytest.approx(0.9)
    # 3D: the stripes on the wall at 2 m (depth at half resolution, fx = 40 px: 5 cm per depth pixel)
    assert [d['class_id'] for d in three['detections']] == ['1', '2', '3', '4']
    for k, d in enumerate(three['detections']):
        assert d['center'][2] == pytest.approx(2.0, abs=1e-3)
        assert d['center'][0] == pytest.approx((8 * k + 3.5 - 15.5) * 2.0 / 40.0, abs=0.01)
        assert d['size'][0] == pytest.approx(0.4, abs=0.02) and d['size'][2] == pytest.approx(0.0, abs=1e-3)
