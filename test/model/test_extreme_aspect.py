"""Extreme aspect ratios (1x10000 and the like) segment in every mode instead of failing in OpenCV."""
import numpy as np
import pytest

from talk2dino_ros.model.random_weights import tiny_segmenter_config, write_random_weights
from talk2dino_ros.model.segmenter import Segmenter
from talk2dino_ros.model.windows import rescale_size


def test_rescale_size_keeps_at_least_one_pixel():
    assert rescale_size(1, 10000) == (1, 2048)       # mmcv's rounding would give 0 rows
    assert rescale_size(10000, 1) == (2048, 1)
    assert rescale_size(2, 16384) == (1, 2048)
    assert rescale_size(375, 500) == (448, 597)      # ordinary sizes unchanged


@pytest.fixture(scope='module')
def segmenters(tmp_path_factory, tiny_weights):
    cd = write_random_weights(tmp_path_factory.mktemp('cd'), method='clip_dinoiser', width='tiny')
    out = {}
    for method, paths in (('talk2dino', tiny_weights), ('clip_dinoiser', cd)):
        seg = Segmenter.from_config(tiny_segmenter_config(paths, method=method))
        seg.set_vocabulary(['sky', 'road'])
        out[method] = seg
    return out


@pytest.mark.parametrize('method', ['talk2dino', 'clip_dinoiser'])
@pytest.mark.parametrize('mode', ['slide', 'whole', 'squash'])
@pytest.mark.parametrize('shape', [(1, 10000), (10000, 1), (1, 1), (3, 5000)])
def test_extreme_shapes_segment_at_their_own_size(segmenters, method, mode, shape):
    seg = segmenters[method]
    seg.with_options(mode=mode)
    image = np.random.default_rng(0).integers(0, 256, shape + (3,), dtype=np.uint8)
    result = seg.segment(image)
    assert result.labels.shape == shape
    assert result.scores.shape == (2,) + shape and np.isfinite(result.scores).all()
