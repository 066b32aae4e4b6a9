"""Fixtures for the field-readiness tests (bags, LabelInfo, soak, faults)."""
import os
import random
import sys
from pathlib import Path

import pytest

os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random().randint(0, 101)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope='session')
def small_segmenter(tiny_weights):
    """Tiny random-weight Talk2DINO on CPU, one pass at a small resolution (fast), no background class."""
    from talk2dino_ros.model.random_weights import tiny_segmenter_config
    from talk2dino_ros.model.segmenter import Segmenter

    return Segmenter.from_config(tiny_segmenter_config(tiny_weights, mode='whole', resolution=56))
