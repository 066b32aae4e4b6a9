"""cli_common: weight resolution, flag -> config mapping, one-line error wrapper."""
import argparse
from pathlib import Path

import pytest

from talk2dino_ros.cli import common as cli_common
from talk2dino_ros.errors import CheckpointError


def _parse(argv):
    p = argparse.ArgumentParser()
    cli_common.add_model_arguments(p)
    cli_common.add_inference_arguments(p)
    return p.parse_args(argv)


def test_weights_dir_fills_published_names_and_flags_win(tmp_path):
    args = _parse(['--weights-dir', str(tmp_path), '--variant', 'vitl', '--clip-weights', '/x/clip.pt'])
    w = cli_common.resolve_weights(args)
    assert w == {'dinov2': str(tmp_path / 'dinov2_vitl14_reg4_pretrain.pth'), 'clip': '/x/clip.pt',
                 'proj': str(tmp_path / 'vitl_mlp_infonce.pth')}


def test_env_weights_dir_and_clip_dinoiser_names(tmp_path, monkeypatch):
    monkeypatch.setenv(cli_common.WEIGHTS_DIR_ENV, str(tmp_path))
    w = cli_common.resolve_weights(_parse(['--method', 'clip_dinoiser']))
    assert w == {'openclip': str(tmp_path / 'open_clip_pytorch_model.bin'),
                 'clip_dinoiser': str(tmp_path / 'last.pt')}
    monkeypatch.delenv(cli_common.WEIGHTS_DIR_ENV)
    assert cli_common.default_weights_dir() == Path('~/.cache/talk2dino_ros').expanduser()


def test_other_methods_flag_is_an_error():
    with pytest.raises(cli_common.CliError, match='--proj-weights'):
        cli_common.resolve_weights(_parse(['--method', 'clip_dinoiser', '--proj-weights', 'p.pth']))


def test_config_from_args_defaults_and_flags(tmp_path):
    cfg = cli_common.config_from_args(_parse(['--weights-dir', str(tmp_path)]), pamr=True, mode='whole')
    assert cfg.options.pamr is True and cfg.mode == 'whole' and cfg.options.background is False
    assert cfg.device == 'auto' and cfg.resolution == 448 and not cfg.allow_random_weights
    cfg = cli_common.config_from_args(
        _parse(['--weights-dir', str(tmp_path), '--no-pamr', '--bg-clean', '--background-threshold', '0.4',
                '--mode', 'slide', '--resolution', '336', '--device', 'cpu', '--allow-random-weights']),
        pamr=True, mode='whole')
    assert cfg.options.pamr is False and cfg.options.bg_clean is True
    assert cfg.options.background is True and cfg.options.background_threshold == 0.4
    assert (cfg.mode, cfg.resolution, cfg.device, cfg.allow_random_weights) == ('slide', 336, 'cpu', True)
    with pytest.raises(TypeError):
        cli_common.config_from_args(_parse([]), not_a_field=1)


@pytest.mark.parametrize('argv', [['--device', 'gpu'], ['--background-threshold', '1.5'], ['--resolution', '7'],
                                  ['--mode', 'tiles']])
def test_bad_flag_values_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(argv)
    assert exc.value.code == 2


def test_run_cli_turns_user_errors_into_one_line(capsys):
    def fail(exc):
        def fn(argv):
            raise exc
        return fn

    assert cli_common.run_cli(fail(CheckpointError('CLIP file not found:\n /a/b.pt'))) == 2
    assert capsys.readouterr().err == 'error: CLIP file not found: /a/b.pt\n'
    assert cli_common.run_cli(fail(PermissionError(13, 'Permission denied', '/out/x.npz'))) == 2
    assert capsys.readouterr().err == 'error: Permission denied: /out/x.npz\n'
    with pytest.raises(OSError):  # an OSError naming no file is a bug: keep its traceback
        cli_common.run_cli(fail(OSError('socket broke')))
    assert cli_common.run_cli(lambda argv: 0) == 0


def test_parse_vocab_arg():
    assert cli_common.parse_vocab_arg(' cat ,  big   dog,\nsky,') == ['cat', 'big dog', 'sky']
    with pytest.raises(cli_common.CliError, match='background'):
        cli_common.parse_vocab_arg('cat,background')
