"""launch/segment.launch.py: with launch_ros when installed, else executed against recording stand-ins."""
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = ROOT / 'launch' / 'segment.launch.py'


class Recorded:
    """Stands in for any launch action / substitution: remembers its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(Recorded):
    def perform(self, context):
        return context[self.args[0]]


def stand_in_modules():
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        return mod
    return {
        'launch': module('launch', LaunchDescription=lambda entities: list(entities)),
        'launch.actions': module('launch.actions', DeclareLaunchArgument=type('DeclareLaunchArgument', (Recorded,), {}),
                                 OpaqueFunction=type('OpaqueFunction', (Recorded,), {})),
        'launch.substitutions': module('launch.substitutions', LaunchConfiguration=LaunchConfiguration),
        'launch_ros': module('launch_ros'),
        'launch_ros.actions': module('launch_ros.actions', Node=type('Node', (Recorded,), {})),
    }


@pytest.fixture
def launch_module(monkeypatch):
    for name, mod in stand_in_modules().items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location('segment_launch_under_test', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(module, **overrides):
    entities = module.generate_launch_description()
    args = {e.args[0]: e.kwargs for e in entities if type(e).__name__ == 'DeclareLaunchArgument'}
    context = {name: kw['default_value'] for name, kw in args.items()}
    context.update(overrides)
    opaque = [e for e in entities if type(e).__name__ == 'OpaqueFunction']
    assert len(opaque) == 1
    return args, opaque[0].kwargs['function'](context)


def test_arguments_and_defaults(launch_module):
    args, nodes = run(launch_module)
    assert set(args) == {'image', 'params_file', 'vocabulary', 'rviz', 'namespace'}
    assert all(kw.get('description') for kw in args.values())
    assert len(nodes) == 1
    node = nodes[0].kwargs
    assert (node['package'], node['executable'], node['name']) == ('talk2dino_ros', 'segment_node', 'talk2dino')
    assert node['parameters'] == [args['params_file']['default_value']]
    assert ('image', '/camera/image_raw') in node['remappings']
    assert ('image/compressed', '/camera/image_raw/compressed') in node['remappings']


def test_params_file_default_exists_and_parses(launch_module):
    args, _ = run(launch_module)
    path = Path(args['params_file']['default_value'])
    assert path.resolve() == (ROOT / 'config' / 'params.yaml').resolve()
    assert 'ros__parameters' in yaml.safe_load(path.read_text())['/**']


def test_executable_is_a_console_script():
    setup_source = (ROOT / 'setup.py').read_text()
    assert "'segment_node': 'talk2dino_ros.ros.segment_node:main'" in setup_source
    from talk2dino_ros.ros import segment_node
    assert callable(segment_node.main)


def test_vocabulary_namespace_image_and_rviz(launch_module):
    _, nodes = run(launch_module, vocabulary='person,  car\n, ,tree', namespace='front', rviz='true',
                   image='/cam/front/image')
    segment, rviz = nodes
    assert segment.kwargs['parameters'][1] == {'vocabulary': ['person', 'car', 'tree']}
    assert segment.kwargs['namespace'] == 'front'
    assert ('image', '/cam/front/image') in segment.kwargs['remappings']
    assert rviz.kwargs['package'] == 'rviz2' and rviz.kwargs['arguments'][0] == '-d'
    rviz_file = Path(rviz.kwargs['arguments'][1])
    assert rviz_file.is_file()
    displays = yaml.safe_load(rviz_file.read_text())['Visualization Manager']['Displays']
    assert [d['Topic']['Value'] for d in displays] == ['/camera/image_raw', '/talk2dino/overlay', '/talk2dino/labels']


def test_with_launch_ros():
    pytest.importorskip('launch_ros', reason='launch_ros is not installable from pip (apt ROS 2 only)')
    from launch import LaunchContext, LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    spec = importlib.util.spec_from_file_location('segment_launch_real', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    declared = [e for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    assert {a.name for a in declared} == {'image', 'params_file', 'vocabulary', 'rviz', 'namespace'}
    context = LaunchContext()
    for arg in declared:
        context.launch_configurations[arg.name] = arg.default_value[0].perform(context)
    context.launch_configurations['rviz'] = 'true'
    opaque = [e for e in description.entities if isinstance(e, OpaqueFunction)][0]
    actions = opaque.execute(context)
    assert [a.node_package for a in actions] == ['talk2dino_ros', 'rviz2']
