"""A plain `colcon build` of this repository in a temporary workspace, and the node from its install tree.

colcon (PyPI) builds against the pip ROS 2 Kilted toolchain in the project venv, which stands in for a sourced
/opt/ros/<distro> with the venv that has torch active; the build command is the README's.
"""
import ast
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.install import ROOT, VENV, make_workspace, readme_commands, ros_shell_env, run

pytestmark = pytest.mark.slow
PKG = 'talk2dino_ros'


def console_scripts():
    tree = ast.parse((ROOT / 'setup.py').read_text(encoding='utf-8'))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'CONSOLE_SCRIPTS':
            return ast.literal_eval(node.value)
    raise AssertionError('CONSOLE_SCRIPTS not found in setup.py')


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    pytest.importorskip('colcon_core', reason='colcon is installed by scripts/setup.sh (requirements-dev.txt)')
    ws = make_workspace(tmp_path_factory.mktemp('colcon'))
    builds = readme_commands('colcon build')
    assert builds == [['colcon', 'build']], builds
    listed = run(['colcon', 'list', '--names-only'], cwd=ws, env=ros_shell_env(), timeout=60)
    assert listed.stdout.split() == [PKG], listed.stdout  # one package, nothing nested out of sight
    run(builds[0], cwd=ws, env=ros_shell_env(), timeout=900)
    return ws


def sourced(ws, command):
    """``command`` (a shell string) run after `source install/setup.bash`, as a user's shell would."""
    return ['bash', '-c', f'source install/setup.bash && {command}']


def test_install_tree_has_everything(workspace):
    prefix = workspace / 'install' / PKG
    share = prefix / 'share' / PKG
    for rel in ['launch/segment.launch.py', 'config/params.yaml', 'config/talk2dino.rviz', 'package.xml',
                'msg/ClassInfo.msg', 'msg/ClassMasks.msg', 'srv/SetVocabulary.srv']:
        assert (share / rel).is_file(), rel
    assert (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / PKG).is_file()
    site = next((prefix / 'lib').glob('python3*/site-packages')) / PKG
    for rel in ['msg/_class_info.py', 'msg/_class_masks.py', 'srv/_set_vocabulary.py', 'ros/segment_node.py',
                'model/segmenter.py']:
        assert (site / rel).is_file(), rel
    assert list(site.glob(f'{PKG}_s__rosidl_typesupport_c*.so'))
    assert '__version__' in (site / '__init__.py').read_text(), 'the generated empty __init__.py won'
    executables = prefix / 'lib' / PKG
    names = set(console_scripts())
    assert 'segment_lifecycle_node' in names
    assert {p.name for p in executables.iterdir()} == names
    for name in names:
        path = executables / name
        assert path.stat().st_mode & 0o111, name
        shebang = path.read_text().splitlines()[0]
        assert Path(shebang[2:]).parent == VENV / 'bin', shebang  # the venv the build ran in (has torch)


def test_sourced_install_imports_the_install_tree(workspace):
    out = run(sourced(workspace, 'python -c "import talk2dino_ros, talk2dino_ros.msg as m, talk2dino_ros.srv as s; '
                                 'print(talk2dino_ros.__file__); print(m.ClassInfo.__module__); print(s.__file__)"'),
              cwd=workspace, env=ros_shell_env(), timeout=60)
    first, module, srv = out.stdout.split()
    assert first.startswith(str(workspace / 'install' / PKG)), first
    assert srv.startswith(str(workspace / 'install' / PKG)), srv
    assert module == 'talk2dino_ros.msg._class_info'


def test_node_from_the_install_tree_publishes_labels(workspace, tmp_path):
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from talk2dino_ros.ros.image_conversion import numpy_to_image

    lib = workspace / 'install' / PKG / 'lib' / PKG
    weights = tmp_path / 'weights'
    run(sourced(workspace, f'{lib / "make_random_weights"} {weights} --width tiny'), cwd=workspace,
        env=ros_shell_env(), timeout=120)
    node_cmd = (f'exec {lib / "segment_node"} --ros-args -r image:=/t2d_install_test/image '
                f'-p weights_dir:={weights} -p allow_random_weights:=true -p device:=cpu -p mode:=whole '
                f'-p resolution:=56 -p "vocabulary:=[cat, dog]"')
    proc = subprocess.Popen(sourced(workspace, node_cmd), cwd=str(workspace), env=ros_shell_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = []
    reader = threading.Thread(target=lambda: log.extend(proc.stdout), daemon=True)
    reader.start()
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    node = rclpy.create_node('t2d_install_probe', context=context)
    received = []
    try:
        node.create_subscription(Image, '/talk2dino/labels', received.append, qos_profile_sensor_data)
        pub = node.create_publisher(Image, '/t2d_install_test/image', 10)
        executor.add_node(node)
        rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        deadline = time.monotonic() + 120.0
        while not received and time.monotonic() < deadline and proc.poll() is None:
            msg = numpy_to_image(rgb, 'rgb8')
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            executor.spin_once(timeout_sec=0.2)
        assert received, 'no labels from the installed node:\n' + ''.join(log)[-4000:]
        labels = received[0]
        assert (labels.height, labels.width, labels.encoding) == (48, 64, 'mono8')
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        reader.join(timeout=5)
    assert code == 0, ''.join(log)[-4000:]
    assert 'Traceback' not in ''.join(log)


def test_colcon_test_runs_the_fast_suite_against_the_install_tree(workspace):
    """`colcon test` registers one pytest run of test/ (slow tests deselected); a slice of it passes here."""
    import json
    import re
    import shlex

    build = workspace / 'build' / PKG
    listed = run(['ctest', '-N'], cwd=build, env=ros_shell_env(), timeout=60).stdout
    assert 'Total Tests: 1' in listed and 'talk2dino_ros_pytest' in listed, listed
    spec = json.loads(run(['ctest', '--show-only=json-v1'], cwd=build, env=ros_shell_env(), timeout=60).stdout)
    command = spec['tests'][0]['command']
    opts = [c for c in command if c.startswith('PYTEST_ADDOPTS=')]
    assert opts == ["PYTEST_ADDOPTS=-m 'not slow'"], command
    assert str(workspace / 'src' / PKG / 'test') in command, command  # the source tests, on the install tree
    # the registered command, with the slice of the suite this check can afford (the real run is colcon test)
    sliced = [("PYTEST_ADDOPTS=-m 'not slow' -k test_catalog" if c in opts else c)
              for c in command]
    out = run(sourced(workspace, 'cd build/talk2dino_ros && ' + shlex.join(sliced)), cwd=workspace,
              env=ros_shell_env(), timeout=600).stdout
    assert re.search(r'\d+ passed', out) and not re.search(r'\d+ (failed|error)', out), out[-2000:]
    assert 'return code 0' in out


def test_symlink_install_keeps_our_init_next_to_the_generated_modules(tmp_path):
    """`colcon build --symlink-install` (the usual developer build): both install rules become symlinks."""
    pytest.importorskip('colcon_core', reason='colcon is installed by scripts/setup.sh (requirements-dev.txt)')
    ws = make_workspace(tmp_path)
    run(['colcon', 'build', '--symlink-install'], cwd=ws, env=ros_shell_env(), timeout=900)
    site = next((ws / 'install' / PKG / 'lib').glob('python3*/site-packages')) / PKG
    assert (site / '__init__.py').resolve() == (ws / 'src' / PKG / PKG / '__init__.py').resolve()
    assert (site / 'msg' / '_class_info.py').resolve().is_relative_to(ws / 'build' / PKG)
    out = run(sourced(ws, 'python -c "import talk2dino_ros, talk2dino_ros.msg; print(talk2dino_ros.__version__)"'),
              cwd=ws, env=ros_shell_env(), timeout=60)
    assert out.stdout.strip() == __import__('talk2dino_ros').__version__
