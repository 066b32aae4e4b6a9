"""The lifecycle variant of the node: what each transition makes and releases (fake engine, real rclpy)."""
import gc
import time
import weakref

import numpy as np
import pytest
import torch
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from helpers.ros import NODE, Probe, wait_for

from helpers.segmenters import FakeFactory, FakeSegmenter, expected_labels
from talk2dino_ros.msg import ClassInfo
from talk2dino_ros.ros.engine_host import EngineHost
from talk2dino_ros.ros.image_conversion import image_to_numpy, numpy_to_image
from talk2dino_ros.ros.qos import latched_qos

SUCCESS = TransitionCallbackReturn.SUCCESS


@pytest.fixture
def make_lifecycle(ros_context, spin, tmp_path):
    """make(params=None, factory=None) -> (SegmentationLifecycleNode, Probe, factory), spinning."""
    from talk2dino_ros.model.pretrained import default_paths
    from talk2dino_ros.ros.lifecycle_node import SegmentationLifecycleNode

    weights_dir = tmp_path / 'weights'
    weights_dir.mkdir()
    for path in default_paths('talk2dino', 'vitb', weights_dir).values():
        path.write_bytes(b'stand-in')

    def make(params=None, factory=None):
        params = {'weights_dir': str(weights_dir), 'vocabulary': ['cat', 'dog'], **(params or {})}
        overrides = [Parameter(k, Parameter.Type.STRING_ARRAY, v) if isinstance(v, list) else Parameter(k, value=v)
                     for k, v in params.items()]
        factory = factory or FakeFactory()
        node = SegmentationLifecycleNode(segmenter_factory=factory, context=ros_context,
                                         parameter_overrides=overrides)
        probe = Probe(ros_context)
        probe.listen(NODE + '/labels', Image)
        probe.listen(NODE + '/class_info', ClassInfo, latched_qos())
        spin(node, probe)
        return node, probe, factory
    return make


def scene(h=6, w=8):
    return np.random.default_rng(h * w).integers(20, 256, (h, w, 3), dtype=np.uint8)


def subscribers_of(node, topic):
    return len(node.get_subscriptions_info_by_topic(topic))


def publishers_of(node, topic):
    return len(node.get_publishers_info_by_topic(topic))


def no_publishers(node, topic):
    """True once nobody publishes ``topic``. Waited for: the graph is the whole test domain's, and a node of
    an earlier test in this process (same name) can take a moment to leave it."""
    wait_for(lambda: publishers_of(node, topic) == 0, what=f'no publisher of {topic}')
    return True


def frames_get_no_output(probe, node, count=4):
    """Publish ``count`` frames; none may come out (and the engine is not called)."""
    headers = [probe.next_header() for _ in range(count)]
    for header in headers:
        probe.image_pub.publish(numpy_to_image(scene(), 'rgb8', header))
        time.sleep(0.05)
    time.sleep(0.2)
    return all(probe.output_for(NODE + '/labels', h) is None for h in headers)


def test_transitions_load_subscribe_pause_and_free(make_lifecycle):
    node, probe, factory = make_lifecycle()
    # unconfigured: nothing loaded, nothing published or subscribed
    assert node.segmenter is None and factory.loads == [] and node.legend_state is None
    assert no_publishers(node, NODE + '/labels') and subscribers_of(node, '/image') == 0
    assert 'unconfigured' in node.model_error

    # configure: model and vocabulary, publishers; still no camera subscription
    assert node.trigger_configure() == SUCCESS
    assert len(factory.loads) == 1 and node.segmenter is factory.loads[0]
    assert node.legend_state.names == ('cat', 'dog')
    assert publishers_of(node, NODE + '/labels') == 1 and subscribers_of(node, '/image') == 0
    assert frames_get_no_output(probe, node)

    # activate: subscribes, publishes the legend and the labels of every frame
    assert node.trigger_activate() == SUCCESS and node.active
    wait_for(lambda: subscribers_of(node, '/image') == 1, what='image subscription')
    rgb = scene()
    header = probe.next_header()
    labels = probe.send(numpy_to_image(rgb, 'rgb8', header))
    assert labels.header == header
    np.testing.assert_array_equal(image_to_numpy(labels), expected_labels(rgb, 2, True))
    info = wait_for(lambda: probe.got(NODE + '/class_info'), what='legend')[-1]
    assert info.vocabulary_version == node.legend_state.version

    # deactivate: unsubscribed, the engine is never called
    calls = node.segmenter.segment_calls
    assert node.trigger_deactivate() == SUCCESS and not node.active
    wait_for(lambda: subscribers_of(node, '/image') == 0, what='unsubscribed')
    assert frames_get_no_output(probe, node) and node.segmenter.segment_calls == calls

    # activate again: the same model, frames flow again
    assert node.trigger_activate() == SUCCESS
    probe.send(numpy_to_image(scene(), 'rgb8', probe.next_header()))
    assert len(factory.loads) == 1

    # deactivate + cleanup: the model is released (nothing keeps it alive), publishers gone
    assert node.trigger_deactivate() == SUCCESS
    model = weakref.ref(factory.loads[0])
    factory.loads.clear()
    assert node.trigger_cleanup() == SUCCESS
    gc.collect()
    assert node.segmenter is None and node.legend_state is None and model() is None
    assert no_publishers(node, NODE + '/labels')
    assert 'unconfigured' in node.model_error

    # configure again: a fresh model with the same vocabulary
    assert node.trigger_configure() == SUCCESS
    assert len(factory.loads) == 1 and node.legend_state.names == ('cat', 'dog')
    assert node.trigger_shutdown() == SUCCESS and node.segmenter is None


def test_configure_fails_with_missing_weights_and_succeeds_once_fixed(make_lifecycle, tmp_path, ros_log):
    node, probe, factory = make_lifecycle(params={'dinov2_weights': str(tmp_path / 'missing.pth'),
                                                  'allow_runtime_weight_changes': True})
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert node.segmenter is None and factory.loads == []
    assert 'missing.pth' in node.model_error and 'configure failed' in node.model_error
    assert no_publishers(node, NODE + '/labels')
    assert 'weight file not found' in ros_log.text
    good = tmp_path / 'dinov2.pth'
    good.write_bytes(b'x')
    assert node.set_parameters([Parameter('dinov2_weights', value=str(good))])[0].successful
    assert node.trigger_configure() == SUCCESS and node.segmenter is not None


def test_lifecycle_services_drive_it_like_a_lifecycle_manager(make_lifecycle):
    node, probe, factory = make_lifecycle()
    change = probe.create_client(ChangeState, NODE + '/change_state')
    get = probe.create_client(GetState, NODE + '/get_state')
    assert change.wait_for_service(timeout_sec=5.0) and get.wait_for_service(timeout_sec=5.0)

    def call(client, request):
        future = client.call_async(request)
        return wait_for(lambda: future.done() and future.result(), what='lifecycle service')

    def transition(label):
        return call(change, ChangeState.Request(transition=Transition(label=label))).success

    assert call(get, GetState.Request()).current_state.label == 'unconfigured'
    assert transition('configure') and transition('activate')
    assert call(get, GetState.Request()).current_state.label == 'active'
    probe.send(numpy_to_image(scene(), 'rgb8', probe.next_header()))
    assert transition('deactivate') and transition('cleanup')
    assert call(get, GetState.Request()).current_state.label == 'unconfigured'
    assert node.segmenter is None


def test_release_hands_cuda_memory_back(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, 'empty_cache', lambda: emptied.append(True))

    class CudaFake(FakeSegmenter):
        def __init__(self, settings):
            super().__init__(settings)
            self.device = torch.device('cuda', 0)
    from talk2dino_ros.ros.parameters import NodeSettings
    host = EngineHost(lambda settings: CudaFake(settings))
    settings = NodeSettings({'dinov2_weights': __file__, 'clip_weights': __file__, 'proj_weights': __file__})
    assert host.load(settings).ok
    assert host.release('cleanup') and emptied == [True] and host.segmenter is None
    assert host.model_error == 'cleanup'
    assert not host.release('again') and emptied == [True]  # nothing loaded: nothing to free


def test_a_failed_configure_is_an_error_and_is_repaired_by_parameters_while_unconfigured(make_lifecycle, tmp_path,
                                                                                          ros_log):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    node, probe, _ = make_lifecycle(params={'dinov2_weights': str(tmp_path / 'missing.pth'),
                                            'diagnostics_period': 0.1})
    probe.listen('/diagnostics', DiagnosticArray)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    err = ros_log.text
    assert f'ros2 param set {NODE} dinov2_weights' in err  # what works now, without a restart

    def level():
        msgs = probe.got('/diagnostics')
        return msgs and msgs[-1].status[0].level == DiagnosticStatus.ERROR and msgs[-1].status[0]
    status = wait_for(level, what='an ERROR in /diagnostics')
    assert 'configure failed' in status.message and 'missing.pth' in status.message
    good = tmp_path / 'dinov2.pth'
    good.write_bytes(b'x')
    # no allow_runtime_weight_changes: an unconfigured lifecycle node still takes a path
    assert node.set_parameters([Parameter('dinov2_weights', value=str(good))])[0].successful
    assert node.trigger_configure() == SUCCESS
    wait_for(lambda: probe.got('/diagnostics')[-1].status[0].level == DiagnosticStatus.OK, what='OK again')
    # configured: paths are fixed again
    assert not node.set_parameters([Parameter('dinov2_weights', value=str(good))])[0].successful
