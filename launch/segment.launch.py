"""Launch the talk2dino segmentation node (plain or lifecycle) and optionally RViz.

    ros2 launch talk2dino_ros segment.launch.py image:=/camera/image_raw vocabulary:="person, car, tree"
    ros2 launch talk2dino_ros segment.launch.py namespace:=front image:=/front/image_raw rviz:=true
    ros2 launch talk2dino_ros segment.launch.py lifecycle:=true autostart:=false   # a lifecycle manager drives it

Arguments: image (input topic), params_file (YAML, default config/params.yaml of the package), vocabulary
(comma-separated; empty = the params file's list), namespace, vocab_topic (where the node's relative ``vocab``
topic is remapped, default /t2d/vocab), use_sim_time, lifecycle (true: segment_lifecycle_node), autostart
(lifecycle only: configure + activate at start), rviz (true: RViz with the package's layout, its topics following
image and namespace; where rviz2 is not installed the launch says what to install and keeps the node running).
Pip-only equivalent (no launch package):
    segment_node --ros-args --params-file config/params.yaml -r image:=/camera/image_raw -r vocab:=/t2d/vocab
"""
import os
import tempfile

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

# share/talk2dino_ros/launch/.. in an install, the repository root in a source checkout
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PARAMS = os.path.join(_PACKAGE_DIR, 'config', 'params.yaml')
RVIZ_TEMPLATE = os.path.join(_PACKAGE_DIR, 'config', 'talk2dino.rviz')
NODE_NAME = 'talk2dino'
TRUE_WORDS = ('true', '1', 'yes', 'on')


def _split_vocabulary(text):
    return [name.strip() for name in text.replace('\n', ',').split(',') if name.strip()]


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


def write_rviz_config(image_topic, namespace, template=RVIZ_TEMPLATE):
    """A copy of the RViz template (temp file) whose displays show ``image_topic`` and the node's outputs."""
    with open(template, encoding='utf-8') as f:
        config = yaml.safe_load(f)
    node_ns = _absolute(NODE_NAME, namespace)
    topics = {'Camera': image_topic, 'Overlay': node_ns + '/overlay', 'Labels': node_ns + '/labels'}
    for display in config['Visualization Manager']['Displays']:
        if display.get('Name') in topics:
            display['Topic']['Value'] = topics[display['Name']]
    handle, path = tempfile.mkstemp(prefix='talk2dino_', suffix='.rviz')
    with os.fdopen(handle, 'w', encoding='utf-8') as f:
        yaml.safe_dump(config, f, default_flow_style=False, sort_keys=False)
    return path


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


def _rviz_actions(context, image, namespace, use_sim_time):
    from launch.actions import LogInfo

    if not _rviz_installed():
        distro = os.environ.get('ROS_DISTRO', '<distro>')
        return [LogInfo(msg=f'rviz:=true but rviz2 is not installed here; the node keeps running. '
                            f'Install it with: sudo apt install ros-{distro}-rviz2')]
    from launch_ros.actions import Node

    config = write_rviz_config(_absolute(image, namespace), namespace)
    return [Node(package='rviz2', executable='rviz2', name='talk2dino_rviz', namespace=namespace,
                 arguments=['-d', config], parameters=[{'use_sim_time': use_sim_time}], output='screen')]


def _nodes(context, *args, **kwargs):
    image = LaunchConfiguration('image').perform(context)
    params_file = LaunchConfiguration('params_file').perform(context)
    vocabulary = _split_vocabulary(LaunchConfiguration('vocabulary').perform(context))
    namespace = LaunchConfiguration('namespace').perform(context)
    vocab_topic = LaunchConfiguration('vocab_topic').perform(context).strip()
    use_sim_time = _flag(context, 'use_sim_time')

    parameters = [params_file]
    if vocabulary:
        parameters.append({'vocabulary': vocabulary})
    if use_sim_time:  # last: wins over the params file
        parameters.append({'use_sim_time': True})
    remappings = [('image', image), ('image/compressed', image + '/compressed')]
    if vocab_topic:
        remappings.append(('vocab', vocab_topic))
    actions = _segment_actions(context, parameters, remappings, namespace)
    if _flag(context, 'rviz'):
        actions += _rviz_actions(context, image, namespace, use_sim_time)
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('image', default_value='/camera/image_raw',
                              description='sensor_msgs/Image topic to segment'),
        DeclareLaunchArgument('params_file', default_value=DEFAULT_PARAMS,
                              description='YAML file with the node parameters'),
        DeclareLaunchArgument('vocabulary', default_value='',
                              description='comma-separated class names (empty: the params file\'s list)'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the node (and RViz)'),
        DeclareLaunchArgument('vocab_topic', default_value='/t2d/vocab',
                              description='topic the node\'s relative vocab topic is remapped to (empty: none)'),
        DeclareLaunchArgument('use_sim_time', default_value='false',
                              description='use /clock (bag replay, simulation)'),
        DeclareLaunchArgument('lifecycle', default_value='false',
                              description='true: the lifecycle node segment_lifecycle_node'),
        DeclareLaunchArgument('autostart', default_value='true',
                              description='lifecycle only: configure and activate at start (false: leave it '
                                          'to a lifecycle manager)'),
        DeclareLaunchArgument('rviz', default_value='false',
                              description='start RViz with the package\'s layout (needs rviz2)'),
        OpaqueFunction(function=_nodes),
    ])
