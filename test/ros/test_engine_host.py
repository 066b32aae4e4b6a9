"""The node's engine host with the real segmenter: legend state builds, without repeated work."""
from talk2dino_ros.model.random_weights import tiny_segmenter_config
from talk2dino_ros.model.segmenter import Segmenter
from talk2dino_ros.ros.engine_host import EngineHost
from talk2dino_ros.ros.parameters import NodeSettings


def test_a_background_flip_encodes_the_new_vocabulary_once(tiny_weights):
    segmenter = Segmenter.from_config(tiny_segmenter_config(tiny_weights))
    installed = []
    real_set = segmenter.set_vocabulary

    def counting_set(names):
        installed.append(tuple(names))
        return real_set(names)
    segmenter.set_vocabulary = counting_set

    host = EngineHost(lambda settings: segmenter)
    files = {f'{role}_weights': str(path) for role, path in tiny_weights.items()}
    with_background = NodeSettings(dict(files, background_threshold=0.55, allow_random_weights=True))
    without_background = NodeSettings(dict(files, background_threshold=0.0, allow_random_weights=True))
    assert host.load(with_background).ok
    assert host.apply_vocabulary(['sky', 'road'], with_background).ok
    assert host.state.vocabulary.background

    installed.clear()
    outcome = host.apply_vocabulary(['tree', 'car'], without_background)
    assert outcome.ok and installed == [('tree', 'car')]  # not the old names first, then the new ones
    state = host.state
    assert state.names == ('tree', 'car') and not state.vocabulary.background
    assert state.vocabulary is segmenter.vocabulary


def test_missing_weights_recommend_only_what_the_node_accepts(tmp_path):
    host = EngineHost(lambda settings: None)
    settings = NodeSettings({'weights_dir': str(tmp_path)})
    fixed = host.load(settings, '/talk2dino')
    assert not fixed.ok and fixed.missing
    assert 'ros2 param set' not in fixed.detail and '-p dinov2_weights:=/path/to/file' in fixed.detail
    assert 'allow_runtime_weight_changes:=true' in fixed.detail
    settable = host.load(settings, '/talk2dino', paths_settable=True)
    assert 'ros2 param set /talk2dino dinov2_weights /path/to/file' in settable.detail
