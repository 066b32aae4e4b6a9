"""launch/segment.launch.py: with launch_ros when installed, else executed against recording stand-ins."""
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = ROOT / 'launch' / 'segment.launch.py'
ARGUMENTS = {'image', 'params_file', 'vocabulary', 'rviz', 'namespace', 'vocab_topic', 'use_sim_time', 'lifecycle', 'autostart'}


class Recorded:
    """Stands in for any launch action / substitution: remembers its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(Recorded):
    def perform(self, context):
        return context[self.args[0]]


def recorded(name):
    return type(name, (Recorded,), {})


def stand_in_modules():
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        return mod
    transition = types.SimpleNamespace(TRANSITION_CONFIGURE=1, TRANSITION_ACTIVATE=3)
    return {
        'launch': module('launch', LaunchDescription=lambda entities: list(entities)),
        'launch.actions': module('launch.actions', **{n: recorded(n) for n in (
            'DeclareLaunchArgument', 'OpaqueFunction', 'LogInfo', 'EmitEvent', 'RegisterEventHandler')}),
        'launch.events': module('launch.events', matches_action=lambda action: ('matches', action)),
        'launch.substitutions': module('launch.substitutions', LaunchConfiguration=LaunchConfiguration),
        'launch_ros': module('launch_ros'),
        'launch_ros.actions': module('launch_ros.actions', Node=recorded('Node'), LifecycleNode=recorded('LifecycleNode')),
        'launch_ros.event_handlers': module('launch_ros.event_handlers', OnStateTransition=recorded('OnStateTransition')),
        'launch_ros.events': module('launch_ros.events'),
        'launch_ros.events.lifecycle': module('launch_ros.events.lifecycle', ChangeState=recorded('ChangeState')),
        'lifecycle_msgs': module('lifecycle_msgs'),
        'lifecycle_msgs.msg': module('lifecycle_msgs.msg', Transition=transition),
    }


@pytest.fixture
def launch_module(monkeypatch):
    for name, mod in stand_in_modules().items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location('segment_launch_under_test', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, '_rviz_installed', lambda: True)
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
    assert set(args) == ARGUMENTS
    assert all(kw.get('description') for kw in args.values())
    assert len(nodes) == 1
    node = nodes[0].kwargs
    assert (node['package'], node['executable'], node['name']) == ('talk2dino_ros', 'segment_node', 'talk2dino')
    assert node['parameters'] == [args['params_file']['default_value']]
    assert ('image', '/camera/image_raw') in node['remappings']
    assert ('image/compressed', '/camera/image_raw/compressed') in node['remappings']
    assert ('vocab', '/t2d/vocab') in node['remappings']  # the node's relative topic, documented default
    assert (args['lifecycle']['default_value'], args['use_sim_time']['default_value']) == ('false', 'false')


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
    # the RViz topics follow image:= and namespace:=
    assert [d['Topic']['Value'] for d in displays] == ['/cam/front/image', '/front/talk2dino/overlay',
                                                        '/front/talk2dino/labels']
    template = yaml.safe_load((ROOT / 'config' / 'talk2dino.rviz').read_text())['Visualization Manager']['Displays']
    assert [d['Topic']['Value'] for d in template] == ['/camera/image_raw', '/talk2dino/overlay', '/talk2dino/labels']


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
    assert {a.name for a in declared} == ARGUMENTS
    context = LaunchContext()
    for arg in declared:
        context.launch_configurations[arg.name] = arg.default_value[0].perform(context)
    context.launch_configurations['rviz'] = 'true'
    opaque = [e for e in description.entities if isinstance(e, OpaqueFunction)][0]
    actions = opaque.execute(context)
    assert actions[0].node_package == 'talk2dino_ros' and actions[0].node_executable == 'segment_node'
    if module._rviz_installed():
        assert [a.node_package for a in actions] == ['talk2dino_ros', 'rviz2']
    else:
        assert 'sudo apt install ros-' in actions[1].msg[0].perform(context)
    context.launch_configurations['lifecycle'] = 'true'
    from launch_ros.actions import LifecycleNode
    lifecycle = [a for a in opaque.execute(context) if isinstance(a, LifecycleNode)]
    assert len(lifecycle) == 1 and lifecycle[0].node_executable == 'segment_lifecycle_node'


def test_lifecycle_autostart_configures_then_activates(launch_module):
    _, actions = run(launch_module, lifecycle='true')
    kinds = [type(a).__name__ for a in actions]
    assert kinds == ['RegisterEventHandler', 'LifecycleNode', 'EmitEvent']
    handler, node, configure = actions
    assert (node.kwargs['package'], node.kwargs['executable'], node.kwargs['name']) == \
        ('talk2dino_ros', 'segment_lifecycle_node', 'talk2dino')
    assert ('vocab', '/t2d/vocab') in node.kwargs['remappings']
    assert configure.kwargs['event'].kwargs == {'lifecycle_node_matcher': ('matches', node), 'transition_id': 1}
    on_inactive = handler.args[0].kwargs
    assert on_inactive['target_lifecycle_node'] is node
    assert (on_inactive['start_state'], on_inactive['goal_state']) == ('configuring', 'inactive')
    assert on_inactive['entities'][0].kwargs['event'].kwargs['transition_id'] == 3  # activate


def test_lifecycle_without_autostart_leaves_it_to_a_manager(launch_module):
    _, actions = run(launch_module, lifecycle='true', autostart='false')
    assert [type(a).__name__ for a in actions] == ['LifecycleNode']


def test_use_sim_time_and_vocab_topic(launch_module):
    _, (node,) = run(launch_module, use_sim_time='true', vocab_topic='/robot/vocab')
    assert node.kwargs['parameters'][-1] == {'use_sim_time': True}
    assert ('vocab', '/robot/vocab') in node.kwargs['remappings']
    _, (node,) = run(launch_module, vocab_topic='')
    assert not [r for r in node.kwargs['remappings'] if r[0] == 'vocab']  # the node's own relative topic


def test_rviz_missing_says_what_to_install_and_keeps_the_node(launch_module, monkeypatch):
    monkeypatch.setattr(launch_module, '_rviz_installed', lambda: False)
    monkeypatch.setenv('ROS_DISTRO', 'jazzy')
    _, actions = run(launch_module, rviz='true')
    assert [type(a).__name__ for a in actions] == ['Node', 'LogInfo']
    assert actions[0].kwargs['executable'] == 'segment_node'
    assert 'sudo apt install ros-jazzy-rviz2' in actions[1].kwargs['msg']


def test_rviz_topics_without_namespace(launch_module):
    _, (_, rviz) = run(launch_module, rviz='true', image='camera/color')
    displays = yaml.safe_load(Path(rviz.kwargs['arguments'][1]).read_text())['Visualization Manager']['Displays']
    assert [d['Topic']['Value'] for d in displays] == ['/camera/color', '/talk2dino/overlay', '/talk2dino/labels']
    assert rviz.kwargs['parameters'] == [{'use_sim_time': False}]
