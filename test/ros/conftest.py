"""Fixtures for the node tests: a SegmentationNode with the fake engine and a probe, spinning."""
import pytest


@pytest.fixture
def make_node(ros_context, spin, tmp_path):
    """make(params=None, factory=None, vocabulary=None) -> (SegmentationNode, Probe, factory), spinning."""
    from rclpy.parameter import Parameter

    from sensor_msgs.msg import Image

    from helpers.ros import NODE, Probe, wait_for
    from helpers.segmenters import FakeFactory
    from talk2dino_ros.model.pretrained import default_paths
    from talk2dino_ros.ros.segmentation_node import SegmentationNode

    # stand-in files where the node looks for the published weights (the fake engine never reads them)
    weights_dir = tmp_path / 'weights'
    weights_dir.mkdir()
    for method in ('talk2dino', 'clip_dinoiser'):
        for path in default_paths(method, 'vitb', weights_dir).values():
            path.write_bytes(b'stand-in')

    def make(params=None, factory=None, vocabulary=None):
        overrides = []
        params = {'weights_dir': str(weights_dir), **(params or {})}
        for key, value in params.items():
            if isinstance(value, list):
                overrides.append(Parameter(key, Parameter.Type.STRING_ARRAY, value))
            else:
                overrides.append(Parameter(key, value=value))
        factory = factory or FakeFactory()
        # no remap: the node's relative t2d/vocab is the documented /t2d/vocab at the root
        node = SegmentationNode(segmenter_factory=factory, context=ros_context, parameter_overrides=overrides)
        probe = Probe(ros_context)
        probe.listen(NODE + '/labels', Image)
        spin(node, probe)
        if vocabulary:
            wait_for(lambda: node.segmenter is not None, what='model load')
            assert node.apply_vocabulary(vocabulary)[0]
        return node, probe, factory
    return make


