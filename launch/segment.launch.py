"""Launch the talk2dino segmentation node (and optionally RViz).

    ros2 launch talk2dino_ros segment.launch.py image:=/camera/image_raw vocabulary:="person, car, tree"
    ros2 launch talk2dino_ros segment.launch.py params_file:=/path/params.yaml rviz:=true namespace:=front

Arguments: image (input topic), params_file (YAML, default config/params.yaml of the package),
vocabulary (comma-separated; empty = the params file's list), rviz (true|false), namespace.
Pip-only equivalent (no launch package):
    segment_node --ros-args --params-file config/params.yaml -r image:=/camera/image_raw
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

# share/talk2dino_ros/launch/.. in an install, the repository root in a source checkout
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PARAMS = os.path.join(_PACKAGE_DIR, 'config', 'params.yaml')
RVIZ_CONFIG = os.path.join(_PACKAGE_DIR, 'config', 'talk2dino.rviz')


def _split_vocabulary(text):
    return [name.strip() for name in text.replace('\n', ',').split(',') if name.strip()]


def _nodes(context, *args, **kwargs):
    image = LaunchConfiguration('image').perform(context)
    params_file = LaunchConfiguration('params_file').perform(context)
    vocabulary = _split_vocabulary(LaunchConfiguration('vocabulary').perform(context))
    namespace = LaunchConfiguration('namespace').perform(context)
    rviz = LaunchConfiguration('rviz').perform(context).strip().lower() in ('true', '1', 'yes')

    parameters = [params_file]
    if vocabulary:
        parameters.append({'vocabulary': vocabulary})
    actions = [Node(
        package='talk2dino_ros', executable='segment_node', name='talk2dino', namespace=namespace,
        parameters=parameters,
        remappings=[('image', image), ('image/compressed', image + '/compressed')],
        output='screen', emulate_tty=True)]
    if rviz:
        actions.append(Node(package='rviz2', executable='rviz2', name='talk2dino_rviz', namespace=namespace,
                            arguments=['-d', RVIZ_CONFIG], output='screen'))
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('image', default_value='/camera/image_raw',
                              description='sensor_msgs/Image topic to segment'),
        DeclareLaunchArgument('params_file', default_value=DEFAULT_PARAMS,
                              description='YAML file with the node parameters'),
        DeclareLaunchArgument('vocabulary', default_value='',
                              description='comma-separated class names (empty: the params file\'s list)'),
        DeclareLaunchArgument('rviz', default_value='false', description='start RViz with talk2dino.rviz'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the node'),
        OpaqueFunction(function=_nodes),
    ])
