"""Sample ids from dataset lists never lead reads or writes outside the dataset and prediction folders."""
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from helpers.datasets import make_layout  # noqa: E402

from talk2dino_ros.cli import evaluate as ev  # noqa: E402
from talk2dino_ros.data.benchmarks import get_benchmark, protocol  # noqa: E402
from talk2dino_ros.data.datasets import DatasetError, SegmentationDataset, check_sample_id  # noqa: E402
from talk2dino_ros.evaluation import loop  # noqa: E402


class Zeros:
    """A segmenter double that predicts class 0 everywhere."""

    def set_vocabulary(self, names):
        self.names = tuple(names)

    def segment(self, image, *, options=None):
        names = (('background',) if options.background else ()) + self.names
        return SimpleNamespace(labels=np.zeros(image.shape[:2], np.int64), class_names=names, timings={})


def _evaluate_cli(tmp_path, *extra):
    """``evaluate`` on voc21 under tmp_path/data with random-weight paths that are never loaded."""
    argv = ['--benchmark', 'voc21', '--data-root', str(tmp_path / 'data'), '--quiet', '--allow-random-weights',
            '--weights-dir', str(tmp_path / 'no_weights'), *extra]
    return ev.main(argv)


def _one_error_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'Traceback' not in err, err
    return lines[0]


@pytest.mark.parametrize('sample_id', ['2007_000033', 'frankfurt/frankfurt_000000_000294', 'a b/c.d', 'é/ü'])
def test_ordinary_ids_are_accepted(sample_id):
    assert check_sample_id(sample_id, 'x') == sample_id


@pytest.mark.parametrize('sample_id, reason', [
    ('../../escape/x', "'..' component"), ('a/../../b', "'..' component"), ('..', "'..' component"),
    ('/etc/passwd', 'absolute path'), ('C:/x', 'absolute path'), ('a\\..\\b', 'backslash'),
    ('a//b', 'empty'), ('./a', "'.' component"), ('a/', 'empty'), ('a\x00b', 'control character'),
    ('a\x1b[2Jb', 'control character'),
])
def test_ids_leading_elsewhere_are_refused(sample_id, reason):
    with pytest.raises(DatasetError, match=reason) as info:
        check_sample_id(sample_id, 'voc21: split file val.txt line 3')
    assert 'line 3' in str(info.value)


def test_escaping_split_id_is_refused_before_anything_is_written(tmp_path, capsys):
    """An id with '..' whose image and label exist outside the dataset: the old reader evaluated it and
    --save-predictions wrote the PNG outside the prediction folder."""
    make_layout(tmp_path / 'data', 'voc21', n=2)
    root = tmp_path / 'data' / 'VOCdevkit' / 'VOC2012'
    bench = get_benchmark('voc21')
    bad_id = '../../../../escape/victim'
    # the files the escaping id names exist (an attacker can arrange that), so only the id check stops it
    image = root / bench.img_dir / (bad_id + bench.img_suffix)
    label = root / bench.ann_dir / (bad_id + bench.seg_suffix)
    for src, dst in ((root / bench.img_dir / ('2007_000033' + bench.img_suffix), image),
                     (root / bench.ann_dir / ('2007_000033' + bench.seg_suffix), label)):
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    (root / bench.split).write_text(f'2007_000033\n{bad_id}\n')
    preds = tmp_path / 'out' / 'p'
    before = sorted(p for p in tmp_path.rglob('*'))
    assert _evaluate_cli(tmp_path, '--save-predictions', str(preds)) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert 'line 2' in line and bad_id in line and "'..' component" in line
    assert sorted(p for p in tmp_path.rglob('*')) == before  # nothing written anywhere


def test_absolute_id_is_refused(tmp_path, capsys):
    make_layout(tmp_path / 'data', 'voc21', n=1)
    split = tmp_path / 'data' / 'VOCdevkit' / 'VOC2012' / get_benchmark('voc21').split
    split.write_text(f'2007_000033\n\n{tmp_path / "elsewhere"}\n')
    assert _evaluate_cli(tmp_path, '--save-predictions', str(tmp_path / 'p')) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert 'line 3' in line and 'absolute path' in line and not (tmp_path / 'p').exists()


def test_split_file_with_invalid_utf8_is_one_line(tmp_path, capsys):
    make_layout(tmp_path / 'data', 'voc21', n=1)
    split = tmp_path / 'data' / 'VOCdevkit' / 'VOC2012' / get_benchmark('voc21').split
    split.write_bytes(b'2007_000033\n2007_\xff\xfe00042\n')
    assert _evaluate_cli(tmp_path) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(split) in line and 'not UTF-8' in line and 'line 2' in line


def test_symlink_in_the_prediction_folder_cannot_redirect_a_write(tmp_path):
    make_layout(tmp_path / 'data', 'cityscapes', n=1)  # id frankfurt/frankfurt_000000_000294
    dataset = SegmentationDataset('cityscapes', tmp_path / 'data')
    preds, outside = tmp_path / 'preds', tmp_path / 'outside'
    preds.mkdir()
    outside.mkdir()
    (preds / 'frankfurt').symlink_to(outside, target_is_directory=True)
    proto = protocol(dataset.benchmark, 'talk2dino', 'vitb', None)
    with pytest.raises(DatasetError, match='outside'):
        loop.evaluate_dataset(dataset, Zeros, proto, predictions_dir=preds, progress=False)
    assert list(outside.iterdir()) == []


def test_save_prediction_checks_the_resolved_path(tmp_path):
    root, outside = tmp_path / 'preds', tmp_path / 'outside'
    root.mkdir()
    outside.mkdir()
    (root / 'link').symlink_to(outside, target_is_directory=True)
    with pytest.raises(DatasetError, match='outside'):
        loop.save_prediction(root / 'link' / 'x.png', np.zeros((2, 2), np.uint8), root=root)
    assert list(outside.iterdir()) == []
    loop.save_prediction(root / 'sub' / 'x.png', np.ones((2, 3), np.uint8), root=root)
    assert sorted(p.name for p in (root / 'sub').iterdir()) == ['x.png']  # no temporary left behind


def test_prediction_path_refuses_an_escaping_id(tmp_path):
    sample = SimpleNamespace(id='../x', image_path=tmp_path / 'x.jpg')
    with pytest.raises(DatasetError, match="'..' component"):
        loop.prediction_path(tmp_path / 'preds', sample)
