"""The ROS 2 package layout: package.xml (format 3), entry points, data files, the package's own interfaces."""
import ast
import importlib
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# REP 149 (format 3) element order of <package> children
FORMAT3_ORDER = ['name', 'version', 'description', 'maintainer', 'license', 'url', 'author', 'DEPS',
                 'group_depend', 'member_of_group', 'export']
DEPS = {'build_depend', 'build_export_depend', 'buildtool_depend', 'buildtool_export_depend', 'exec_depend',
        'depend', 'doc_depend', 'test_depend', 'conflict', 'replace'}


@pytest.mark.parametrize('pkg_dir', ['.'])
def test_package_xml_is_valid_format3(pkg_dir):
    from catkin_pkg.package import parse_package
    import xml.etree.ElementTree as ET
    pkg = parse_package(str(ROOT / pkg_dir))
    pkg.validate()
    assert pkg.package_format == 3
    assert re.fullmatch(r'[a-z](_?[a-z0-9]+)*', pkg.name)
    root = ET.parse(ROOT / pkg_dir / 'package.xml').getroot()
    assert root.attrib['format'] == '3'
    ranks = [FORMAT3_ORDER.index('DEPS' if c.tag in DEPS else c.tag) for c in root]
    assert ranks == sorted(ranks), 'package.xml children out of the REP 149 order'


def test_one_package_builds_its_own_interfaces():
    from catkin_pkg.package import parse_package
    pkg = parse_package(str(ROOT))
    assert pkg.get_build_type() == 'ament_cmake'
    assert 'rosidl_interface_packages' in {g.name for g in pkg.member_of_groups}
    assert {'ament_cmake', 'ament_cmake_python', 'rosidl_default_generators'} <= {d.name for d in pkg.buildtool_depends}
    names = {d.name for d in pkg.exec_depends}
    assert {'rclpy', 'sensor_msgs', 'std_msgs', 'vision_msgs', 'std_srvs', 'lifecycle_msgs',
            'rosidl_default_runtime'} <= names
    # torch comes from pip in a venv (the distribution's python3-torch is an old CPU build); RViz is optional
    all_keys = {d.name for d in pkg.build_depends + pkg.buildtool_depends + pkg.exec_depends + pkg.test_depends}
    assert not {'python3-torch', 'python3-torchvision', 'rviz2'} & all_keys
    assert 'talk2dino_ros_msgs' not in all_keys
    cmake = (ROOT / 'CMakeLists.txt').read_text()
    assert 'rosidl_generate_interfaces(${PROJECT_NAME}' in cmake
    for rel in ['msg/ClassInfo.msg', 'msg/ClassMasks.msg', 'msg/ObjectLocation.msg', 'msg/LocatedClass.msg',
                'srv/SetVocabulary.srv', 'srv/Locate.srv']:
        assert f'"{rel}"' in cmake, rel
    # no package reads files outside its own folder
    assert '..' not in cmake.replace('...', '')


def test_no_nested_ros_package():
    nested = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith('.') and d not in ('build', 'install', 'log')]
        if 'package.xml' in files and Path(folder) != ROOT and 'COLCON_IGNORE' not in files:
            nested.append(folder)
    assert not nested, f'colcon/rosdep/bloom would not see nested packages: {nested}'


def _console_scripts():
    tree = ast.parse((ROOT / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'CONSOLE_SCRIPTS':
            return ast.literal_eval(node.value)
    raise AssertionError('CONSOLE_SCRIPTS not found in setup.py')


@pytest.mark.parametrize('name,target', sorted(_console_scripts().items()))
def test_every_entry_point_resolves(name, target):
    module, func = target.split(':')
    mod = importlib.import_module(module)
    assert callable(getattr(mod, func)), f'{name} -> {target} is not callable'


def test_layout_files_exist():
    for rel in ['resource/talk2dino_ros', 'setup.cfg', 'launch/segment.launch.py', 'config/params.yaml',
                'msg/ClassInfo.msg', 'msg/ClassMasks.msg', 'srv/SetVocabulary.srv',
                'CMakeLists.txt', '.ci/run', 'scripts/setup.sh', 'scripts/test.sh']:
        assert (ROOT / rel).exists(), rel
    assert 'install_scripts=$base/lib/talk2dino_ros' in (ROOT / 'setup.cfg').read_text()


def test_generated_messages_import():
    from talk2dino_ros.msg import ClassInfo, ClassMasks
    from talk2dino_ros.msg import LocatedClass, ObjectLocation
    from talk2dino_ros.srv import Locate, SetVocabulary
    info = ClassInfo(class_ids=[0, 1], class_names=['background', 'door'])
    found = LocatedClass(name='door', objects=[ObjectLocation(has_3d=True, score=0.5)])
    assert found.objects[0].center.x == 0.0 and Locate.Request(names=['door']).camera == ''
    assert list(info.class_ids) == [0, 1]
    assert ClassMasks().mask_type == ''
    assert SetVocabulary.Request(names=['a']).names == ['a']


def test_model_package_never_imports_rclpy():
    for path in (ROOT / 'talk2dino_ros' / 'model').rglob('*.py'):
        text = path.read_text()
        assert not re.search(r'^\s*(import|from)\s+rclpy', text, re.M), f'{path} imports rclpy'


def test_timm_and_open_clip_import_with_cpu_torch():
    import talk2dino_ros.model  # noqa: F401  (installs the torchvision workaround)
    import open_clip
    import timm
    assert timm.__version__ and open_clip.__version__
