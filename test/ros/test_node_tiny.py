"""The node with the real engine (tiny random weights in the official formats) through rclpy pub/sub.

Needs the lead's ``talk2dino_ros.model.segmenter`` / ``random_weights`` and the ``tiny_weights``
fixture; skipped with a reason until they exist.
"""
import numpy as np
import pytest

from helpers.ros import NODE, wait_for
from talk2dino_ros.ros.image_conversion import image_to_numpy, numpy_to_image
from talk2dino_ros.ros.qos import latched_qos


@pytest.fixture
def tiny_factory(request):
    pytest.importorskip('talk2dino_ros.model.segmenter', reason='the engine (segmenter.py) is not there yet')
    random_weights = pytest.importorskip('talk2dino_ros.model.random_weights',
                                         reason='random_weights.py is not there yet')
    try:
        paths = request.getfixturevalue('tiny_weights')
    except pytest.FixtureLookupError:
        pytest.skip('the tiny_weights fixture (test/conftest.py) is not there yet')
    from talk2dino_ros.model.segmenter import Segmenter
    from talk2dino_ros.ros.segmentation_node import inference_options

    def factory(settings):
        config = random_weights.tiny_segmenter_config(
            paths, mode=settings.mode, resolution=int(settings.resolution), options=inference_options(settings))
        return Segmenter.from_config(config)
    return factory


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_tiny_engine_end_to_end(make_node, tiny_factory, mode):
    from sensor_msgs.msg import Image
    from talk2dino_ros.msg import ClassInfo

    node, probe, _ = make_node(params={'resolution': 56, 'mode': mode, 'allow_random_weights': True},
                               factory=tiny_factory, vocabulary=['cat', 'dog', 'tree'])
    probe.listen(NODE + '/class_info', ClassInfo, latched_qos())
    probe.listen(NODE + '/confidence', Image)
    probe.listen(NODE + '/overlay', Image)
    out = node.outputs_for()
    wait_for(lambda: out.pubs['confidence'].get_subscription_count() and out.pubs['overlay'].get_subscription_count(),
             what='subscriptions')
    rgb = np.random.default_rng(0).integers(0, 256, (37, 61, 3), dtype=np.uint8)
    for encoding, pixels in (('rgb8', rgb), ('bgr8', np.ascontiguousarray(rgb[:, :, ::-1]))):
        header = probe.next_header(frame_id=encoding)
        labels = probe.send(numpy_to_image(pixels, encoding, header), timeout=60.0)
        assert labels.header == header and (labels.height, labels.width, labels.encoding) == (37, 61, 'mono8')
        values = image_to_numpy(labels)
        assert values.max() <= 3
        conf = wait_for(lambda: probe.output_for(NODE + '/confidence', header), what='confidence')
        assert (conf.height, conf.width, conf.encoding) == (37, 61, '32FC1')
        assert np.isfinite(image_to_numpy(conf)).all()
        overlay = wait_for(lambda: probe.output_for(NODE + '/overlay', header), what='overlay')
        assert (overlay.height, overlay.width, overlay.encoding) == (37, 61, 'rgb8')
        from talk2dino_ros.outputs.banner import BANNER_RGB

        # random test weights: the node's own overlay carries the banner (the legend starts below it)
        assert (image_to_numpy(overlay)[0] == BANNER_RGB).all(axis=1).mean() > 0.5
    # the same image in both colour orders gives the same labels
    all_labels = [image_to_numpy(m) for m in probe.got(NODE + '/labels')[-2:]]
    np.testing.assert_array_equal(all_labels[0], all_labels[1])
    info = wait_for(lambda: probe.got(NODE + '/class_info'), what='class_info')[-1]
    assert list(info.class_names) == ['background', 'cat', 'dog', 'tree']
    assert info.vocabulary_version == node.legend_state.version


@pytest.fixture
def tiny_dir(request):
    pytest.importorskip('talk2dino_ros.model.random_weights', reason='random_weights.py is not there yet')
    try:
        paths = request.getfixturevalue('tiny_weights')
    except pytest.FixtureLookupError:
        pytest.skip('the tiny_weights fixture (test/conftest.py) is not there yet')
    return paths


def test_default_factory_loads_from_weights_dir_and_survives_a_corrupt_file(make_node, tiny_dir, tmp_path):
    """The production path: no injected factory, files found by name in weights_dir."""
    from talk2dino_ros.ros.segmentation_node import default_segmenter_factory

    weights_dir = str(next(iter(tiny_dir.values())).parent)
    node, probe, _ = make_node(params={'weights_dir': weights_dir, 'allow_random_weights': True,
                                       'allow_runtime_weight_changes': True,
                                       'resolution': 56, 'device': 'cpu'},
                               factory=default_segmenter_factory, vocabulary=['sky', 'road'])
    header = probe.next_header()
    labels = probe.send(numpy_to_image(np.zeros((20, 30, 3), np.uint8), 'rgb8', header), timeout=60.0)
    assert (labels.height, labels.width) == (20, 30) and image_to_numpy(labels).max() <= 2
    model = node.legend_state.segmenter

    corrupt = tmp_path / 'vitb_mlp_infonce.pth'
    corrupt.write_bytes(open(tiny_dir['proj'], 'rb').read()[:100])  # truncated checkpoint
    from rclpy.parameter import Parameter
    result = node.set_parameters([Parameter('proj_weights', value=str(corrupt))])[0]
    assert result.successful
    wait_for(lambda: node.load_error, timeout=30.0, what='the failed load')
    assert str(corrupt) in node.load_error, node.load_error
    assert node.legend_state.segmenter is model and node.model_error == ''
    labels = probe.send(numpy_to_image(np.zeros((20, 30, 3), np.uint8), 'rgb8', probe.next_header()),
                        timeout=30.0)  # the previous model still runs
    assert (labels.height, labels.width) == (20, 30)
