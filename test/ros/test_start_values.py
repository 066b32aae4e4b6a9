"""Start values: one rule for every bad value (type, range, choice, cross-check), and every parameter
answered by ROS tools (``ros2 param dump`` asks GetParameters for all names at once)."""
import pytest
from rclpy.parameter import Parameter

from helpers.ros import wait_for
from talk2dino_ros.ros.segment_node import _asks_for_help, main
from talk2dino_ros.ros.start_values import check_start_values

FRONT, REAR = '/front/camera/image_raw', '/rear/camera/image_raw'


@pytest.mark.parametrize('overrides, name, used, says', [
    ({'resolution': 5000}, 'resolution', 448, 'resolution 5000 is outside 28..2048'),
    ({'resolution': 'abc'}, 'resolution', 448, "resolution must be an integer, got 'abc'"),
    ({'overlay_alpha': True}, 'overlay_alpha', 0.5, 'overlay_alpha must be a number'),
    ({'mode': 'fast'}, 'mode', 'whole', "mode 'fast' is not one of slide, whole, squash"),
    ({'vocabulary': 'person'}, 'vocabulary', [], 'vocabulary must be a list of strings'),
    ({'image_topics': [FRONT, REAR], 'camera_names': ['left']}, 'camera_names', [],
     'camera_names has 1 names for 2 image_topics'),
])
def test_every_kind_of_bad_start_value_is_one_line_and_the_default(overrides, name, used, says):
    values, warnings = check_start_values(overrides)
    assert values[name] == used
    assert any(says in line and 'using the default' in line for line in warnings), warnings
    assert len(warnings) == 1


def test_a_camera_listed_twice_is_kept_once_with_its_first_name_and_depth_topic():
    values, warnings = check_start_values({'image_topics': [FRONT, REAR, FRONT], 'camera_names': ['a', 'b', 'c'],
                                           'depth_topics': ['/d1', '/d2', '/d3']})
    assert values['image_topics'] == [FRONT, REAR] and values['camera_names'] == ['a', 'b']
    assert values['depth_topics'] == ['/d1', '/d2']
    assert warnings == [f"image_topics lists one camera twice ({FRONT!r}): one camera, at its first entry"]


def test_good_start_values_are_kept_and_empty_means_unset():
    values, warnings = check_start_values({'max_rate': 5, 'image_topics': [FRONT, REAR], 'colors': None,
                                           'camera_names': ['left', 'right'], 'mode': 'slide'})
    assert warnings == []
    assert values['max_rate'] == 5.0 and isinstance(values['max_rate'], float)  # `:=5` for a double
    assert values['camera_names'] == ['left', 'right'] and values['colors'] == [] and values['vocabulary'] == []


def test_bad_start_values_never_stop_the_node_and_the_parameters_show_what_is_used(make_node, ros_log, capfd):
    node, _, _ = make_node(params={'resolution': 5000, 'max_rate': 'abc', 'image_reliability': 'sometimes',
                                   'image_topics': [FRONT, REAR], 'camera_names': ['left']})
    assert node.get_parameter('resolution').value == 448
    assert node.get_parameter('max_rate').value == 0.0
    # read-only parameters are declared with the default too, so `ros2 param get` tells the truth
    assert node.get_parameter('image_reliability').value == 'best_effort'
    assert node.get_parameter('camera_names').value == []
    assert [(c.name, c.topic) for c in node.cameras] == [('front', FRONT), ('rear', REAR)]
    err = ros_log.text
    assert err.count('bad start value') == 4 and 'Traceback' not in capfd.readouterr().err
    assert 'names derived from image_topics' in err


def test_get_parameters_with_every_name_answers_every_parameter(make_node):
    """What `ros2 param dump` does: list the names, then one GetParameters request for all of them."""
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.srv import GetParameters, ListParameters

    node, probe, _ = make_node()

    def call(srv, name, request):
        client = probe.create_client(srv, f'{node.get_fully_qualified_name()}/{name}')
        assert client.wait_for_service(timeout_sec=10.0)
        future = client.call_async(request)
        return wait_for(lambda: future.done() and future.result(), what=f'{name} answer')
    names = call(ListParameters, 'list_parameters', ListParameters.Request()).result.names
    assert {'vocabulary', 'colors', 'image_topics', 'camera_names'} <= set(names)
    values = call(GetParameters, 'get_parameters', GetParameters.Request(names=names)).values
    assert len(values) == len(names)
    by_name = {n: Parameter.from_parameter_msg(ParameterMsg(name=n, value=v)).value for n, v in zip(names, values)}
    assert by_name['image_topics'] == [] and by_name['vocabulary'] == [] and by_name['resolution'] == 448


def test_help_after_ros_args_prints_usage(capsys):
    assert _asks_for_help(['--ros-args', '--help'])
    assert _asks_for_help(['--ros-args', '-r', '__node:=x', '-h'])
    assert not _asks_for_help(['--ros-args', '-p', 'vocabulary:=[--help]'])
    assert main(['--ros-args', '--help']) == 0
    out = capsys.readouterr().out
    assert out.startswith('usage: segment_node') and 'qos_overrides' in out


def test_vocabulary_unset_then_set_at_runtime(make_node):
    node, _, _ = make_node()
    assert node.get_parameter('vocabulary').value == []
    assert node.set_parameters([Parameter('vocabulary', Parameter.Type.STRING_ARRAY, ['a', 'b'])])[0].successful
    wait_for(lambda: node.legend_state is not None and node.legend_state.names == ('a', 'b'), what='legend')


def test_qos_overrides_reach_the_image_the_vocabulary_and_every_output(make_node, ros_log, capfd):
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    node, _, _ = make_node(params={
        'qos_overrides./image.subscription.reliability': 'reliable',
        'qos_overrides./image.subscription.depth': 2,
        'qos_overrides./t2d/vocab.subscription.depth': 3,
        'qos_overrides./t2d/vocab.subscription_latched.depth': 4,
        'qos_overrides./talk2dino/labels.publisher.depth': 7,
        'qos_overrides./talk2dino/masks.publisher.depth': 6,
        'qos_overrides./talk2dino/class_info.publisher.durability': 'volatile',
        'qos_overrides./talk2dino/overlay.publisher.reliability': 'sometimes',   # bad: default + WARN
    })
    by_topic = {}
    for sub in node.subscriptions:
        by_topic.setdefault(sub.topic_name, []).append(sub.qos_profile)
    image, = by_topic['/image']
    assert image.reliability == ReliabilityPolicy.RELIABLE and image.depth == 2
    assert sorted(q.depth for q in by_topic['/t2d/vocab']) == [3, 4]
    out = node.outputs_for()
    assert out.pubs['labels'].qos_profile.depth == 7 and out.pubs['masks'].qos_profile.depth == 6
    assert out.pubs['class_info'].qos_profile.durability == DurabilityPolicy.VOLATILE
    assert out.pubs['overlay'].qos_profile.reliability == ReliabilityPolicy.RELIABLE
    assert node.get_parameter('qos_overrides./talk2dino/labels.publisher.depth').value == 7
    err = ros_log.text
    assert err.count('qos_overrides./talk2dino/overlay.publisher') == 1 and 'Traceback' not in capfd.readouterr().err
