"""evaluate never misleads (issue 24): random weights said in the table and the JSON, Ctrl-C leaves a partial
report and the exact --resume command, saved predictions are never overwritten silently, --bag refuses ground
truth ids beyond --classes, --skip-bad names each skipped file, the JSON's top-level options do not contradict
the protocol used."""
import json
import shlex

import numpy as np
import pytest

from helpers.datasets import make_layout
from helpers.segmenters import OracleSegmenter
from test_evaluate import FakeSegmenter, args_for, constant  # noqa: E402

from talk2dino_ros.cli import evaluate as ev, make_demo_bag  # noqa: E402
from talk2dino_ros.errors import Talk2DinoError  # noqa: E402
from talk2dino_ros.evaluation.loop import EvaluationInterrupted  # noqa: E402
from talk2dino_ros.evaluation.report import RANDOM_WEIGHTS_HEADER  # noqa: E402


class RandomFake(FakeSegmenter):
    """A segmenter whose loaded weights were random test ones (what the real loader reports)."""

    random_weights = True


class StopAfter(FakeSegmenter):
    """Ctrl-C while segmenting the image after ``n`` of them."""

    def __init__(self, predict, n):
        super().__init__(predict)
        self.n = n

    def segment(self, image, *, options=None):
        if self.calls >= self.n:
            raise KeyboardInterrupt
        return super().segment(image, options=options)


def _patch_engine(monkeypatch, fake):
    """evaluate's CLI builds its segmenter through Segmenter.from_config: hand it ``fake`` instead."""
    from talk2dino_ros.model.segmenter import Segmenter

    monkeypatch.setattr(Segmenter, 'from_config', classmethod(lambda cls, config, on_event=None: fake))


def _cli_argv(tmp_path, *extra):
    """Command-line arguments of a voc21 run with placeholder weight files (hashed, never loaded)."""
    weights = tmp_path / 'w'
    weights.mkdir(exist_ok=True)
    argv = ['--benchmark', 'voc21', '--data-root', str(tmp_path / 'data'), '--quiet', '--device', 'cpu']
    for flag in ev.WEIGHT_FLAGS['talk2dino'].values():
        f = weights / (flag.strip('-') + '.pth')
        f.write_bytes(flag.encode())
        argv += [flag, str(f)]
    return argv + list(extra)


def test_random_weights_first_line_and_json_decided_by_the_loaded_model(tmp_path, capsys):
    """No --allow-random-weights given, but the loaded model says it is random: the run says so."""
    make_layout(tmp_path / 'data', 'voc21', n=2)
    out = tmp_path / 'res.json'
    report = ev.run(args_for(tmp_path, '--out', str(out)), make_segmenter=lambda: RandomFake(constant(0)))
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == RANDOM_WEIGHTS_HEADER
    assert 'no comparison: random weights' in printed and 'paper mIoU  65.80 (-' not in printed
    assert report['random_weights'] is True and json.loads(out.read_text())['random_weights'] is True
    manifestless = ev.run(args_for(tmp_path), make_segmenter=lambda: FakeSegmenter(constant(0)))
    assert manifestless['random_weights'] is False and RANDOM_WEIGHTS_HEADER not in capsys.readouterr().out


def test_predictions_manifest_says_random(tmp_path):
    make_layout(tmp_path / 'data', 'voc21', n=1)
    preds = tmp_path / 'preds'
    args = args_for(tmp_path, '--save-predictions', str(preds))
    args.allow_random_weights = True  # placeholder files stand in for random ones
    ev.run(args, make_segmenter=lambda: FakeSegmenter(constant(0)))
    assert json.loads((preds / 'voc21' / 'run.json').read_text())['random_weights'] is True


def test_existing_predictions_are_refused_without_resume_or_overwrite(tmp_path):
    make_layout(tmp_path / 'data', 'voc21', n=2)
    preds = tmp_path / 'preds'
    ev.run(args_for(tmp_path, '--save-predictions', str(preds)), make_segmenter=lambda: FakeSegmenter(constant(0)))
    before = {p.name: p.read_bytes() for p in (preds / 'voc21').glob('*.png')}
    with pytest.raises(Talk2DinoError, match='already holds predictions.*--resume.*--overwrite'):
        ev.run(args_for(tmp_path, '--save-predictions', str(preds)),
               make_segmenter=lambda: FakeSegmenter(constant(1)))
    assert {p.name: p.read_bytes() for p in (preds / 'voc21').glob('*.png')} == before  # untouched
    ev.run(args_for(tmp_path, '--save-predictions', str(preds), '--overwrite'),
           make_segmenter=lambda: FakeSegmenter(constant(1)))
    assert {p.name: p.read_bytes() for p in (preds / 'voc21').glob('*.png')} != before
    with pytest.raises(Talk2DinoError, match='give one'):
        ev.run(args_for(tmp_path, '--save-predictions', str(preds), '--overwrite', '--resume'),
               make_segmenter=lambda: FakeSegmenter(constant(1)))


def test_ctrl_c_writes_a_partial_report_and_the_resume_command(tmp_path, capsys, monkeypatch):
    make_layout(tmp_path / 'data', 'voc21', n=3)
    out, preds = tmp_path / 'res.json', tmp_path / 'preds'
    argv = _cli_argv(tmp_path, '--out', str(out), '--save-predictions', str(preds))
    _patch_engine(monkeypatch, StopAfter(constant(0), 1))
    assert ev.main(argv) == 130
    captured = capsys.readouterr()
    assert 'PARTIAL (voc21): interrupted after 1 of 3 images' in captured.out
    assert 'no comparison: partial run' in captured.out
    report = json.loads(out.read_text())
    assert report['partial'] is True and report['interrupted']['images_done'] == 1
    assert report['interrupted']['images_total'] == 3
    result = report['benchmarks']['voc21']
    assert result['partial'] is True and (result['images_done'], result['images_total']) == (1, 3)
    command = next(line for line in captured.err.splitlines() if line.startswith('continue with: '))
    command = shlex.split(command[len('continue with: '):])
    assert command[0] == 'evaluate' and command[-1] == '--resume' and command[1:-1] == argv

    fake = FakeSegmenter(constant(0))
    _patch_engine(monkeypatch, fake)
    assert ev.main(command[1:]) == 0  # the printed command continues the run
    final = json.loads(out.read_text())
    assert final['partial'] is False and final['benchmarks']['voc21']['num_resumed'] == 1 and fake.calls == 2


def test_ctrl_c_without_saved_predictions_says_how_to_make_runs_resumable(tmp_path, capsys, monkeypatch):
    make_layout(tmp_path / 'data', 'voc21', n=2)
    _patch_engine(monkeypatch, StopAfter(constant(0), 0))
    assert ev.main(_cli_argv(tmp_path)) == 130
    captured = capsys.readouterr()
    assert 'interrupted before the first image' in captured.out
    assert '--save-predictions' in captured.err and 'Traceback' not in captured.err


def test_interrupt_is_an_evaluation_interrupted_with_the_partial_result(tmp_path):
    make_layout(tmp_path / 'data', 'voc21', n=3)
    with pytest.raises(EvaluationInterrupted) as info:
        ev.run(args_for(tmp_path), make_segmenter=lambda: StopAfter(constant(0), 2))
    assert (info.value.done, info.value.total) == (2, 3) and info.value.result['num_images'] == 2


def test_skip_bad_prints_every_skipped_file_with_its_reason(tmp_path, capsys):
    paths = make_layout(tmp_path / 'data', 'voc21', n=3)
    bad = sorted(paths)[:2]
    for sid in bad:
        paths[sid][1].write_bytes(b'not a png')
    ev.run(args_for(tmp_path, '--skip-bad'), make_segmenter=lambda: FakeSegmenter(constant(0)))
    err = capsys.readouterr().err
    for sid in bad:
        line = next(ln for ln in err.splitlines() if str(paths[sid][0]) in ln)
        assert line.startswith('warning: skipped ') and str(paths[sid][1]) in line  # which file, and why


def test_json_top_level_options_do_not_contradict_the_protocol(tmp_path, monkeypatch):
    make_layout(tmp_path / 'data', 'voc21', n=1)
    out = tmp_path / 'res.json'
    _patch_engine(monkeypatch, FakeSegmenter(constant(0)))
    assert ev.main(_cli_argv(tmp_path, '--out', str(out))) == 0
    report = json.loads(out.read_text())
    used = report['benchmarks']['voc21']['protocol']
    assert used['pamr'] is True and used['bg_clean'] is True  # the authors' VOC protocol
    options = report['config']['options']
    assert not isinstance(options, dict) and 'protocol' in options  # points there, claims nothing else


def _bag_segmenter():
    return OracleSegmenter(make_demo_bag._COLOURS)


def test_bag_refuses_ground_truth_classes_missing_from_classes(tmp_path, capsys):
    bag = make_demo_bag.write_demo_bag(tmp_path / 'demo', frames=2, height=24, width=32)['path']
    classes = list(make_demo_bag.CLASSES)
    argv = ['--bag', str(bag), '--image-topic', make_demo_bag.IMAGE_TOPIC, '--label-topic',
            make_demo_bag.LABEL_TOPIC, '--quiet', '--classes', ','.join(classes[:2])]
    with pytest.raises(Talk2DinoError, match='--classes'):
        ev.run(ev.build_parser().parse_args(argv), make_segmenter=_bag_segmenter)
    argv[-1] = ','.join(classes)
    assert ev.run(ev.build_parser().parse_args(argv), make_segmenter=_bag_segmenter)['bag']['mIoU'] == 100.0


def test_bag_table_and_json_say_random(tmp_path, capsys):
    class RandomOracle(OracleSegmenter):
        random_weights = True

    bag = make_demo_bag.write_demo_bag(tmp_path / 'demo', frames=1, height=24, width=32)['path']
    out = tmp_path / 'bag.json'
    argv = ['--bag', str(bag), '--image-topic', make_demo_bag.IMAGE_TOPIC, '--label-topic',
            make_demo_bag.LABEL_TOPIC, '--quiet', '--out', str(out)]
    ev.run(ev.build_parser().parse_args(argv), make_segmenter=lambda: RandomOracle(make_demo_bag._COLOURS))
    assert RANDOM_WEIGHTS_HEADER in capsys.readouterr().out.splitlines()
    assert json.loads(out.read_text())['random_weights'] is True


def test_duplicate_in_classes_names_classes(tmp_path, capsys):
    bag = make_demo_bag.write_demo_bag(tmp_path / 'demo', frames=1, height=24, width=32)['path']
    argv = ['--bag', str(bag), '--image-topic', make_demo_bag.IMAGE_TOPIC, '--label-topic',
            make_demo_bag.LABEL_TOPIC, '--quiet', '--classes', 'sky,grass,sky']
    assert ev.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: --classes: rejected') and '--vocab' not in err and 'duplicate' in err
