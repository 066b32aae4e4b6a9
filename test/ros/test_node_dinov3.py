"""The node with a DINOv3 variant: the catalog's files found in weights_dir, loaded by the real loaders."""
import numpy as np

from helpers.ros import wait_for
from talk2dino_ros.ros.image_conversion import image_to_numpy, numpy_to_image


def test_node_runs_a_dinov3_variant_from_weights_dir(make_node, tmp_path):
    from talk2dino_ros.model.random_weights import write_random_weights
    from talk2dino_ros.ros.engine_host import default_segmenter_factory

    folder = tmp_path / 'dinov3'
    write_random_weights(folder, 'talk2dino', 'tiny', variant='dinov3_vitb')  # the published file names
    node, probe, _ = make_node(params={'variant': 'dinov3_vitb', 'weights_dir': str(folder), 'device': 'cpu',
                                       'allow_random_weights': True, 'mode': 'whole', 'resolution': 64},
                               factory=default_segmenter_factory, vocabulary=['cat', 'dog'])
    wait_for(lambda: node.segmenter is not None, what='model load')
    assert node.segmenter.method.patch_size == 16
    assert node.segmenter.method.backbone.arch.family == 'dinov3'
    rgb = np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    labels = probe.send(numpy_to_image(rgb, 'rgb8', probe.next_header(frame_id='cam')), timeout=60.0)
    assert (labels.height, labels.width) == (45, 70) and image_to_numpy(labels).max() <= 2
