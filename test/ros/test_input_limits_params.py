"""Node parameters for hardening: file paths fixed at runtime unless allowed, the name and pixel limits."""
from rclpy.parameter import Parameter

from talk2dino_ros.ros.image_conversion import DEFAULT_MAX_INPUT_PIXELS
from talk2dino_ros.ros.parameters import PATH_PARAM_NAMES, SPECS, validate, validate_changes
from talk2dino_ros.ros.vocabulary import DEFAULT_MAX_CLASSES


def _defaults():
    return {name: spec.default for name, spec in SPECS.items()}


def test_path_parameters_are_refused_at_runtime_by_default(tmp_path):
    real = tmp_path / 'ViT-B-16.pt'
    real.write_bytes(b'x')
    values = _defaults()
    assert {'weights_dir', 'clip_weights', 'dinov2_weights', 'proj_weights'} <= PATH_PARAM_NAMES
    for name in sorted(PATH_PARAM_NAMES):
        value = str(tmp_path) if name == 'weights_dir' else str(real)
        reasons = validate_changes([Parameter(name, value=value)], values)
        assert len(reasons) == 1 and 'allow_runtime_weight_changes' in reasons[0] and name in reasons[0]
    # other parameters are unaffected
    assert validate_changes([Parameter('resolution', value=224)], values) == []


def test_the_switch_is_read_only_and_lets_path_changes_through(tmp_path):
    real = tmp_path / 'ViT-B-16.pt'
    real.write_bytes(b'x')
    assert SPECS['allow_runtime_weight_changes'].read_only and SPECS['allow_runtime_weight_changes'].default is False
    values = {**_defaults(), 'allow_runtime_weight_changes': True}
    assert validate_changes([Parameter('clip_weights', value=str(real))], values) == []
    missing = validate_changes([Parameter('clip_weights', value=str(tmp_path / 'nope.pt'))], values)
    assert 'does not exist' in missing[0]


def test_vocabulary_parameter_follows_max_classes():
    values = {**_defaults(), 'max_classes': 2}
    assert SPECS['max_classes'].default == DEFAULT_MAX_CLASSES == 1024
    assert validate('vocabulary', ['a', 'b', 'c'], values) is None  # too many names are dropped, not fatal
    assert validate('vocabulary', ['\u200b'], values) is not None    # nothing usable: refused


def test_max_input_pixels_default_is_4096_square():
    assert SPECS['max_input_pixels'].default == DEFAULT_MAX_INPUT_PIXELS == 4096 * 4096
