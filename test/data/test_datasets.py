"""Benchmark registry and readers of the mmseg on-disk layouts, on tiny synthetic datasets."""
import re

import numpy as np
import pytest
from PIL import Image

from helpers.datasets import H, W, make_layout, write_label
from talk2dino_ros.data.benchmarks import (BENCHMARK_ORDER, BENCHMARKS, get_benchmark, paper_miou,
                                           protocol)
from talk2dino_ros.data.datasets import (DatasetError, SegmentationDataset, load_image,
                                         load_label)
from talk2dino_ros.errors import Talk2DinoError


# -- registry -----------------------------------------------------------------------------------

def test_class_counts_and_known_entries():
    counts = {'voc21': 21, 'voc20': 20, 'context60': 60, 'context59': 59, 'coco_object': 81,
              'coco_stuff': 171, 'cityscapes': 19, 'ade20k': 150}
    assert set(BENCHMARKS) == set(counts) == set(BENCHMARK_ORDER)
    for name, n in counts.items():
        b = BENCHMARKS[name]
        assert b.num_classes == n == len(b.clip_dinoiser_classes)
        assert len(set(b.classes)) == n
    voc21 = BENCHMARKS['voc21'].classes
    assert voc21[0] == 'background' and voc21[11] == 'diningtable' and voc21[20] == 'tvmonitor'
    assert BENCHMARKS['voc20'].classes == voc21[1:]
    assert BENCHMARKS['context59'].classes == BENCHMARKS['context60'].classes[1:]
    assert BENCHMARKS['context60'].classes[50] == 'table'
    ade = BENCHMARKS['ade20k'].classes
    assert ade[7] == 'bed ' and ade[0] == 'wall' and ade[-1] == 'flag'
    assert [n for b in BENCHMARKS.values() for n in b.classes if n != n.strip()] == ['bed ']
    stuff = BENCHMARKS['coco_stuff'].classes
    assert stuff[62] == 'tv' and stuff[78] == 'hair drier' and stuff[80] == 'banner'
    assert stuff[-1] == 'wood'
    assert BENCHMARKS['coco_object'].classes[1:] == stuff[:80]
    assert BENCHMARKS['cityscapes'].classes[6] == 'traffic light'


def test_clip_dinoiser_class_lists_differ_where_documented():
    def diff(name):
        b = BENCHMARKS[name]
        return [(i, c) for i, (c, t) in enumerate(zip(b.clip_dinoiser_classes, b.classes)) if c != t]
    assert diff('voc21') == [(11, 'dining table'), (16, 'potted plant')]
    assert diff('voc20') == [(10, 'dining table'), (15, 'potted plant')]
    assert diff('context60') == [(40, 'potted plant')]
    assert diff('context59') == [(39, 'potted plant')]
    assert diff('coco_object') == [(5, 'aeroplane')]
    assert diff('coco_stuff') == diff('cityscapes') == diff('ade20k') == []


def test_protocols_per_method():
    p = protocol('voc21', 'talk2dino', 'vitb')
    assert p.background and p.vocabulary == BENCHMARKS['voc21'].classes[1:]
    assert p.background_threshold == 0.55 and p.bg_clean and p.pamr
    assert protocol('voc21', 'talk2dino', 'vitl').background_threshold == 0.54
    p = protocol('context60', 'talk2dino', 'vitb', pamr=False)
    assert p.background and not p.bg_clean and not p.pamr and len(p.vocabulary) == 59
    assert protocol('coco_object', 'talk2dino').bg_clean
    p = protocol('ade20k', 'talk2dino')
    assert not p.background and p.vocabulary == BENCHMARKS['ade20k'].classes
    p = protocol('context60', 'clip_dinoiser')
    assert p.background and not p.background_rule and not p.pamr
    assert 'potted plant' in p.vocabulary and 'background' not in p.vocabulary
    assert protocol('voc21', 'clip_dinoiser').background_rule
    assert protocol('coco_object', 'clip_dinoiser').background_rule
    assert not protocol('voc20', 'clip_dinoiser').background
    assert get_benchmark('context') is BENCHMARKS['context60']  # Talk2DINO yml key
    with pytest.raises(KeyError):
        get_benchmark('pascal')


def test_paper_numbers():
    assert paper_miou('voc21', 'talk2dino', 'vitb', True) == 65.8
    assert paper_miou('coco_object', 'talk2dino', 'vitl', False) == 37.6
    assert paper_miou('ade20k', 'talk2dino', 'vits', True) is None
    assert paper_miou('voc21', 'clip_dinoiser') is None


# -- readers ------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', BENCHMARK_ORDER)
def test_reader_lists_and_loads_every_layout(tmp_path, name):
    written = make_layout(tmp_path, name)
    ds = SegmentationDataset(name, tmp_path)
    assert [s.id for s in ds] == sorted(written) if ds.benchmark.split is None \
        else [s.id for s in ds] == list(written)
    for sample in ds:
        image, label = ds.load(sample)
        assert image.shape == (H, W, 3) and image.dtype == np.uint8
        assert label.shape == (H, W) and label.dtype == np.uint8
        expected = np.array(Image.open(written[sample.id][1]))
        np.testing.assert_array_equal(label, expected)


def test_cityscapes_recursive_order_and_rgb(tmp_path):
    make_layout(tmp_path, 'cityscapes')
    ds = SegmentationDataset('cityscapes', tmp_path)
    assert ds[2].id == 'lindau/lindau_000000_000019'
    assert ds[0].label_path.name == 'frankfurt_000000_000294_gtFine_labelTrainIds.png'
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = 200  # red in RGB
    Image.fromarray(img).save(ds[0].image_path)
    assert load_image(ds[0].image_path)[0, 0].tolist() == [200, 0, 0]


def test_voc_palette_png_gives_indices_not_rgb(tmp_path):
    label = np.zeros((H, W), np.uint8)
    label[:5] = 15  # 'person', palette colour (192, 128, 128)
    label[5:7] = 255
    make_layout(tmp_path, 'voc21', n=1, labels=[label])
    ds = SegmentationDataset('voc21', tmp_path)
    assert Image.open(ds[0].label_path).mode == 'P'
    np.testing.assert_array_equal(ds.load(ds[0])[1], label)


def test_data_root_can_be_the_benchmark_folder(tmp_path):
    make_layout(tmp_path, 'ade20k', n=2)
    ds = SegmentationDataset('ade20k', tmp_path / 'ade')
    assert len(ds) == 2


def test_missing_dataset_names_the_folder_and_how_to_prepare(tmp_path):
    with pytest.raises(DatasetError, match='ADEChallengeData2016') as exc:
        SegmentationDataset('ade20k', tmp_path)
    assert isinstance(exc.value, Talk2DinoError)


def test_missing_split_file(tmp_path):
    make_layout(tmp_path, 'context60', n=1)
    split = tmp_path / 'VOCdevkit/VOC2010/ImageSets/SegmentationContext/val.txt'
    split.unlink()
    with pytest.raises(DatasetError, match='val.txt'):
        SegmentationDataset('context60', tmp_path)


def test_empty_dataset_is_an_error(tmp_path):
    (tmp_path / 'coco_stuff164k/images/val2017').mkdir(parents=True)
    with pytest.raises(DatasetError, match='no samples'):
        SegmentationDataset('coco_stuff', tmp_path)


def _one(tmp_path, name, **kw):
    paths = make_layout(tmp_path, name, n=1, **kw)
    (img, lbl), = paths.values()
    return SegmentationDataset(name, tmp_path), img, lbl


def test_missing_image_and_label_name_the_file(tmp_path):
    ds, img, lbl = _one(tmp_path, 'voc21')
    img.unlink()
    with pytest.raises(DatasetError, match=re.escape(str(img))):
        ds.load(ds[0])
    ds, img, lbl = _one(tmp_path / 'b', 'coco_stuff')
    lbl.unlink()
    with pytest.raises(DatasetError, match=re.escape(f'{lbl} does not exist')):
        ds.load(ds[0])


def test_corrupt_files_name_the_file(tmp_path):
    ds, img, lbl = _one(tmp_path, 'ade20k')
    lbl.write_bytes(b'\x89PNG\r\n\x1a\nnot really')
    with pytest.raises(DatasetError, match=re.escape(f'label {lbl} is not a readable image')):
        ds.load(ds[0])
    img.write_bytes(b'garbage')
    with pytest.raises(DatasetError, match=re.escape(f'image {img} is not a readable image')):
        load_image(img)


def test_size_mismatch_names_both_files(tmp_path):
    ds, img, lbl = _one(tmp_path, 'cityscapes')
    write_label(lbl, np.zeros((H, W + 1), np.uint8))
    with pytest.raises(DatasetError, match='31x20') as exc:
        ds.load(ds[0])
    assert str(lbl) in str(exc.value) and str(img) in str(exc.value)


@pytest.mark.parametrize('name,good,bad', [
    ('voc21', 20, 21), ('voc20', 20, 21),           # reduce_zero_label: raw 1..20 valid
    ('ade20k', 150, 151), ('cityscapes', 18, 19), ('context60', 59, 60), ('coco_object', 80, 81),
])
def test_out_of_range_ids(tmp_path, name, good, bad):
    label = np.zeros((H, W), np.uint8)
    label[0, 0] = good
    label[1, 1] = 255
    ds, _, lbl = _one(tmp_path, name, labels=[label])
    ds.load(ds[0])
    label[2, 2] = bad
    write_label(lbl, label, palette=name.startswith('voc'))
    with pytest.raises(DatasetError, match=re.escape(f'{lbl} has ids {bad} outside')):
        ds.load(ds[0])


def test_rgb_label_is_refused(tmp_path):
    ds, _, lbl = _one(tmp_path, 'coco_stuff')
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(lbl)
    with pytest.raises(DatasetError, match='single-channel'):
        ds.load(ds[0])


def test_16_bit_labels(tmp_path):
    ds, _, lbl = _one(tmp_path, 'ade20k')
    Image.fromarray(np.full((H, W), 7, np.uint16)).save(lbl)
    assert ds.load(ds[0])[1].max() == 7
    Image.fromarray(np.full((H, W), 300, np.uint16)).save(lbl)
    with pytest.raises(DatasetError, match='outside 0..255'):
        load_label(lbl)


def test_skip_bad_counts_skipped_samples(tmp_path):
    paths = make_layout(tmp_path, 'voc20')
    ids = list(paths)
    paths[ids[0]][0].unlink()
    paths[ids[2]][1].write_bytes(b'')
    ds = SegmentationDataset('voc20', tmp_path)
    with pytest.raises(DatasetError):
        list(ds.iter_loaded())
    skipped = []
    got = list(ds.iter_loaded(skip_bad=True, on_skip=lambda s, e: skipped.append((s.id, str(e)))))
    assert [s.id for s, _, _ in got] == [ids[1]]
    assert [i for i, _ in skipped] == [ids[0], ids[2]]
    assert str(paths[ids[0]][0]) in skipped[0][1]
    assert [s.id for s, _, _ in ds.iter_loaded(skip_bad=True, limit=2)] == [ids[1]]
