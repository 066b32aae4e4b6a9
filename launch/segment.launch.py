"""Launch the talk2dino segmentation node (plain or lifecycle) and optionally RViz.

    ros2 launch talk2dino_ros segment.launch.py image:=/camera/image_raw vocabulary:="person, car, tree"
    ros2 launch talk2dino_ros segment.launch.py namespace:=front image:=/front/image_raw rviz:=true
    ros2 launch talk2dino_ros segment.launch.py lifecycle:=true autostart:=false   # a lifecycle manager drives it
    ros2 launch talk2dino_ros segment.launch.py image_topics:="/front/image_raw, /rear/image_raw" rviz:=true

Arguments: image (input topic), params_file (YAML, default config/params.yaml of the package), namespace,
vocab_topic (where the node's relative ``t2d/vocab`` topic is remapped; default none: /t2d/vocab, or
/<namespace>/t2d/vocab under a namespace), use_sim_time, lifecycle
(true: segment_lifecycle_node), autostart (lifecycle only: configure + activate at start), rviz (true: RViz with
the package's layout, one set of displays per camera; where rviz2 is not installed the launch says what to
install and keeps the node running), and **every node parameter** under its own name (generated from the
parameter table, talk2dino_ros/contract/parameters.py): left empty it is not passed, so params_file's value
holds; given, it overrides params_file. Lists (vocabulary, colors, image_topics, camera_names) are
comma-separated or a YAML list.
Pip-only equivalent (no launch package):
    segment_node --ros-args --params-file config/params.yaml -r image:=/camera/image_raw
"""
import os
import tempfile

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from talk2dino_ros.contract.docs import rviz_config
from talk2dino_ros.contract.parameters import PARAMETERS, SPECS

# share/talk2dino_ros/launch/.. in an install, the repository root in a source checkout
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PARAMS = os.path.join(_PACKAGE_DIR, 'config', 'params.yaml')
RVIZ_TEMPLATE = os.path.join(_PACKAGE_DIR, 'config', 'talk2dino.rviz')
NODE_NAME = 'talk2dino'
TRUE_WORDS = ('true', '1', 'yes', 'on')
FALSE_WORDS = ('false', '0', 'no', 'off')


def _split_list(text):
    """``a, b`` / new lines / a YAML list ``[a, b]`` -> ['a', 'b'] (empty entries dropped)."""
    text = text.strip()
    if text.startswith('['):
        loaded = yaml.safe_load(text)
        if isinstance(loaded, list):
            return [str(v).strip() for v in loaded if str(v).strip()]
    return [name.strip() for name in text.replace('\n', ',').split(',') if name.strip()]


def parameter_value(name, text):
    """A launch argument's text as the value of node parameter ``name`` (typed by the parameter table).

    Raises ValueError with one line naming the argument when the text does not fit the parameter's type.
    """
    default = SPECS[name].default
    if default is None:
        return _split_list(text)
    if isinstance(default, bool):
        word = text.strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise ValueError(f'launch argument {name}:={text!r} is not true or false')
    if isinstance(default, (int, float)):
        kind = type(default)
        try:
            return kind(text.strip()) if kind is float else int(text.strip())
        except ValueError:
            raise ValueError(f'launch argument {name}:={text!r} is not a{"n integer" if kind is int else " number"}'
                             ) from None
    return text


def parameter_overrides(context):
    """{name: value} of every parameter launch argument that was given (the empty ones are left to params_file)."""
    out = {}
    for spec in PARAMETERS:
        text = LaunchConfiguration(spec.name).perform(context)
        if text.strip():
            out[spec.name] = parameter_value(spec.name, text)
    return out


def _flag(context, name):
    return LaunchConfiguration(name).perform(context).strip().lower() in TRUE_WORDS


def _absolute(name, namespace):
    """The fully qualified topic a relative ``name`` gets in ``namespace`` (absolute names stay)."""
    if name.startswith('/'):
        return name
    return '/' + '/'.join(part for part in (namespace.strip('/'), name) if part)


def _rviz_installed():
    """Whether the rviz2 package is in the ament index of this environment."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return False
    try:
        get_package_share_directory('rviz2')
    except (PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH at all
        return False
    return True


def write_rviz_config(cameras, namespace, template=RVIZ_TEMPLATE):
    """A copy of the RViz template (temp file) with displays for ``cameras`` ((name, absolute image topic);
    name '' = the single camera) and the outputs the output table shows in RViz."""
    with open(template, encoding='utf-8') as f:
        config = rviz_config(yaml.safe_load(f), cameras, _absolute(NODE_NAME, namespace))
    handle, path = tempfile.mkstemp(prefix='talk2dino_', suffix='.rviz')
    with os.fdopen(handle, 'w', encoding='utf-8') as f:
        yaml.safe_dump(config, f, default_flow_style=False, sort_keys=False)
    return path


def _file_parameters(params_file):
    """The node's ros__parameters in ``params_file`` (under /**, the node name or its full name); {} if none."""
    try:
        with open(params_file, encoding='utf-8') as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return {}
    values = {}
    for key, section in data.items():
        if str(key).lstrip('/').split('/')[-1] in ('**', NODE_NAME) and isinstance(section, dict):
            values.update(section.get('ros__parameters') or {})
    return values


def rviz_cameras(image, namespace, values):
    """(name, absolute topic) of every camera the node will have, from image_topics / camera_names in
    ``values`` (launch arguments over the params file); one camera on ``image`` when image_topics is empty."""
    from talk2dino_ros.ros.cameras import CameraConfigError, configure_cameras

    topics = values.get('image_topics') or []
    if not topics:
        return [('', _absolute(image, namespace))]
    try:
        cameras = configure_cameras(topics, values.get('camera_names') or [])
    except CameraConfigError:  # the node refuses these with the reason; RViz then shows the topics as given
        return [(f'camera{i}', _absolute(t, namespace)) for i, t in enumerate(topics)]
    return [(c.name, _absolute(c.topic, namespace)) for c in cameras]


def _segment_actions(context, parameters, remappings, namespace):
    """The segmentation node: plain, or lifecycle with optional configure + activate at start."""
    from launch_ros.actions import Node

    common = dict(package='talk2dino_ros', name=NODE_NAME, namespace=namespace, parameters=parameters,
                  remappings=remappings, output='screen', emulate_tty=True)
    if not _flag(context, 'lifecycle'):
        return [Node(executable='segment_node', **common)]

    from launch.actions import EmitEvent, RegisterEventHandler
    from launch.events import matches_action
    from launch_ros.actions import LifecycleNode
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from lifecycle_msgs.msg import Transition

    node = LifecycleNode(executable='segment_lifecycle_node', **common)
    if not _flag(context, 'autostart'):
        return [node]

    def change(transition):
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition))
    # activate once configuring has ended in "inactive" (a failed configure stays unconfigured, logged by the node)
    activate = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state='configuring', goal_state='inactive',
        entities=[change(Transition.TRANSITION_ACTIVATE)]))
    return [activate, node, change(Transition.TRANSITION_CONFIGURE)]


def _rviz_actions(context, cameras, namespace, use_sim_time):
    from launch.actions import LogInfo

    if not _rviz_installed():
        distro = os.environ.get('ROS_DISTRO', '<distro>')
        return [LogInfo(msg=f'rviz:=true but rviz2 is not installed here; the node keeps running. '
                            f'Install it with: sudo apt install ros-{distro}-rviz2')]
    from launch_ros.actions import Node

    config = write_rviz_config(cameras, namespace)
    return [Node(package='rviz2', executable='rviz2', name='talk2dino_rviz', namespace=namespace,
                 arguments=['-d', config], parameters=[{'use_sim_time': use_sim_time}], output='screen')]


def _nodes(context, *args, **kwargs):
    image = LaunchConfiguration('image').perform(context)
    params_file = LaunchConfiguration('params_file').perform(context)
    namespace = LaunchConfiguration('namespace').perform(context)
    vocab_topic = LaunchConfiguration('vocab_topic').perform(context).strip()
    use_sim_time = _flag(context, 'use_sim_time')
    overrides = parameter_overrides(context)

    parameters = [params_file]
    if overrides:  # after the file: a given argument wins
        parameters.append(overrides)
    if use_sim_time:  # last: wins over the params file
        parameters.append({'use_sim_time': True})
    remappings = [('image', image), ('image/compressed', image + '/compressed')]
    if vocab_topic:
        remappings.append(('t2d/vocab', vocab_topic))
    actions = _segment_actions(context, parameters, remappings, namespace)
    if _flag(context, 'rviz'):
        cameras = rviz_cameras(image, namespace, {**_file_parameters(params_file), **overrides})
        actions += _rviz_actions(context, cameras, namespace, use_sim_time)
    return actions


def _parameter_arguments():
    """One launch argument per node parameter, empty by default (= the params file's value)."""
    arguments = []
    for spec in PARAMETERS:
        if spec.default is None:
            hint = 'comma-separated or [a, b]'
        else:
            hint = f'default {str(spec.default).lower() if isinstance(spec.default, bool) else spec.default!r}'
        arguments.append(DeclareLaunchArgument(
            spec.name, default_value='',
            description=f'{spec.description} ({hint}; empty: the params file\'s value)'))
    return arguments


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('image', default_value='/camera/image_raw',
                              description='sensor_msgs/Image topic to segment'),
        DeclareLaunchArgument('params_file', default_value=DEFAULT_PARAMS,
                              description='YAML file with the node parameters'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the node (and RViz)'),
        DeclareLaunchArgument('vocab_topic', default_value='',
                              description='topic the node\'s relative t2d/vocab topic is remapped to (empty: '
                                          'none, so /t2d/vocab, or /<namespace>/t2d/vocab under a namespace)'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='use /clock (bag replay, simulation)'),
        DeclareLaunchArgument('lifecycle', default_value='false',
                              description='true: the lifecycle node segment_lifecycle_node'),
        DeclareLaunchArgument('autostart', default_value='true',
                              description='lifecycle only: configure and activate at start (false: leave it '
                                          'to a lifecycle manager)'),
        DeclareLaunchArgument('rviz', default_value='false',
                              description='start RViz with the package\'s layout (needs rviz2)'),
        *_parameter_arguments(),
        OpaqueFunction(function=_nodes),
    ])
