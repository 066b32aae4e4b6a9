"""The `train` CLI's configuration: config/train.yaml is the recipe, flags override it."""
import dataclasses
from pathlib import Path

import pytest

from talk2dino_ros.cli.train import ConfigError, build_parser, load_yaml_section, main, resolve_config
from talk2dino_ros.training.extract import ExtractConfig
from talk2dino_ros.training.fit import FitConfig

REPO_YAML = Path(__file__).resolve().parents[2] / 'config' / 'train.yaml'


@pytest.mark.parametrize('section,cls', [('extract', ExtractConfig), ('fit', FitConfig)])
def test_yaml_lists_every_option_with_the_builtin_recipe(section, cls):
    values = load_yaml_section(str(REPO_YAML), section)
    assert set(values) == {f.name for f in dataclasses.fields(cls)}
    assert cls(**values) == cls()


def test_paper_recipe_defaults():
    cfg = FitConfig()
    assert (cfg.batch_size, cfg.lr, cfg.temperature, cfg.epochs, cfg.seed) == (128, 1e-4, 0.07, 100, 123)
    assert ExtractConfig().resolution == 448


def test_flags_override_yaml(tmp_path):
    y = tmp_path / 't.yaml'
    y.write_text('fit:\n  epochs: 7\n  lr: 0.001\n  recall_ks: [1, 10]\n  progress: false\n')
    args = build_parser().parse_args(['fit', '--config', str(y), '--epochs', '3', '--progress'])
    cfg = resolve_config(args)
    assert (cfg.epochs, cfg.lr, cfg.recall_ks, cfg.progress, cfg.batch_size) == (3, 1e-3, (1, 10), True, 128)


@pytest.mark.parametrize('text,match', [
    ('fit:\n  epoch: 3\n', "unknown option 'epoch'"),
    ('fit:\n  epochs: many\n', "'epochs' must be int"),
    ('fit:\n  progress: 3\n', "'progress' must be bool"),
    ('train:\n  epochs: 3\n', 'must hold the sections'),
])
def test_bad_yaml(tmp_path, capsys, text, match):
    y = tmp_path / 't.yaml'
    y.write_text(text)
    with pytest.raises(ConfigError, match=match):
        resolve_config(build_parser().parse_args(['fit', '--config', str(y)]))
    assert main(['fit', '--config', str(y)]) == 2
    assert capsys.readouterr().err.startswith('error: ')
