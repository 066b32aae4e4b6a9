"""Feature extraction for ψ training (docs/method.md §4) on a tiny synthetic COCO-captions dataset."""
import json
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import talk2dino_ros.model  # noqa: F401
from talk2dino_ros.model.backbone import build_dinov2_backbone
from talk2dino_ros.model.text import build_clip_text_encoder
from talk2dino_ros.cli.train import main as train_main
from talk2dino_ros.training import extract as ex
from talk2dino_ros.training import features as fmt
from talk2dino_ros.training.coco_captions import DatasetError, check_images_present, load_coco_captions
from talk2dino_ros.training.fit import FitConfig, fit

RES = 56  # a 4x4 patch grid keeps the tiny backbone fast; 448 is checked by the preprocessing test


def make_coco(root: Path, n_images: int = 7, seed: int = 0) -> Path:
    """Images of varied sizes, 0-3 captions each (image 0 has none), in COCO captions json layout."""
    (root / 'images').mkdir(parents=True)
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(n_images):
        name = f'COCO_train2014_{i:012d}.jpg'
        Image.fromarray(rng.integers(0, 255, (40 + 7 * i, 60, 3), dtype=np.uint8)).save(root / 'images' / name)
        images.append({'id': 1000 + i, 'file_name': name, 'height': 40 + 7 * i, 'width': 60})
        for c in range(i % 4):
            anns.append({'id': 50 + len(anns), 'image_id': 1000 + i, 'caption': f'image {i} caption {c}'})
    rng.shuffle(anns)  # annotation order must not matter for grouping
    path = root / 'captions_train2014.json'
    path.write_text(json.dumps({'info': {}, 'images': images, 'annotations': anns}))
    return path


def _cfg(root: Path, weights, out: str = 'out', **kw) -> ex.ExtractConfig:
    base = dict(images=str(root / 'images'), annotations=str(root / 'captions_train2014.json'),
                output=str(root / out), dinov2=str(weights['dinov2']), clip=str(weights['clip']),
                resolution=RES, shard_size=3, batch_size=2, device='cpu', allow_random_weights=True,
                progress=False, workers=2)
    base.update(kw)
    return ex.ExtractConfig(**base)


# ---- dataset reading ---------------------------------------------------------------------------

def test_coco_reader_groups_captions_by_image(tmp_path):
    ann = make_coco(tmp_path)
    data = load_coco_captions(ann)
    assert [im.id for im in data.images] == list(range(1000, 1007))
    assert len(data.captions) == sum(i % 4 for i in range(7))
    assert list(data.caption_image) == sorted(data.caption_image)  # grouped, in image order
    for cap, img in zip(data.captions, data.caption_image):
        assert cap.startswith(f'image {img} ')
    ranges = data.caption_range()
    assert ranges[0] == (0, 0) and ranges[1] == (0, 1) and ranges[3] == (3, 6)
    assert len(load_coco_captions(ann, limit=3).images) == 3


def test_coco_reader_errors(tmp_path):
    with pytest.raises(DatasetError, match='annotation file not found: .*nope.json'):
        load_coco_captions(tmp_path / 'nope.json')
    bad = tmp_path / 'bad.json'
    bad.write_text('{"images": [')
    with pytest.raises(DatasetError, match='not readable JSON'):
        load_coco_captions(bad)
    bad.write_text('{"images": []}')
    with pytest.raises(DatasetError, match='COCO captions format'):
        load_coco_captions(bad)
    ann = make_coco(tmp_path / 'ds')
    for name in ('COCO_train2014_000000000002.jpg', 'COCO_train2014_000000000005.jpg'):
        (tmp_path / 'ds' / 'images' / name).unlink()
    with pytest.raises(DatasetError, match=r'2 of 7 images .* absent .*000000000002\.jpg, .*000000000005\.jpg'):
        check_images_present(load_coco_captions(ann), tmp_path / 'ds' / 'images')


def test_cli_missing_annotations_is_one_line(tmp_path, capsys):
    rc = train_main(['extract', '--images', str(tmp_path), '--annotations', str(tmp_path / 'none.json'),
                     '--output', str(tmp_path / 'o'), '--dinov2', 'd.pth', '--clip', 'c.pt', '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith('error: annotation file not found') and err.count('\n') == 1


# ---- the extracted quantities ------------------------------------------------------------------

def test_attention_pooling_matches_definition():
    gen = torch.Generator().manual_seed(0)
    patches = torch.randn(2, 9, 5, generator=gen)
    logits = torch.randn(2, 3, 9, generator=gen) * 3
    heads, avg = ex.attention_pooled(patches, logits)
    for b in range(2):
        for m in range(3):
            w = torch.exp(logits[b, m]) / torch.exp(logits[b, m]).sum()
            want = torch.stack([w[p] * patches[b, p] for p in range(9)]).mean(0)
            assert torch.allclose(heads[b, m], want, atol=1e-6)
        w = torch.softmax(logits[b].mean(0), 0)
        assert torch.allclose(avg[b], (w[:, None] * patches[b]).sum(0) / 9, atol=1e-6)


def test_preprocessing_is_short_side_bicubic_then_center_crop():
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 500, 3), dtype=np.uint8))
    got = ex.image_transform(448)(img)
    resized = np.asarray(img.resize((746, 448), Image.BICUBIC), dtype=np.float32) / 255  # int(448*500/300)=746
    crop = resized[:, 149:149 + 448]
    want = (crop - np.array(ex.IMAGENET_MEAN)) / np.array(ex.IMAGENET_STD)
    assert got.shape == (3, 448, 448)
    np.testing.assert_allclose(got.permute(1, 2, 0).numpy(), want, atol=1e-5)


def test_disk_estimate():
    # ViT-B: 12 heads x 768 + 768 per image, fp16; 512-d captions + int64 index
    assert ex.estimate_bytes(10, 50, 12, 768, 512, 1024, 2, False) == 10 * 13 * 768 * 2 + 50 * (1024 + 8)
    assert ex.estimate_bytes(1, 0, 12, 768, 512, 1024, 2, True) == (13 + 1024) * 768 * 2


# ---- end to end with tiny random weights -------------------------------------------------------

@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """Tiny random Talk2DINO checkpoints in the published formats (role -> path)."""
    from talk2dino_ros.model.random_weights import write_random_weights
    return write_random_weights(tmp_path_factory.mktemp('weights'), 'talk2dino', 'tiny', seed=0)


@pytest.fixture(scope='module')
def extracted(tmp_path_factory, weights):
    root = tmp_path_factory.mktemp('coco')
    make_coco(root)
    stats = ex.run_extract(_cfg(root, weights, patch_tokens=True), log=lambda s: None)
    return root, stats


def test_extraction_content(extracted, weights):
    root, stats = extracted
    fs = fmt.FeatureSet(root / 'out')
    man = fs.manifest
    backbone = build_dinov2_backbone(weights['dinov2'], allow_test_width=True)
    assert man['backbone']['embed_dim'] == backbone.embed_dim and man['backbone']['num_heads'] == backbone.num_heads
    assert man['backbone']['sha256'] == ex.sha256_file(weights['dinov2'])
    assert len(man['shards']) == 3 and stats['images'] == 7 and stats['captions'] == fs.num_captions == 9
    # tiny test widths: the manifest says the features are of random weights (issue 24)
    assert man['random_weights'] is True and stats['random_weights'] is True and fs.random_weights
    # image 4 recomputed directly: heads/avg/patch tokens
    img = Image.open(root / 'images' / 'COCO_train2014_000000000004.jpg')
    with torch.no_grad():
        feats, logits = backbone(ex.image_transform(RES)(img)[None])
    patches = feats.flatten(2).transpose(1, 2)
    heads, avg = ex.attention_pooled(patches, logits)
    np.testing.assert_allclose(fs.arrays['heads'].gather([4])[0].astype(np.float32), heads[0].numpy(),
                               rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(fs.arrays['avg'].gather([4])[0].astype(np.float32), avg[0].numpy(),
                               rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(fs.arrays['patches'].gather([4])[0].astype(np.float32), patches[0].numpy(),
                               rtol=2e-3, atol=2e-3)
    assert fs.arrays['heads'].dtype == np.float16
    # captions: raw CLIP embedding of each text, in image order
    index = json.loads((root / 'out' / fmt.INDEX).read_text())
    texts = [c['caption'] for c in index['captions']]
    enc = build_clip_text_encoder(weights['clip'])
    np.testing.assert_allclose(fs.arrays['text'].materialize().astype(np.float32), enc.encode_raw(texts).numpy(),
                               rtol=2e-3, atol=2e-3)
    assert list(fs.arrays['caption_image'].materialize()) == [c['image'] for c in index['captions']]
    assert all(t.startswith(f"image {c['image']} ") for t, c in zip(texts, index['captions']))


def test_resume_after_interruption_matches_uninterrupted(extracted, weights, monkeypatch):
    root, _ = extracted
    real_write = fmt.write_shard
    calls = []

    def crash_after_first(folder, manifest, shard, arrays):
        if calls:
            raise KeyboardInterrupt
        calls.append(shard)
        real_write(folder, manifest, shard, arrays)

    monkeypatch.setattr(fmt, 'write_shard', crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        ex.run_extract(_cfg(root, weights, 'resumed', patch_tokens=True), log=lambda s: None)
    monkeypatch.setattr(fmt, 'write_shard', real_write)
    assert [s['complete'] for s in fmt.read_manifest(root / 'resumed')['shards']] == [True, False, False]
    stats = ex.run_extract(_cfg(root, weights, 'resumed', patch_tokens=True), log=lambda s: None)
    assert stats['images'] == 4  # shard 0 (3 images) skipped
    a, b = fmt.FeatureSet(root / 'out'), fmt.FeatureSet(root / 'resumed')
    for name in ('heads', 'avg', 'patches', 'text', 'caption_image'):
        np.testing.assert_array_equal(a.arrays[name].materialize(), b.arrays[name].materialize())
    assert ex.run_extract(_cfg(root, weights, 'resumed', patch_tokens=True), log=lambda s: None)['images'] == 0


def test_resume_with_another_backbone_or_options_is_refused(extracted, weights, tmp_path):
    root, _ = extracted
    other = tmp_path / 'other_dinov2.pth'
    sd = torch.load(weights['dinov2'], weights_only=True)
    torch.save({k: v + 0.01 if v.is_floating_point() else v for k, v in sd.items()}, other)
    with pytest.raises(fmt.FeatureError, match='different setup .*backbone'):
        ex.run_extract(_cfg(root, dict(weights, dinov2=other), patch_tokens=True), log=lambda s: None)
    with pytest.raises(fmt.FeatureError, match='different setup .*patch_tokens'):
        ex.run_extract(_cfg(root, weights, patch_tokens=False), log=lambda s: None)
    # and fit refuses features from another checkpoint than the one selected
    with pytest.raises(fmt.FeatureError, match='sha256'):
        fit(FitConfig(features=str(root / 'out'), dinov2=str(other), output=str(tmp_path / 'p.pth'),
                      device='cpu', progress=False), log=lambda s: None)


def test_not_enough_disk_space_refuses_before_writing(tmp_path, weights, monkeypatch):
    make_coco(tmp_path)
    Usage = namedtuple('Usage', 'total used free')
    monkeypatch.setattr(ex.shutil, 'disk_usage', lambda p: Usage(10 ** 6, 10 ** 6, 1000))
    with pytest.raises(ex.ExtractError, match='not enough disk space'):
        ex.run_extract(_cfg(tmp_path, weights), log=lambda s: None)
    assert not (tmp_path / 'out').exists()


def test_fitted_psi_loads_in_the_segmenter_and_changes_its_output(extracted, weights, tmp_path):
    from talk2dino_ros.model.random_weights import tiny_segmenter_config
    from talk2dino_ros.model.segmenter import Segmenter
    root, _ = extracted
    out = fit(FitConfig(features=str(root / 'out'), output=str(tmp_path / 'psi.pth'), epochs=3, batch_size=4,
                        lr=1e-2, device='cpu', progress=False, variant='', dinov2=str(weights['dinov2'])),
              log=lambda s: None).output
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    results = []
    for proj in (weights['proj'], out):
        seg = Segmenter.from_config(tiny_segmenter_config(dict(weights, proj=proj)))
        seg.set_vocabulary(['cat', 'dog', 'road'])
        results.append(seg.segment(image).scores)
    assert results[0].shape == results[1].shape
    assert np.abs(results[0] - results[1]).max() > 1e-4
