"""The node's building blocks without a running node: parameters, params.yaml, QoS, outputs, mailbox."""
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from rcl_interfaces.msg import ParameterType
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
from rclpy.validate_topic_name import validate_topic_name

from talk2dino_ros.ros import outputs
from talk2dino_ros.ros.mailbox import LatestMailbox
from talk2dino_ros.ros.parameters import (
    PARAMETERS, SPECS, NodeSettings, descriptor, group_of, validate)
from talk2dino_ros.ros.qos import image_input_qos, latched_qos
from talk2dino_ros.ros.stats import RollingWindow, percentile

ROOT = Path(__file__).resolve().parents[2]


def load_params_yaml():
    data = yaml.safe_load((ROOT / 'config' / 'params.yaml').read_text())
    return data['/**']['ros__parameters']


def test_params_yaml_lists_every_parameter_with_its_default_type_and_valid_value():
    values = load_params_yaml()
    assert set(values) <= set(SPECS), set(values) - set(SPECS)
    # unset string arrays: shown as comments
    assert set(SPECS) - set(values) == {'colors', 'image_topics', 'camera_names', 'depth_topics'}
    for name, value in values.items():
        default = SPECS[name].default
        if default is None:
            assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        else:
            assert type(value) is type(default), name
            if name not in ('vocabulary',) and not name.endswith('_weights'):
                assert value == default, f'{name}: params.yaml {value!r} != declared default {default!r}'
        assert validate(name, value, values) is None, name


def test_every_parameter_is_described_and_ranges_hold_their_defaults():
    for spec in PARAMETERS:
        desc = descriptor(spec)
        assert len(spec.description) > 15, spec.name
        assert spec.group in ('model', 'engine', 'legend', 'output', 'input')
        if spec.float_range:
            lo, hi = spec.float_range
            assert desc.floating_point_range[0].from_value == lo and lo <= spec.default <= hi
        if spec.int_range:
            lo, hi = spec.int_range
            assert desc.integer_range[0].from_value == lo and lo <= spec.default <= hi
        if spec.choices and spec.name != 'device':
            assert spec.default in spec.choices
        if spec.default is None:
            assert desc.type == ParameterType.PARAMETER_STRING_ARRAY
    assert all(SPECS[n].read_only for n in ('image_reliability', 'image_depth', 'compressed_input'))


@pytest.mark.parametrize('name, value, needle', [
    ('method', 'yolo', 'not one of'),
    ('variant', 'vitg', 'not one of'),
    ('device', 'cuda:x', 'not auto, cpu'),
    ('mask_type', 'rle', 'not one of'),
    ('vocabulary', ['', '  '], 'no usable class name'),
    ('colors', ['#00ff00', 'blue'], "'blue' is not #RRGGBB"),
    ('dinov2_weights', '/no/such/file.pth', 'fetch_weights --method talk2dino --variant vitb'),
    ('weights_dir', __file__, 'is a file, not a directory'),
])
def test_validation_reasons(name, value, needle):
    assert needle in validate(name, value, {})


@pytest.mark.parametrize('name, value', [
    ('device', 'cuda:1'), ('device', 'cpu'), ('vocabulary', ['a', '']), ('colors', []),
    ('dinov2_weights', ''), ('method', 'clip_dinoiser'), ('allow_random_weights', True),
    ('weights_dir', '/not/yet/created'),
])
def test_validation_accepts(name, value):
    assert validate(name, value, {}) is None


def test_weight_paths_resolve_to_the_published_files_in_weights_dir(tmp_path):
    from talk2dino_ros.model.pretrained import default_paths

    proj = tmp_path / 'my_proj.pth'
    proj.write_bytes(b'x')
    settings = NodeSettings({'method': 'talk2dino', 'variant': 'vitb', 'weights_dir': str(tmp_path),
                             'dinov2_weights': '~/d.pth', 'proj_weights': str(proj)})
    defaults = default_paths('talk2dino', 'vitb', tmp_path)
    weights = settings.weights()
    assert weights['proj'] == str(proj) and weights['clip'] == str(defaults['clip'])
    assert not weights['dinov2'].startswith('~')
    assert settings.missing_weight_files() == [('dinov2_weights', weights['dinov2']),
                                               ('clip_weights', str(defaults['clip']))]
    defaults['clip'].write_bytes(b'x')
    assert [p for p, _ in settings.missing_weight_files()] == ['dinov2_weights']
    # no published projection for vits: an empty parameter cannot be resolved
    vits = NodeSettings({'method': 'talk2dino', 'variant': 'vits', 'weights_dir': str(tmp_path)})
    assert ('proj_weights', '') in vits.missing_weight_files()
    cd = NodeSettings({'method': 'clip_dinoiser', 'openclip_weights': '/o.bin', 'weights_dir': str(tmp_path)})
    assert set(cd.weights()) == {'openclip', 'clip_dinoiser'} and cd.weights()['openclip'] == '/o.bin'


def test_weights_dir_default_follows_the_fetch_weights_cache():
    from talk2dino_ros.model.pretrained import DEFAULT_WEIGHTS_DIR
    assert NodeSettings({}).weights_dir() == str(DEFAULT_WEIGHTS_DIR)


def test_groups_and_model_key():
    settings = NodeSettings({'method': 'talk2dino'})
    assert group_of(['dinov2_weights', 'pamr', 'max_rate', 'weights_dir']) == {'model', 'legend', 'output'}
    assert settings.model_key() != NodeSettings({**settings.values, 'fp16': True}).model_key()
    assert settings.model_key() == NodeSettings({**settings.values, 'pamr': True}).model_key()
    assert settings.mode == 'whole' and settings.background_enabled  # declared defaults


def test_qos_profiles():
    qos = image_input_qos('best_effort', 3)
    assert qos.reliability == ReliabilityPolicy.BEST_EFFORT and qos.depth == 3
    assert image_input_qos('reliable').reliability == ReliabilityPolicy.RELIABLE
    with pytest.raises(ValueError):
        image_input_qos('sometimes')
    latched = latched_qos()
    assert latched.durability == DurabilityPolicy.TRANSIENT_LOCAL and latched.reliability == ReliabilityPolicy.RELIABLE


def test_mask_topic_names_are_valid_and_unique():
    names = ['red car', 'Red-Car!', '猫', '3d printer', 'a__b', 'x', 'x_5', 'X!', '_', 'Ünïcode']
    topics = outputs.mask_topic_names(names)
    assert sorted(topics.values()) == list(range(1, len(names) + 1))
    assert topics['red_car'] == 1 and topics['red_car_2'] == 2 and topics['class_3'] == 3
    assert topics['c3d_printer'] == 4
    for token in topics:
        validate_topic_name(f'/talk2dino/mask/{token}')  # raises when invalid


def test_label_image_encoding_switch():
    header = None
    small = outputs.label_image(np.array([[0, 255]]), 255, header)
    big = outputs.label_image(np.array([[0, 256]]), 256, header)
    assert (small.encoding, big.encoding) == ('mono8', 'mono16')


def test_class_info_message():
    info = outputs.class_info_msg(None, 7, 'talk2dino', ['a', 'b'], np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]],
                                                                            np.uint8), -1.0)
    assert list(info.class_ids) == [0, 1, 2] and list(info.class_names) == ['background', 'a', 'b']
    assert info.colors[1].r == 1.0 and info.colors[2].b == 1.0 and info.background_threshold == -1.0


def test_mailbox_keeps_only_the_latest_and_counts_drops():
    box = LatestMailbox()
    assert box.take() is None
    assert not box.put(1)
    assert box.put(2) and box.put(3)
    assert box.dropped == 2 and box.take() == 3 and box.take() is None
    assert not box.wait(timeout=0.01)
    box.poke()
    assert box.wait(timeout=0.01) and not box.wait(timeout=0.01)


def test_mailbox_wakes_a_waiting_thread_and_close_releases_it():
    box = LatestMailbox()
    got = []

    def taker():
        while box.wait(timeout=2.0) and not box.closed:
            item = box.take()
            if item is not None:
                got.append(item)
    thread = threading.Thread(target=taker)
    thread.start()
    box.put('frame')
    deadline = time.monotonic() + 2.0
    while not got and time.monotonic() < deadline:
        time.sleep(0.005)
    box.close()
    thread.join(timeout=2.0)
    assert got == ['frame'] and not thread.is_alive()


def test_rolling_window_rate_and_percentile():
    now = [0.0]
    window = RollingWindow(window=5.0, clock=lambda: now[0])
    for i in range(11):
        now[0] = i * 0.1
        window.add(i)
    assert window.rate() == pytest.approx(10.0)
    now[0] = 100.0
    assert window.rate() == 0.0 and window.total == 11
    assert percentile([5, 1, 3], 50) == 3 and percentile([], 50) is None


def test_interface_doc_lists_every_parameter_and_topic():
    doc = (ROOT / 'README.md').read_text()
    for spec in PARAMETERS:
        assert f'`{spec.name}`' in doc, spec.name
    from talk2dino_ros.contract.outputs import node_outputs

    for spec in node_outputs():  # the outputs come from the contract (test/contract compares the whole rows)
        assert f'`{spec.readme_topic()}`' in doc, spec.name
    for topic in ('/t2d/vocab', '~/set_vocabulary', 'image/compressed', '~/locate'):  # inputs, services
        assert f'`{topic}`' in doc, topic
