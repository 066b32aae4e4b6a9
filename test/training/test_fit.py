"""ψ training (docs/method.md §4) on synthetic feature folders: loss, recall, planted mapping, resume, errors."""
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import talk2dino_ros.model  # noqa: F401
from talk2dino_ros.model.projection import ProjectionHead, build_projection
from talk2dino_ros.cli.train import main as train_main
from talk2dino_ros.training import features as fmt
from talk2dino_ros.training.fit import (FitConfig, FitError, ValidationSet, fit, max_head_infonce,
                                        retrieval_recall, select_heads)

D, M, E = 32, 4, 64


def write_planted(folder: Path, n_img: int, caps_per_img: int, seed: int, mapping: np.ndarray,
                  shard_size: int = 50, backbone_sha: str = 'a' * 64, dtype=np.float16) -> dict:
    """Features where caption text = mapping @ (the image's planted head vector) + small noise.

    ``avg`` (the validation image embedding) is the planted head vector itself.
    """
    rng = np.random.default_rng(seed)
    heads = rng.normal(size=(n_img, M, D)).astype(np.float32)
    planted = rng.integers(0, M, size=n_img)
    target = heads[np.arange(n_img), planted]
    cap_img = np.repeat(np.arange(n_img), caps_per_img)
    text = target[cap_img] @ mapping.T + 0.05 * rng.normal(size=(len(cap_img), E))
    ranges = [(i * caps_per_img, (i + 1) * caps_per_img) for i in range(n_img)]
    header = {'format': fmt.FORMAT,
              'backbone': {'variant': 'test', 'embed_dim': D, 'num_heads': M, 'depth': 1,
                           'checkpoint': 'x.pth', 'sha256': backbone_sha},
              'text': {'model': 'clip', 'embed_dim': E, 'checkpoint': 'c.pt', 'sha256': 'b' * 64, 'truncate': True},
              'preprocessing': {'resolution': 448},
              'dataset': {'annotations': f'synthetic{seed}.json', 'num_images': n_img},
              'dtype': np.dtype(dtype).name, 'shard_size': shard_size, 'patch_tokens': False}
    manifest = fmt.open_for_writing(folder, header, fmt.plan_shards(ranges, shard_size), {'images': []})
    for shard in manifest['shards']:
        i0, i1 = shard['images']
        c0, c1 = shard['captions']
        fmt.write_shard(folder, manifest, shard['index'], {
            'heads': heads[i0:i1].astype(dtype), 'avg': target[i0:i1].astype(dtype),
            'text': text[c0:c1].astype(dtype), 'caption_image': cap_img[c0:c1]})
    return {'heads': heads, 'planted': planted, 'text': text, 'caption_image': cap_img}


@pytest.fixture(scope='module')
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp('planted')
    mapping = np.random.default_rng(0).normal(size=(E, D)) / np.sqrt(D)
    train = write_planted(root / 'train', 300, 2, seed=1, mapping=mapping)
    write_planted(root / 'val', 64, 2, seed=2, mapping=mapping)
    return root, train


def _cfg(root: Path, run: str, **kw) -> FitConfig:
    base = dict(features=str(root / 'train'), val_features=str(root / 'val'), output=str(root / run / 'psi.pth'),
                run_dir=str(root / run / 'run'), epochs=2, batch_size=64, lr=1e-3, device='cpu', progress=False,
                val_max_images=0)
    base.update(kw)
    return FitConfig(**base)


# ---- the loss --------------------------------------------------------------------------------

def test_loss_matches_explicit_formula():
    gen = torch.Generator().manual_seed(0)
    text = torch.randn(6, D, generator=gen)
    heads = torch.randn(6, M, D, generator=gen)
    t = text / text.norm(dim=1, keepdim=True)
    h = heads / heads.norm(dim=2, keepdim=True)
    v = torch.stack([h[i, int(torch.argmax(h[i] @ t[i]))] for i in range(6)])
    s = t @ v.T
    expected = 0.0
    for i in range(6):  # -log softmax of the matched pair, rows (texts) and columns (images)
        expected += -torch.log_softmax(s[i] / 0.07, 0)[i] / 2 - torch.log_softmax(s[:, i] / 0.07, 0)[i] / 2
    expected = expected / 6 / 36
    assert torch.allclose(max_head_infonce(text, heads, 0.07), expected, atol=1e-7)


def test_head_selection_uses_each_images_own_caption():
    heads = torch.zeros(2, 3, 2)
    heads[0, 2] = torch.tensor([1.0, 0.0])   # image 0: head 2 points along x
    heads[0, 0] = torch.tensor([0.0, 1.0])
    heads[1, 1] = torch.tensor([0.0, 1.0])   # image 1: head 1 points along y
    heads[1, 0] = torch.tensor([1.0, 0.0])
    heads = heads + 1e-3  # no zero vectors
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = select_heads(text, F.normalize(heads, dim=-1))
    assert torch.allclose(v, F.normalize(heads[[0, 1], [2, 1]], dim=-1))


def test_retrieval_recall_by_hand():
    images = torch.eye(3)
    # captions 0,1 -> image 0; caption 2 -> image 1; caption 3 -> image 2 (but closest to image 0)
    text = F.normalize(torch.tensor([[1.0, 0.1, 0], [1.0, 0, 0.2], [0, 1.0, 0.1], [1.0, 0, 0.5]]), dim=1)
    r = retrieval_recall(text, images, torch.tensor([0, 0, 1, 2]), ks=(1, 2))
    assert r['t2i_r1'] == pytest.approx(75.0) and r['t2i_r2'] == pytest.approx(100.0)
    # image 2's best captions: 3 (0.45) then 2 (0.1) -> hit at rank 1
    assert r['i2t_r1'] == pytest.approx(100.0)


# ---- training --------------------------------------------------------------------------------

def test_planted_mapping_is_learned_and_random_psi_is_not(planted, tmp_path):
    root, train = planted
    from talk2dino_ros.training.features import FeatureSet
    val = ValidationSet(FeatureSet(root / 'val'))
    torch.manual_seed(5)
    random_r = val.evaluate(ProjectionHead(E, D), torch.device('cpu'), (1, 5))
    result = fit(_cfg(root, 'learn', epochs=25), log=lambda s: None)
    last = result.history[-1]
    assert random_r['t2i_r1'] < 20 and random_r['i2t_r1'] < 20
    assert last['t2i_r1'] > 90 and last['i2t_r1'] > 90 and last['t2i_r5'] >= last['t2i_r1']
    assert result.history[0]['loss'] > last['loss']
    # the trained ψ also picks the planted head on training captions far above chance (1/M)
    head = build_projection(result.output)
    with torch.no_grad():
        t = F.normalize(head(torch.from_numpy(train['text'][:200]).float()), dim=-1)
    h = F.normalize(torch.from_numpy(train['heads'][train['caption_image'][:200]]), dim=-1)
    chosen = torch.einsum('bd,bmd->bm', t, h).argmax(1).numpy()
    assert (chosen == train['planted'][train['caption_image'][:200]]).mean() > 0.9


def test_released_layout(planted):
    root, _ = planted
    out = fit(_cfg(root, 'layout', epochs=1, val_features=''), log=lambda s: None).output
    sd = torch.load(out, weights_only=True)
    assert type(sd) is OrderedDict
    assert list(sd) == ['linear_layer.weight', 'linear_layer.bias', 'hidden_layers.0.weight', 'hidden_layers.0.bias']
    assert [tuple(v.shape) for v in sd.values()] == [(D, E), (D,), (D, D), (D,)]
    assert all(v.dtype == torch.float32 for v in sd.values())
    assert build_projection(out, text_dim=E, dino_dim=D).out_dim == D


def test_resume_is_bit_identical(planted):
    root, _ = planted
    full = fit(_cfg(root, 'full', epochs=3), log=lambda s: None)
    fit(_cfg(root, 'split', epochs=1), log=lambda s: None)
    logs = []
    resumed = fit(_cfg(root, 'split', epochs=3), log=logs.append)
    assert any('resuming' in line for line in logs)
    a, b = torch.load(full.output, weights_only=True), torch.load(resumed.output, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r['loss'] for r in full.history] == [r['loss'] for r in resumed.history]
    # a different seed really gives different weights (the comparison above can fail)
    other = fit(_cfg(root, 'seed', epochs=1, seed=7), log=lambda s: None)
    c = torch.load(other.output, weights_only=True)
    assert not torch.equal(a['linear_layer.weight'], c['linear_layer.weight'])


def test_resume_refuses_changed_recipe_or_disabled_resume(planted):
    root, _ = planted
    fit(_cfg(root, 'guard', epochs=1), log=lambda s: None)
    with pytest.raises(FitError, match='lr'):
        fit(_cfg(root, 'guard', epochs=2, lr=5e-4), log=lambda s: None)
    with pytest.raises(FitError, match='--resume'):
        fit(_cfg(root, 'guard', epochs=2, resume=False), log=lambda s: None)


def test_backbone_mismatch_is_a_clear_error(planted, tmp_path):
    root, _ = planted
    with pytest.raises(fmt.FeatureError, match='variant vitb'):
        fit(_cfg(root, 'v', variant='vitb'), log=lambda s: None)
    fake_ckpt = tmp_path / 'dinov2.pth'
    fake_ckpt.write_bytes(b'not the checkpoint the features came from')
    with pytest.raises(fmt.FeatureError, match='sha256'):
        fit(_cfg(root, 'v', dinov2=str(fake_ckpt)), log=lambda s: None)
    mapping = np.eye(E, D)
    write_planted(tmp_path / 'other', 10, 1, seed=3, mapping=mapping, backbone_sha='c' * 64)
    with pytest.raises(fmt.FeatureError, match='differ in backbone'):
        fit(_cfg(root, 'v', val_features=str(tmp_path / 'other')), log=lambda s: None)


def test_incomplete_or_missing_features(tmp_path, planted):
    root, _ = planted
    manifest = fmt.read_manifest(root / 'train')
    manifest['shards'][1]['complete'] = False
    (tmp_path / 'partial').mkdir()
    fmt._write_json_atomic(tmp_path / 'partial' / fmt.MANIFEST, manifest)
    with pytest.raises(fmt.FeatureError, match='incomplete'):
        fmt.FeatureSet(tmp_path / 'partial')
    with pytest.raises(fmt.FeatureError, match='no feature manifest'):
        fmt.FeatureSet(tmp_path / 'nothing')


def test_sharded_gather_across_shards(planted):
    root, train = planted
    fs = fmt.FeatureSet(root / 'train')
    assert len(fs.manifest['shards']) == 6 and fs.num_captions == 600
    rows = np.array([299, 0, 50, 49, 150, 150])
    np.testing.assert_array_equal(fs.arrays['heads'].gather(rows), train['heads'][rows].astype(np.float16))


def test_cli_fit_and_error_line(planted, capsys):
    root, _ = planted
    out = root / 'cli' / 'psi.pth'
    rc = train_main(['fit', '--features', str(root / 'train'), '--output', str(out), '--epochs', '1',
                     '--batch-size', '100', '--device', 'cpu', '--no-progress', '--val-features', str(root / 'val'),
                     '--val-max-images', '10'])
    assert rc == 0 and out.is_file()
    assert 'epoch 1' in capsys.readouterr().out
    rc = train_main(['fit', '--features', str(root / 'missing'), '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith('error: no feature manifest') and err.count('\n') == 1
