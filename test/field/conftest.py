"""Fixtures for the field-readiness tests (bags, LabelInfo, soak, faults)."""
import pytest


@pytest.fixture(scope='session')
def small_segmenter(tiny_weights):
    """Tiny random-weight Talk2DINO on CPU, one pass at a small resolution (fast), no background class."""
    from talk2dino_ros.model.random_weights import tiny_segmenter_config
    from talk2dino_ros.model.segmenter import Segmenter

    return Segmenter.from_config(tiny_segmenter_config(tiny_weights, mode='whole', resolution=56))
