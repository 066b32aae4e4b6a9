"""The node's backend / precision / exported_model parameters: an exported backend runs frames, an unusable
choice is one load error line (tiny random weights)."""
import os

import numpy as np
import pytest

from helpers.ros import wait_for
from talk2dino_ros.ros.image_conversion import image_to_numpy, numpy_to_image
from talk2dino_ros.ros.parameters import SPECS, validate


def test_backend_parameters_are_declared_with_their_choices():
    assert SPECS['backend'].default == 'torch' and 'openvino' in SPECS['backend'].choices
    assert SPECS['precision'].default == 'fp32' and SPECS['precision'].choices == ('fp32', 'bf16', 'fp16')
    assert validate('backend', 'tflite', {}) is not None
    assert 'export_model' in validate('exported_model', '/nonexistent/file.onnx', {})
    assert validate('exported_model', '', {}) is None


def _start(make_node, tiny_weights, vocabulary=('sky', 'road'), **params):
    from talk2dino_ros.ros.segmentation_node import default_segmenter_factory

    weights_dir = str(next(iter(tiny_weights.values())).parent)
    return make_node(params={'weights_dir': weights_dir, 'allow_random_weights': True, 'resolution': 56,
                             'device': 'cpu', **params},
                     factory=default_segmenter_factory, vocabulary=list(vocabulary))


def test_node_runs_frames_on_an_exported_backend(make_node, tiny_weights):
    pytest.importorskip('onnxruntime')
    node, probe, _ = _start(make_node, tiny_weights, backend='onnxruntime')
    labels = probe.send(numpy_to_image(np.zeros((20, 30, 3), np.uint8), 'rgb8', probe.next_header()), timeout=60.0)
    assert (labels.height, labels.width) == (20, 30) and image_to_numpy(labels).max() <= 2
    assert node.legend_state.segmenter.exported is not None
    assert any(name.endswith('.onnx') for name in os.listdir(next(iter(tiny_weights.values())).parent / 'exported'))


def test_unusable_backend_is_one_load_error_line(make_node, tiny_weights):
    node, _, _ = _start(make_node, tiny_weights, vocabulary=(), backend='tensorrt', precision='fp16')
    wait_for(lambda: node.load_error, timeout=30.0, what='the refused load')
    assert 'tensorrt needs an NVIDIA GPU' in node.load_error and '\n' not in node.load_error
