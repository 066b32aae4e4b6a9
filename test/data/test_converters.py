"""Label converters (Pascal Context from Detail json, COCO-Stuff, COCO-Object) and their CLI."""
import json
import random

import numpy as np
import pytest
from PIL import Image

from talk2dino_ros.cli.convert_dataset import main as convert_main
from talk2dino_ros.data.benchmarks import COCO_OBJECT_81_CLASSES, COCO_STUFF_171_CLASSES
from talk2dino_ros.data.convert_coco_object import coco_object_lut, convert_coco_object
from talk2dino_ros.data.convert_coco_stuff import (COCO_STUFF_RAW_FOR_TRAIN_ID, coco_stuff_lut,
                                                   convert_coco_stuff)
from talk2dino_ros.data.convert_context import (CONTEXT_DETAIL_IDS_SORTED, convert_pascal_context,
                                                decode_rle, decode_rle_counts)
from talk2dino_ros.data.datasets import DatasetError, SegmentationDataset


# -- a COCO-style RLE encoder, written from the mask API's description, for building fixtures --

def encode_counts(runs):
    out = []
    for i, c in enumerate(runs):
        x = c - runs[i - 2] if i > 2 else c
        more = True
        while more:
            chunk = x & 0x1F
            x >>= 5
            more = (x != -1) if chunk & 0x10 else (x != 0)
            out.append(chr(48 + (chunk | (0x20 if more else 0))))
    return ''.join(out)


def encode_mask(mask):
    flat = mask.T.ravel().astype(bool)  # column-major
    runs, cur, n = [], False, 0
    for v in flat:
        if v == cur:
            n += 1
        else:
            runs.append(n)
            cur, n = v, 1
    runs.append(n)
    return {'size': list(mask.shape), 'counts': encode_counts(runs)}


def test_rle_counts_known_string_and_round_trip():
    # hand-made: runs [3, 2] -> '3' (0x03) and '2'
    assert decode_rle_counts('32').tolist() == [3, 2]
    # a negative delta from the 4th run on: runs [0, 10, 5, 4] -> 4th stored as 4 - 10 = -6
    s = encode_counts([0, 10, 5, 4])
    assert decode_rle_counts(s).tolist() == [0, 10, 5, 4]
    rng = random.Random(1)
    for _ in range(300):
        runs = [rng.randint(0, 3000) for _ in range(rng.randint(1, 25))]
        assert decode_rle_counts(encode_counts(runs)).tolist() == runs


def test_rle_mask_is_column_major_and_checked():
    mask = np.array([[1, 0, 0], [1, 1, 0]], bool)
    rle = encode_mask(mask)
    assert rle['counts'] == encode_counts([0, 2, 1, 1, 2])  # columns: 11 01 00
    np.testing.assert_array_equal(decode_rle(rle, 2, 3), mask)
    with pytest.raises(ValueError, match='size'):
        decode_rle(rle, 3, 2)
    with pytest.raises(ValueError, match='cover'):
        decode_rle({'size': [2, 3], 'counts': encode_counts([1, 2])}, 2, 3)


def _detail_json(tmp_path, extra_ann=None):
    h, w = 6, 8
    a = np.zeros((h, w), bool)
    a[:3] = True                   # top half
    b = np.zeros((h, w), bool)
    b[:, :4] = True                # left half, painted after a -> wins on the overlap
    c = np.zeros((h, w), bool)
    c[5, 7] = True
    anns = [
        {'id': 1, 'image_id': 10, 'category_id': 2, 'segmentation': encode_mask(a)},      # aeroplane
        {'id': 2, 'image_id': 10, 'category_id': 458, 'segmentation': encode_mask(b)},    # wood
        {'id': 3, 'image_id': 11, 'category_id': 284, 'segmentation': encode_mask(c)},    # person
        # duplicate id 1: replaces the first one's content but keeps its (earlier) position
        {'id': 1, 'image_id': 10, 'category_id': 397, 'segmentation': encode_mask(a)},    # table
    ]
    if extra_ann:
        anns.append(extra_ann)
    data = {'images': [
        {'image_id': 10, 'file_name': '2008_000002.jpg', 'height': h, 'width': w, 'phase': 'val'},
        {'image_id': 11, 'file_name': '2008_000001.jpg', 'height': h, 'width': w, 'phase': 'train'},
        {'image_id': 12, 'file_name': '2008_000009.jpg', 'height': h, 'width': w, 'phase': 'val'},
        {'image_id': 13, 'file_name': '2010_000001.jpg', 'height': h, 'width': w, 'phase': 'test'},
    ], 'annos_segmentation': anns, 'categories': []}
    devkit = tmp_path / 'VOCdevkit' / 'VOC2010'
    devkit.mkdir(parents=True)
    (devkit / 'trainval_merged.json').write_text(json.dumps(data))
    return devkit, (a, b, c)


def test_pascal_context_conversion(tmp_path):
    devkit, (a, b, c) = _detail_json(tmp_path)
    counts = convert_pascal_context(devkit)
    assert counts == {'train': 1, 'val': 2}
    out = devkit / 'SegmentationClassContext'
    m10 = np.array(Image.open(out / '2008_000002.png'))
    rank = {d: k for k, d in enumerate(CONTEXT_DETAIL_IDS_SORTED)}
    expected = np.zeros(a.shape, np.uint8)
    expected[a] = rank[397]        # 'table' (50): the duplicate replaced 'aeroplane'
    expected[b] = rank[458]        # 'wood' (59) painted later, wins the overlap
    np.testing.assert_array_equal(m10, expected)
    assert rank[397] == 50 and rank[458] == 59
    m11 = np.array(Image.open(out / '2008_000001.png'))
    assert m11[5, 7] == rank[284] == 37 and m11.sum() == 37
    assert not np.array(Image.open(out / '2008_000009.png')).any()   # no annotation -> background
    assert not (out / '2010_000001.png').exists()                     # test phase not converted
    split_dir = devkit / 'ImageSets' / 'SegmentationContext'
    assert (split_dir / 'val.txt').read_text() == '2008_000002\n2008_000009\n'
    assert (split_dir / 'train.txt').read_text() == '2008_000001\n'


def test_pascal_context_output_is_readable_by_the_reader(tmp_path):
    devkit, _ = _detail_json(tmp_path)
    jpg = devkit / 'JPEGImages'
    jpg.mkdir()
    for name in ('2008_000002', '2008_000009'):
        Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(jpg / f'{name}.jpg')
    assert convert_main(['context', str(devkit), '--quiet']) == 0
    ds = SegmentationDataset('context60', tmp_path)
    assert [s.id for s in ds] == ['2008_000002', '2008_000009']
    assert ds.load(ds[0])[1].max() == 59


def test_pascal_context_refuses_foreign_category(tmp_path, capsys):
    bad = np.zeros((6, 8), bool)
    bad[0, 0] = True
    devkit, _ = _detail_json(tmp_path, {'id': 9, 'image_id': 12, 'category_id': 3,
                                        'segmentation': encode_mask(bad)})
    with pytest.raises(DatasetError, match='2008_000009.jpg.*ids 3 are not among'):
        convert_pascal_context(devkit)
    assert convert_main(['context', str(devkit), '--quiet']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1


def test_pascal_context_bad_rle_and_missing_json(tmp_path):
    devkit, _ = _detail_json(tmp_path, {'id': 9, 'image_id': 12, 'category_id': 2,
                                        'segmentation': {'size': [6, 8], 'counts': '3'}})
    with pytest.raises(DatasetError, match='annotation 9 of image 2008_000009.jpg'):
        convert_pascal_context(devkit)
    with pytest.raises(DatasetError, match='does not exist'):
        convert_pascal_context(devkit, json_path=devkit / 'nope.json')
    (devkit / 'bad.json').write_text('{"images": []}')
    with pytest.raises(DatasetError, match='annos_segmentation'):
        convert_pascal_context(devkit, json_path=devkit / 'bad.json')


# -- COCO ---------------------------------------------------------------------------------------

def test_coco_lookup_tables():
    stuff = coco_stuff_lut()
    assert len(COCO_STUFF_RAW_FOR_TRAIN_ID) == 171
    spot = {0: 0, 12: 11, 89: 79, 91: 80, 181: 170, 255: 255}
    assert {r: int(stuff[r]) for r in spot} == spot
    assert COCO_STUFF_171_CLASSES[stuff[12]] == 'stop sign'
    assert COCO_STUFF_171_CLASSES[stuff[181]] == 'wood'
    assert stuff[11] == 11 and stuff[200] == 200       # not in the table: unchanged
    obj = coco_object_lut()
    spot = {0: 1, 12: 12, 89: 80, 91: 0, 181: 0, 255: 0}
    assert {r: int(obj[r]) for r in spot} == spot
    assert COCO_OBJECT_81_CLASSES[obj[12]] == 'stop sign'
    assert obj[90] == 90 and obj[200] == 200          # unused / out-of-table values unchanged


def _raw_maps(root):
    rng = np.random.RandomState(0)
    values = np.array([0, 12, 89, 91, 181, 255], np.uint8)
    maps = {}
    for split, names in (('val2017', ['000000000139', '000000000285']),
                         ('train2017', ['000000000009'])):
        d = root / 'annotations' / split
        d.mkdir(parents=True)
        for n in names:
            raw = values[rng.randint(0, len(values), (5, 7))]
            Image.fromarray(raw).save(d / f'{n}.png')
            maps[(split, n)] = raw
    return maps


def test_coco_stuff_and_object_conversion(tmp_path):
    root = tmp_path / 'coco_stuff164k'
    maps = _raw_maps(root)
    report = convert_coco_object(root, splits=['val2017'])   # object first: must not disturb stuff
    assert report.written == {'val2017': 2} and report.unexpected_pixels == 0
    report = convert_coco_stuff(root)
    assert report.written == {'val2017': 2, 'train2017': 1}    # the *TrainIds files are not inputs
    for (split, n), raw in maps.items():
        stuff = np.array(Image.open(root / 'annotations' / split / f'{n}_labelTrainIds.png'))
        np.testing.assert_array_equal(stuff, coco_stuff_lut()[raw])
    raw = maps[('val2017', '000000000139')]
    obj = np.array(Image.open(root / 'annotations/val2017/000000000139_instanceTrainIds.png'))
    assert ((raw == 255) <= (obj == 0)).all() and ((raw == 91) <= (obj == 0)).all()
    assert ((raw == 89) <= (obj == 80)).all() and ((raw == 0) <= (obj == 1)).all()
    assert not (root / 'annotations/train2017/000000000009_instanceTrainIds.png').exists()


def test_coco_cli_reports_unexpected_values_and_errors(tmp_path, capsys):
    root = tmp_path / 'coco_stuff164k'
    d = root / 'annotations' / 'val2017'
    d.mkdir(parents=True)
    raw = np.full((4, 4), 91, np.uint8)
    raw[0, 0] = 11   # an unused COCO thing id: written unchanged, reported
    Image.fromarray(raw).save(d / '000000000001.png')
    Image.fromarray(raw).save(d / '000000000002.png')
    assert convert_main(['coco_stuff', str(root), '--quiet', '--nproc', '2']) == 0
    captured = capsys.readouterr()
    assert 'wrote 2 val2017' in captured.out and '2 pixels in 2 files' in captured.err
    out = np.array(Image.open(d / '000000000001_labelTrainIds.png'))
    assert out[0, 0] == 11 and out[1, 1] == 80
    assert convert_main(['coco_object', str(tmp_path / 'nowhere'), '--quiet']) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: no raw stuffthingmaps folder') and err.count('\n') == 1
