"""package.xml through rosdep's own resolver, offline, for ROS 2 Jazzy and Kilted on Ubuntu 24.04.

The rules under ``rosdistro/`` are copied facts from the public ros/rosdistro repository (keys and targets).
The README's ``rosdep update`` / ``rosdep install`` lines are run as written, with ``--simulate`` and the
target platform added.
"""
import re
import shutil

import pytest

from helpers.install import DISTROS, OS_NAME, ROOT, make_workspace, readme_commands, rosdep_env, run

pytest.importorskip('rosdep2', reason='rosdep is installed by scripts/setup.sh (requirements-dev.txt)')


def package_keys():
    from catkin_pkg.package import parse_package
    pkg = parse_package(str(ROOT))
    deps = (pkg.build_depends + pkg.buildtool_depends + pkg.build_export_depends + pkg.buildtool_export_depends
            + pkg.exec_depends + pkg.test_depends + pkg.doc_depends)
    return sorted({d.name for d in deps})


@pytest.fixture(scope='module')
def rosdep(tmp_path_factory):
    """(env, workspace) with the rosdep cache updated by the README's own `rosdep update` line."""
    base = tmp_path_factory.mktemp('rosdep')
    env = rosdep_env(base)
    updates = readme_commands('rosdep update')
    assert updates == [['rosdep', 'update']], updates
    out = run(updates[0], cwd=base, env=env, timeout=120)
    assert 'Add distro "jazzy"' in out.stdout and 'Add distro "kilted"' in out.stdout, out.stdout
    return env, make_workspace(base)


def resolve(env, distro, keys):
    """key -> list of system packages, from `rosdep resolve` (rosdep's own resolver)."""
    out = run(['rosdep', 'resolve', *keys, f'--os={OS_NAME}', f'--rosdistro={distro}'], cwd=ROOT, env=env,
              check=False)
    assert out.returncode == 0, f'rosdep could not resolve every key for {distro}:\n{out.stdout}\n{out.stderr}'
    resolved, key = {}, None
    for line in out.stdout.splitlines():
        m = re.fullmatch(r'#ROSDEP\[(.+)\]', line.strip())
        if m:
            key = m.group(1)
            resolved[key] = []
        elif line.strip() and not line.startswith('#') and key is not None:
            resolved[key].extend(line.split())
    return resolved


@pytest.mark.parametrize('distro', DISTROS)
def test_every_package_xml_key_resolves(rosdep, distro):
    env, _ = rosdep
    keys = package_keys()
    resolved = resolve(env, distro, keys)
    assert set(resolved) == set(keys)
    targets = {t for pkgs in resolved.values() for t in pkgs}
    assert 'python3-torch' not in targets, 'torch must come from pip (the distribution build is old and CPU-only)'
    assert f'ros-{distro}-rviz2' not in targets, 'RViz must stay optional'
    assert resolved['vision_msgs'] == [f'ros-{distro}-vision-msgs']
    assert resolved['rclpy'] == [f'ros-{distro}-rclpy']
    assert resolved['rosidl_default_generators'] == [f'ros-{distro}-rosidl-default-generators']
    assert resolved['python3-opencv'] == ['python3-opencv']


@pytest.mark.parametrize('distro', DISTROS)
def test_rules_know_the_keys_we_refuse(rosdep, distro):
    """The checks above can fail: the rules do map the refused keys, and the launch file's hint is right."""
    env, _ = rosdep
    resolved = resolve(env, distro, ['python3-torch', 'rviz2'])
    assert resolved == {'python3-torch': ['python3-torch'], 'rviz2': [f'ros-{distro}-rviz2']}


@pytest.mark.parametrize('distro', DISTROS)
def test_readme_rosdep_install_plan(rosdep, distro):
    env, ws = rosdep
    installs = readme_commands('rosdep install')
    assert installs == [['rosdep', 'install', '--from-paths', 'src', '--ignore-src', '-y']], installs
    out = run(installs[0] + ['--simulate', '--reinstall', f'--os={OS_NAME}', f'--rosdistro={distro}'],
              cwd=ws, env=env, timeout=120)
    plan = set(re.findall(r'apt-get install -y (\S+)', out.stdout))
    assert {f'ros-{distro}-vision-msgs', f'ros-{distro}-rclpy', f'ros-{distro}-std-srvs',
            f'ros-{distro}-lifecycle-msgs', 'python3-numpy', 'python3-opencv'} <= plan, out.stdout
    assert 'python3-torch' not in plan and f'ros-{distro}-rviz2' not in plan, out.stdout
    assert not any('talk2dino' in p for p in plan), out.stdout


def test_a_nested_interface_package_key_does_not_resolve(rosdep, tmp_path):
    """What the old layout did (a talk2dino_ros_msgs key nested out of rosdep's sight) fails here."""
    env, _ = rosdep
    src = tmp_path / 'src' / 'talk2dino_ros'
    src.mkdir(parents=True)
    xml = (ROOT / 'package.xml').read_text(encoding='utf-8')
    shutil.copy(ROOT / 'CMakeLists.txt', src)
    (src / 'package.xml').write_text(
        xml.replace('<exec_depend>rclpy</exec_depend>',
                    '<exec_depend>rclpy</exec_depend>\n  <exec_depend>talk2dino_ros_msgs</exec_depend>'),
        encoding='utf-8')
    out = run(['rosdep', 'install', '--from-paths', 'src', '--ignore-src', '-y', '--simulate',
               f'--os={OS_NAME}', '--rosdistro=jazzy'], cwd=tmp_path, env=env, check=False)
    assert out.returncode != 0
    assert 'Cannot locate rosdep definition for [talk2dino_ros_msgs]' in out.stdout + out.stderr
