"""benchmark CLI: runs end to end on tiny random weights and reports every stage."""
import argparse
import json

import numpy as np
import pytest

from talk2dino_ros.cli import speed_benchmark as benchmark


def test_benchmark_variants_in_one_run_give_one_block_each(tmp_path, capsys):
    """DINOv3-B against DINOv2-B in one run: the same rows for each variant, labelled by variant."""
    out = tmp_path / 'bench.json'
    argv = ['--random-weights', 'tiny', '--variants', 'vitb,dinov3_vitb', '--repeats', '1', '--warmup', '0',
            '--sizes', '48x64', '--vocab', 'a', '--pipelines', 'whole-plain', '--devices', 'cpu', '--threads', '1',
            '--quiet', '--cameras', '1', '--memory-classes', 'none', '--no-first-frame', '--no-3d', '--json', str(out)]
    assert benchmark.main(argv) == 0
    printed = capsys.readouterr().out
    assert 'talk2dino vitb,dinov3_vitb' in printed
    rows = json.loads(out.read_text())['rows']
    by_variant = {}
    for row in rows:
        by_variant.setdefault(row['device'], []).append(row['stage'])
    assert set(by_variant) == {'cpu vitb', 'cpu dinov3_vitb'}
    assert by_variant['cpu vitb'] == by_variant['cpu dinov3_vitb']
    assert 'pipeline whole-plain' in by_variant['cpu vitb']


def test_benchmark_variants_are_checked(capsys):
    assert benchmark.main(['--variants', 'vitb,dinov9', '--random-weights', 'tiny']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and '--variants' in err and 'dinov9' in err


def test_benchmark_tiny_random_weights_prints_table(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    # one thread: a shared, busy test machine makes multi-threaded ops wait for each other
    argv = ['--random-weights', 'tiny', '--repeats', '1', '--warmup', '0', '--sizes', '60x80', '--vocab', 'a',
            '--pipelines', 'slide-full,whole-plain', '--devices', 'cpu', '--threads', '1', '--quiet',
            '--cameras', '2', '--memory-classes', '3,30', '--json', str(out)]
    assert benchmark.main(argv) == 0
    printed = capsys.readouterr().out
    assert 'RANDOM WEIGHTS' in printed and 'timing only' in printed
    assert 'median' in printed and 'p90' in printed and 'fps' in printed and 'peak RSS MB' in printed
    report = json.loads(out.read_text())
    stages = [r['stage'] for r in report['rows']]
    engine = ['preprocess', 'backbone', 'windows', 'labels']
    assert stages == (['text cold', 'text cached', 'vocabulary 100 new names', 'first frame', 'pipeline slide-full']
                      + [f'  slide-full: {k}' for k in engine] + ['pipeline whole-plain']
                      + [f'  whole-plain: {k}' for k in engine]
                      + ['backbone alone B=1 (eager)', 'cameras x2 batched (per frame)', 'memory 3 classes',
                         'memory 30 classes']
                      + [f'3d {what} (stride {s})' for s in (1, 2)
                         for what in ('cloud + detections', 'cloud', 'detections 2D + 3D')])
    for stage in stages:
        assert stage in printed
    for row in report['rows']:
        assert row['device'] == ('numpy' if row['stage'].startswith('3d') else 'cpu')
        assert row['median_s'] > 0 and row['p90_s'] >= row['median_s']
        if not row['stage'].startswith('memory'):
            assert row['rss_peak_mb'] is None or row['rss_peak_mb'] > 10
    assert report['meta']['random_weights'] is True and report['meta']['random_weights_width'] == 'tiny'
    assert report['meta']['classes'] == 1
    assert any('MB per class' in n for n in report['meta']['notes'])


def test_stage_rows_come_from_the_engine(monkeypatch, capsys, tmp_path):
    """The stage rows are the engine's own timings: no private copy of the pipeline in the benchmark."""
    from talk2dino_ros.model.segmenter import Segmenter

    seen = []
    real = Segmenter._segment_group

    def spy(self, *args, **kwargs):
        results = real(self, *args, **kwargs)
        if self.stage_timer.enabled:
            seen.extend(r.timings for r in results)
        return results
    monkeypatch.setattr(Segmenter, '_segment_group', spy)
    out = tmp_path / 'b.json'
    argv = ['--random-weights', 'tiny', '--repeats', '2', '--warmup', '0', '--sizes', '60x80', '--vocab', 'a',
            '--pipelines', 'whole-plain', '--devices', 'cpu', '--threads', '1', '--quiet', '--cameras', '1',
            '--memory-classes', 'none', '--no-first-frame', '--json', str(out)]
    assert benchmark.main(argv) == 0
    rows = {r['stage']: r for r in json.loads(out.read_text())['rows']}
    assert len(seen) == 2
    assert rows['  whole-plain: backbone']['times_s'] == [t['backbone'] for t in seen]
    assert rows['  whole-plain: labels']['times_s'] == [t['labels'] for t in seen]
    assert not hasattr(benchmark, 'merge_windows') and 'resize_scores' not in vars(benchmark)


def test_bad_pipeline_name_is_one_line_error(capsys):
    assert benchmark.main(['--random-weights', 'tiny', '--pipelines', 'slide-fast']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1 and 'slide-fast' in err


def test_row_statistics():
    row = benchmark.Row('cpu', '1x1', 's', [float(t) for t in range(10, 0, -1)], per=1)
    assert row.median == 5.5 and row.p90 == 9.0 and row.fps == pytest.approx(1 / 5.5)


def test_parse_size_and_scene():
    assert benchmark.parse_size('375x500') == (375, 500)
    for bad in ('375', 'ax5', '0x5'):
        with pytest.raises(argparse.ArgumentTypeError):
            benchmark.parse_size(bad)
    a, b = benchmark.synthetic_scene(37, 51), benchmark.synthetic_scene(37, 51)
    assert a.dtype == np.uint8 and a.shape == (37, 51, 3)
    np.testing.assert_array_equal(a, b)  # deterministic: runs are comparable


# ------------------------------------------------------------------------------------------ issue 24
def test_authors_timings_only_beside_the_same_variant_at_full_width_on_the_same_machine():
    same = dict(benchmark.AUTHORS_MACHINE)
    ok = dict(method='talk2dino', variant='vitb', test_width=False, random_width=None, device='cpu', fp16=False,
              classes=5, env=same)
    assert benchmark.authors_comparison(**ok) == (True, '')
    for change, needle in ((dict(random_width='tiny'), 'tiny'), (dict(test_width=True), 'tiny'),
                           (dict(variant='vitl'), 'vitl'), (dict(method='clip_dinoiser'), 'clip_dinoiser'),
                           (dict(device='cuda'), 'CPU'), (dict(fp16=True), 'fp16'), (dict(classes=3), '3'),
                           (dict(env={'cpu': 'Intel Xeon', 'cpu_count': 2}), 'Intel Xeon'),
                           (dict(env=dict(same, cpu_count=16)), '16-core')):
        shown, why = benchmark.authors_comparison(**dict(ok, **change))
        assert not shown and needle in why


def test_tiny_weights_table_has_no_authors_column_values_and_says_why(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    argv = ['--random-weights', 'tiny', '--repeats', '1', '--warmup', '0', '--sizes', '375x500', '--pipelines',
            'slide-plain', '--devices', 'cpu', '--threads', '1', '--quiet', '--cameras', '1', '--memory-classes',
            'none', '--no-first-frame', '--json', str(out)]
    assert benchmark.main(argv) == 0
    printed = capsys.readouterr().out
    from talk2dino_ros.evaluation.report import RANDOM_WEIGHTS_HEADER

    assert printed.splitlines()[0] == RANDOM_WEIGHTS_HEADER
    assert "# authors' timings not shown: this run uses tiny test-width weights" in printed
    report = json.loads(out.read_text())
    assert all(r['authors_s'] is None for r in report['rows'])
    assert report['meta']['authors_source'] is None and 'tiny' in report['meta']['authors_omitted']


def test_missing_image_fails_before_the_model_loads(tmp_path, capsys, monkeypatch):
    from talk2dino_ros.model.segmenter import Segmenter

    def never(*args, **kwargs):
        raise AssertionError('the model must not load for a missing --image')
    monkeypatch.setattr(Segmenter, 'from_config', never)
    missing = tmp_path / 'missing.png'
    assert benchmark.main(['--image', str(missing), '--random-weights', 'tiny', '--devices', 'cpu']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and str(missing) in err and err.startswith('error: ')
