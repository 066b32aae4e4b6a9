"""No-input help: the diagnosis of a silent input topic (pure logic) and the silence timer."""
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from talk2dino_ros.ros.input_watch import (
    Diagnosis, Endpoint, GraphSnapshot, SilenceTimer, diagnose, incompatibility)

BEST_EFFORT = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
RELIABLE = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
TOPICS = (('/camera/image_raw', ('sensor_msgs/msg/Image',)),
          ('/camera/image_raw/compressed', ('sensor_msgs/msg/CompressedImage',)),
          ('/talk2dino/image', ('sensor_msgs/msg/Image',)),
          ('/rosout', ('rcl_interfaces/msg/Log',)))


def test_wrong_topic_lists_the_image_topics_that_exist_with_a_remap_hint():
    d = diagnose(GraphSnapshot('/talk2dino/image', (), TOPICS), [BEST_EFFORT], flag='image')
    assert d.publisher_count == 0 and d.incompatible == ()
    assert d.image_topics == ('/camera/image_raw', '/camera/image_raw/compressed')
    line = d.line('no images for 5 s')
    assert line.startswith('no images for 5 s on /talk2dino/image: 0 publisher(s)')
    assert '-r image:=/camera/image_raw' in line
    assert d.values['input_topic'] == '/talk2dino/image' and d.values['input_publishers'] == '0'
    assert d.values['image_topics'] == '/camera/image_raw, /camera/image_raw/compressed'


def test_a_camera_of_image_topics_points_to_the_parameter():
    d = diagnose(GraphSnapshot('/front/image', (), TOPICS), [BEST_EFFORT], flag='/front/image',
                 wanted_type='sensor_msgs/msg/Image')
    line = d.line('no images for 5 s')
    assert 'set the image_topics parameter, e.g. /camera/image_raw instead of /front/image' in line
    assert '-r ' not in line


def test_no_image_topic_at_all_says_so():
    d = diagnose(GraphSnapshot('/talk2dino/image', (), TOPICS[3:]), [BEST_EFFORT], flag='image')
    assert 'no topic of that type exists' in d.line('x') and d.values['image_topics'] == ''


def test_incompatible_publisher_names_node_and_policy():
    snap = GraphSnapshot('/talk2dino/image', (Endpoint('/cam_driver', BEST_EFFORT),), TOPICS)
    d = diagnose(snap, [RELIABLE], flag='image')
    assert d.publisher_count == 1
    assert len(d.incompatible) == 1 and d.incompatible[0].startswith('/cam_driver offers best_effort/volatile')
    assert 'reliable' in d.incompatible[0] and 'Best effort publisher' in d.incompatible[0]
    assert d.values['input_qos_incompatible'] == d.incompatible[0]


def test_a_publisher_matched_by_any_of_our_subscriptions_is_fine():
    snap = GraphSnapshot('/t2d/vocab', (Endpoint('/cli', RELIABLE), Endpoint('/latcher', LATCHED)), ())
    assert diagnose(snap, [LATCHED, RELIABLE]).incompatible == ()
    # the latched subscription alone cannot take the volatile publisher
    only_latched = diagnose(snap, [LATCHED])
    assert len(only_latched.incompatible) == 1 and 'Volatile publisher' in only_latched.incompatible[0]
    best_effort = GraphSnapshot('/t2d/vocab', (Endpoint('/be', BEST_EFFORT),), ())
    assert len(diagnose(best_effort, [LATCHED, RELIABLE]).incompatible) == 1


def test_incompatibility_is_none_for_compatible_profiles():
    assert incompatibility(RELIABLE, BEST_EFFORT) is None and incompatibility(LATCHED, RELIABLE) is None


def test_silence_timer_logs_once_then_throttled_and_resets_on_input():
    now = [0.0]
    timer = SilenceTimer(after_s=5.0, repeat_s=60.0, clock=lambda: now[0])
    assert not timer.silent() and not timer.should_log()
    now[0] = 5.0
    assert timer.silent() and timer.should_log()
    now[0] = 30.0
    assert timer.silent() and not timer.should_log()  # throttled
    now[0] = 65.1
    assert timer.should_log()
    timer.event()
    assert not timer.silent()
    now[0] = 70.1
    assert timer.should_log()  # a new silence is reported afresh


def test_diagnosis_line_is_one_line():
    d = Diagnosis('/x', 2, ('/a offers best_effort/volatile, we request reliable/volatile (...)',), (), 'hint')
    assert '\n' not in d.line('no images') and d.line('no images').endswith('; hint')


def test_own_outputs_are_not_offered_and_the_hint_picks_the_subscribed_type():
    topics = TOPICS + (('/talk2dino/labels', ('sensor_msgs/msg/Image',)),)
    d = diagnose(GraphSnapshot('/talk2dino/image/compressed', (), topics), [BEST_EFFORT],
                 flag='image/compressed', own_prefix='/talk2dino/', wanted_type='sensor_msgs/msg/CompressedImage')
    assert '/talk2dino/labels' not in d.image_topics
    assert '-r image/compressed:=/camera/image_raw/compressed' in d.hint


def test_type_name():
    from sensor_msgs.msg import CompressedImage, Image
    from talk2dino_ros.ros.input_watch import type_name
    assert type_name(Image) == 'sensor_msgs/msg/Image' and type_name(CompressedImage).endswith('/CompressedImage')


def test_a_matching_publisher_whose_frames_never_arrive_names_the_qos_cause():
    snap = GraphSnapshot('/talk2dino/image', (Endpoint('/cam_driver', RELIABLE),), TOPICS)
    line = diagnose(snap, [BEST_EFFORT], flag='image').line('no images for 5 s')
    assert 'a publisher matches but no frame arrives' in line and 'image_reliability: reliable' in line
    shallow = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    line = diagnose(snap, [shallow], flag='image').line('no images for 5 s')
    assert 'raise it' in line and 'best-effort' not in line
    # the vocabulary watch (no flag) says nothing about frames
    assert diagnose(snap, [BEST_EFFORT]).hint == ''
