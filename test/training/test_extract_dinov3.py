"""ψ training features from a DINOv3 backbone (patch 16): `train extract` with the dinov3_vitb variant."""
import json

import numpy as np
import pytest
from PIL import Image

import talk2dino_ros.model  # noqa: F401
from talk2dino_ros.model.random_weights import write_random_weights
from talk2dino_ros.training import extract as ex
from talk2dino_ros.training import features as fmt

RES = 112  # a multiple of both patch sizes: a 7x7 DINOv3 grid


def _coco(root):
    (root / 'images').mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(3):
        name = f'img{i}.jpg'
        Image.fromarray(rng.integers(0, 255, (50 + 9 * i, 70, 3), dtype=np.uint8)).save(root / 'images' / name)
        images.append({'id': i, 'file_name': name, 'height': 50 + 9 * i, 'width': 70})
        anns.append({'id': 10 + i, 'image_id': i, 'caption': f'picture number {i}'})
    (root / 'captions.json').write_text(json.dumps({'images': images, 'annotations': anns}))


def _cfg(root, weights, **kw):
    base = dict(images=str(root / 'images'), annotations=str(root / 'captions.json'), output=str(root / 'out'),
                dinov2=str(weights['dinov3']), clip=str(weights['clip']), resolution=RES, shard_size=2,
                batch_size=2, device='cpu', allow_random_weights=True, progress=False, workers=1,
                variant='dinov3_vitb', patch_tokens=True)
    base.update(kw)
    return ex.ExtractConfig(**base)


def test_extract_with_a_dinov3_backbone(tmp_path):
    weights = write_random_weights(tmp_path / 'w', 'talk2dino', 'tiny', variant='dinov3_vitb')
    _coco(tmp_path)
    stats = ex.run_extract(_cfg(tmp_path, weights), log=lambda s: None)
    assert stats['images'] == 3
    fs = fmt.FeatureSet(tmp_path / 'out')
    assert fs.manifest['backbone']['embed_dim'] == 64
    assert fs.arrays['patches'].gather([1])[0].shape == ((RES // 16) ** 2, 64)


def test_extract_refuses_a_resolution_that_is_not_a_multiple_of_16(tmp_path):
    weights = write_random_weights(tmp_path / 'w', 'talk2dino', 'tiny', variant='dinov3_vitb')
    _coco(tmp_path)
    with pytest.raises(ex.ExtractError, match='patch size 16'):
        ex.run_extract(_cfg(tmp_path, weights, resolution=126), log=lambda s: None)


def test_extract_takes_a_multiple_of_16_that_is_not_one_of_14(tmp_path):
    """The resolution rule follows the variant's patch size (DINOv3: 16), not DINOv2's 14."""
    weights = write_random_weights(tmp_path / 'w', 'talk2dino', 'tiny', variant='dinov3_vitb')
    _coco(tmp_path)
    stats = ex.run_extract(_cfg(tmp_path, weights, resolution=32), log=lambda s: None)
    assert stats['images'] == 3
    assert fmt.FeatureSet(tmp_path / 'out').arrays['patches'].gather([0])[0].shape[0] == (32 // 16) ** 2
