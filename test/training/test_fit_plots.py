"""train fit draws loss and recall curves after every epoch (optional matplotlib extra)."""

import numpy as np
import pytest
from PIL import Image

from talk2dino_ros.cli.train import OPTION_HELP, build_parser
from talk2dino_ros.training.extract import ExtractConfig
from talk2dino_ros.training.fit import FitConfig, fit
from test_fit import D, E, _cfg, write_planted


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp('plots')
    mapping = np.random.default_rng(0).normal(size=(E, D)) / np.sqrt(D)
    write_planted(root / 'train', 40, 2, seed=1, mapping=mapping)
    write_planted(root / 'val', 16, 2, seed=2, mapping=mapping)
    return root


def test_curves_after_every_epoch(small, monkeypatch):
    pytest.importorskip('matplotlib')
    from talk2dino_ros.evaluation import plots

    calls = []
    real = plots.write_training_plots
    monkeypatch.setattr(plots, 'write_training_plots',
                        lambda history, out, **kw: calls.append(len(history)) or real(history, out, **kw))
    fit(_cfg(small, 'run', epochs=2, batch_size=32), log=lambda s: None)
    assert calls == [1, 2]  # redrawn after each epoch with the history so far
    run_dir = small / 'run' / 'run'
    for name in ('loss.png', 'recall.png'):
        with Image.open(run_dir / name) as im:
            assert im.format == 'PNG' and im.size[0] > 300


def test_no_plots_option_and_missing_matplotlib(small, hide_matplotlib):
    fit(_cfg(small, 'off', epochs=1, plots=False), log=lambda s: None)
    assert not list((small / 'off' / 'run').glob('*.png'))

    hide_matplotlib()
    lines = []
    result = fit(_cfg(small, 'nompl', epochs=1), log=lines.append)
    assert result.output.is_file()  # training is not stopped by a missing extra
    notes = [line for line in lines if 'matplotlib' in line]
    assert len(notes) == 1 and notes[0].startswith('note: ') and '\n' not in notes[0]
    assert not list((small / 'nompl' / 'run').glob('*.png'))


@pytest.mark.parametrize('section,cls', [('extract', ExtractConfig), ('fit', FitConfig)])
def test_every_option_has_a_description(section, cls):
    import dataclasses

    assert set(OPTION_HELP[section]) == {f.name for f in dataclasses.fields(cls)}
    text = build_parser()._subparsers._group_actions[0].choices[section].format_help()
    assert 'built-in default' not in text
    if section == 'extract':
        assert '{vits,vitb,vitl,' in text and '{float16,float32}' in text


def test_extract_with_random_weights_ends_with_the_reminder(tmp_path, tiny_weights, capsys):
    from talk2dino_ros.cli.reminders import RANDOM_FEATURES_NOTE
    from talk2dino_ros.cli.train import main as train_main
    from test_extract import make_coco

    make_coco(tmp_path, n_images=2)
    rc = train_main(['extract', '--images', str(tmp_path / 'images'), '--annotations',
                     str(tmp_path / 'captions_train2014.json'), '--output', str(tmp_path / 'feats'),
                     '--dinov2', str(tiny_weights['dinov2']), '--clip', str(tiny_weights['clip']),
                     '--resolution', '56', '--device', 'cpu', '--allow-random-weights', '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert err.rstrip('\n').splitlines()[-1] == RANDOM_FEATURES_NOTE


def test_features_of_random_weights_mark_the_pictures_and_the_cli_reminds(small, monkeypatch, capsys):
    """The planted features come from a test-width backbone: fit says so in its pictures and its last line."""
    pytest.importorskip('matplotlib')
    from talk2dino_ros.cli import train
    from talk2dino_ros.cli.reminders import RANDOM_FIT_NOTE
    from talk2dino_ros.evaluation import plots

    titles = []
    real = plots.wrapped_title
    monkeypatch.setattr(plots, 'wrapped_title',
                        lambda ax, fig, text, **kw: titles.append(text) or real(ax, fig, text, **kw))
    result = fit(_cfg(small, 'marked', epochs=1, batch_size=32), log=lambda s: None)
    assert result.random_weights and titles and all(t.startswith(plots.RANDOM_MARK) for t in titles)
    assert all(r['random_weights'] is True for r in result.history)  # and in history.jsonl
    capsys.readouterr()
    assert train.main(['fit', '--features', str(small / 'train'), '--output', str(small / 'cli' / 'psi.pth'),
                       '--run-dir', str(small / 'cli' / 'run'), '--epochs', '1', '--device', 'cpu',
                       '--no-plots', '--no-progress']) == 0
    assert capsys.readouterr().err.rstrip('\n').splitlines()[-1] == RANDOM_FIT_NOTE
