"""launch/segment.launch.py: with launch_ros when installed, else executed against recording stand-ins."""
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

from talk2dino_ros.contract.docs import rviz_displays
from talk2dino_ros.contract.parameters import PARAMETERS

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = ROOT / 'launch' / 'segment.launch.py'
BASE_ARGUMENTS = {'image', 'params_file', 'rviz', 'namespace', 'vocab_topic', 'use_sim_time', 'lifecycle', 'autostart'}
ARGUMENTS = BASE_ARGUMENTS | {spec.name for spec in PARAMETERS}


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
    # no vocabulary remap: the node's own relative t2d/vocab is /t2d/vocab here, /<ns>/t2d/vocab in a namespace
    assert not [r for r in node['remappings'] if 'vocab' in r[0]]
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
    assert [d['Topic']['Value'] for d in displays] == ['/cam/front/image', '/front/talk2dino/labels',
                                                        '/front/talk2dino/overlay']
    template = yaml.safe_load((ROOT / 'config' / 'talk2dino.rviz').read_text())['Visualization Manager']['Displays']
    assert [d['Topic']['Value'] for d in template] == ['/camera/image_raw', '/talk2dino/labels', '/talk2dino/overlay']


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
    assert not [r for r in node.kwargs['remappings'] if 'vocab' in r[0]]
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
    assert ('t2d/vocab', '/robot/vocab') in node.kwargs['remappings']
    _, (node,) = run(launch_module)
    assert not [r for r in node.kwargs['remappings'] if 'vocab' in r[0]]  # the node's own relative t2d/vocab


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
    assert [d['Topic']['Value'] for d in displays] == ['/camera/color', '/talk2dino/labels', '/talk2dino/overlay']
    assert rviz.kwargs['parameters'] == [{'use_sim_time': False}]


def test_every_parameter_is_an_argument_left_to_the_params_file_unless_given(launch_module):
    args, (node,) = run(launch_module)
    for spec in PARAMETERS:
        assert args[spec.name]['default_value'] == '' and spec.description in args[spec.name]['description']
    assert node.kwargs['parameters'] == [args['params_file']['default_value']]  # nothing overrides the file
    _, (node,) = run(launch_module, allow_random_weights='true', weights_dir='/w', resolution='640',
                     overlay_alpha='0.25', image_topics='/front/image_raw, /rear/image_raw', camera_names='[f, r]',
                     fp16='false')
    assert node.kwargs['parameters'][1] == {
        'allow_random_weights': True, 'weights_dir': '/w', 'resolution': 640, 'overlay_alpha': 0.25, 'fp16': False,
        'image_topics': ['/front/image_raw', '/rear/image_raw'], 'camera_names': ['f', 'r']}


@pytest.mark.parametrize('name, text, words', [('resolution', 'abc', 'not an integer'),
                                               ('overlay_alpha', 'half', 'not a number'),
                                               ('pamr', 'maybe', 'not true or false')])
def test_a_bad_argument_is_one_line_naming_it(launch_module, name, text, words):
    with pytest.raises(ValueError) as info:
        run(launch_module, **{name: text})
    assert str(info.value) == f'launch argument {name}:={text!r} is {words}'


def _rviz_topics(rviz):
    displays = yaml.safe_load(Path(rviz.kwargs['arguments'][1]).read_text())['Visualization Manager']['Displays']
    return [(d['Name'], d['Topic']['Value']) for d in displays]


def test_rviz_shows_every_camera_of_image_topics(launch_module):
    _, (_, rviz) = run(launch_module, rviz='true', namespace='robot',
                       image_topics='/front/camera/image_raw, /rear/camera/image_raw')
    assert _rviz_topics(rviz) == [
        ('front Camera', '/front/camera/image_raw'), ('front Labels', '/robot/talk2dino/front/labels'),
        ('front Overlay', '/robot/talk2dino/front/overlay'),
        ('rear Camera', '/rear/camera/image_raw'), ('rear Labels', '/robot/talk2dino/rear/labels'),
        ('rear Overlay', '/robot/talk2dino/rear/overlay')]


def test_rviz_reads_the_cameras_from_the_params_file(launch_module, tmp_path):
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'image_topics': ['/left/image', '/right/image'], 'camera_names': ['l', 'r']}}}))
    _, (_, rviz) = run(launch_module, rviz='true', params_file=str(params))
    assert [t for _, t in _rviz_topics(rviz)] == ['/left/image', '/talk2dino/l/labels', '/talk2dino/l/overlay',
                                                  '/right/image', '/talk2dino/r/labels', '/talk2dino/r/overlay']


def test_the_rviz_template_shows_what_the_output_table_says():
    template = yaml.safe_load((ROOT / 'config' / 'talk2dino.rviz').read_text())
    assert template['Visualization Manager']['Displays'] == rviz_displays([('', '/camera/image_raw')], '/talk2dino')
