"""Talk2DINO's DINOv3 backbones: tiny random weights in timm's layout through the real loaders."""

import numpy as np
import pytest
import torch

from talk2dino_ros import catalog
from talk2dino_ros.errors import CheckpointError
from talk2dino_ros.model.backbone import build_backbone, normalize_rgb255
from talk2dino_ros.model.dinov3 import dinov3_timm_state_dict, is_dinov3_state_dict
from talk2dino_ros.model.random_weights import tiny_segmenter_config, write_random_weights
from talk2dino_ros.model.segmenter import Segmenter


@pytest.fixture(scope='module')
def v3_weights(tmp_path_factory):
    return write_random_weights(tmp_path_factory.mktemp('dinov3'), 'talk2dino', 'tiny', variant='dinov3_vitb')


def test_random_files_have_the_published_names_and_layout(v3_weights):
    from safetensors.torch import load_file
    files = catalog.get_variant('talk2dino', 'dinov3_vitb').files
    assert {r: p.name for r, p in v3_weights.items()} == dict(files)
    sd = load_file(str(v3_weights['dinov3']))
    assert is_dinov3_state_dict(sd) and 'pos_embed' not in sd
    assert sd['reg_token'].shape == (1, 4, 64) and sd['patch_embed.proj.weight'].shape[-2:] == (16, 16)
    assert 'blocks.1.gamma_1' in sd and 'blocks.0.attn.qkv.bias' not in sd  # timm drops the zero qkv bias


def test_published_widths_match_timm_state_dicts():
    """The catalog's B/L shapes are what timm's hosted files hold (keys and shapes of the real model)."""
    import timm
    for name in ('dinov3_vitb', 'dinov3_vitl'):
        b = catalog.backbones()[name]
        model = timm.create_model(b.timm_name, pretrained=False, num_classes=0)
        assert (model.embed_dim, len(model.blocks), model.blocks[0].attn.num_heads) == (b.embed_dim, b.depth,
                                                                                     b.num_heads)
        assert model.num_prefix_tokens == b.num_prefix_tokens and model.patch_embed.patch_size == (16, 16)


def test_loader_reads_family_size_and_refuses_test_width(v3_weights):
    with pytest.raises(CheckpointError, match='non-standard width'):
        build_backbone(v3_weights['dinov3'])
    bb = build_backbone(v3_weights['dinov3'], expected_variant='dinov3_vitb', allow_test_width=True)
    assert (bb.arch.family, bb.patch_size, bb.num_heads, bb.vit.num_prefix_tokens) == ('dinov3', 16, 4, 5)


def test_family_mismatch_names_the_right_variant(v3_weights, tiny_weights):
    with pytest.raises(CheckpointError, match='DINOv3 checkpoint but variant vitb.*dinov3_vitb'):
        build_backbone(v3_weights['dinov3'], expected_variant='vitb', allow_test_width=True)
    with pytest.raises(CheckpointError, match='DINOv2 checkpoint but variant dinov3_vitl'):
        build_backbone(tiny_weights['dinov2'], expected_variant='dinov3_vitl', allow_test_width=True)


def test_size_mismatch_is_refused(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / 'vit_large_patch16_dinov3.lvd1689m.safetensors'
    save_file(dinov3_timm_state_dict(768, 12, seed=1), str(path))  # a B-sized file
    with pytest.raises(CheckpointError, match='dinov3_vitb model .* variant dinov3_vitl'):
        build_backbone(path, expected_variant='dinov3_vitl')


def test_forward_tokens_and_pre_rope_attention(v3_weights):
    """Patch tokens are the final-norm tokens after CLS + 4 registers; the attention logits are
    q_cls·k_patch / sqrt(head dim) from the last block's qkv projection, before the rotary embedding."""
    bb = build_backbone(v3_weights['dinov3'], expected_variant='dinov3_vitb', allow_test_width=True)
    x = normalize_rgb255(torch.rand(2, 3, 64, 96) * 255)
    captured = {}
    handle = bb.vit.blocks[-1].norm1.register_forward_hook(lambda m, i, o: captured.update(x=o))
    with torch.no_grad():
        feats, attn = bb(x)
        tokens = bb.vit.forward_features(x)
    handle.remove()
    assert feats.shape == (2, 64, 4, 6) and attn.shape == (2, 4, 24)
    torch.testing.assert_close(feats.flatten(2).transpose(1, 2), tokens[:, 5:], rtol=0, atol=0)
    qkv = captured['x'] @ bb.vit.blocks[-1].attn.qkv.weight.T  # no bias in DINOv3
    q = qkv[:, 0, :64].reshape(2, 4, 16)
    k = qkv[:, 5:, 64:128].reshape(2, 24, 4, 16)
    expected = torch.einsum('bmd,bpmd->bmp', q, k) / 4.0  # 16-wide heads: scale 1/4 (0.125 at 64 wide)
    torch.testing.assert_close(attn, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_segmenter_runs_dinov3_variant(v3_weights, mode):
    seg = Segmenter.from_config(tiny_segmenter_config(v3_weights, variant='dinov3_vitb', mode=mode))
    assert seg.method.patch_size == 16
    seg.set_vocabulary(['cat', 'dog', 'grass'])
    rgb = (np.random.default_rng(0).random((70, 101, 3)) * 255).astype(np.uint8)
    result = seg.segment(rgb)
    assert result.labels.shape == (70, 101) and int(result.labels.max()) <= 3


def test_segment_image_cli_accepts_dinov3(v3_weights, tmp_path):
    import cv2
    from talk2dino_ros.cli import segment_image
    img = tmp_path / 'a.png'
    cv2.imwrite(str(img), np.full((40, 50, 3), 120, np.uint8))
    argv = [str(img), '--vocab', 'cat,dog', '--out', str(tmp_path / 'out'), '--variant', 'dinov3_vitb',
            '--weights-dir', str(v3_weights['dinov3'].parent), '--allow-random-weights', '--device', 'cpu',
            '--mode', 'whole', '--no-overlay']
    assert segment_image.main(argv) == 0
    assert any((tmp_path / 'out').iterdir())


def test_dinov3_file_with_a_dinov2_variant_is_one_error_line(v3_weights, tmp_path, capsys):
    from talk2dino_ros.cli import segment_image
    img = tmp_path / 'a.png'
    import cv2
    cv2.imwrite(str(img), np.full((40, 50, 3), 120, np.uint8))
    w = v3_weights
    argv = [str(img), '--vocab', 'cat', '--out', str(tmp_path / 'o'), '--variant', 'vitb', '--allow-random-weights',
            '--dinov2-weights', str(w['dinov3']), '--clip-weights', str(w['clip']), '--proj-weights', str(w['proj'])]
    assert segment_image.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and 'dinov3_vitb' in err and '\n' not in err


def test_node_parameters_accept_dinov3_variants(tmp_path):
    from talk2dino_ros.ros.parameters import NodeSettings, validate
    for name in ('dinov3_vitb', 'dinov3_vitl'):
        assert validate('variant', name, {}) is None
        settings = NodeSettings({'variant': name, 'weights_dir': str(tmp_path)})
        assert [p for _, p, _ in settings.weight_sources()] == ['dinov3_weights', 'clip_weights', 'proj_weights']
    assert validate('variant', 'dinov3_vits', {}) is not None


def test_train_extract_reads_a_dinov3_backbone(v3_weights):
    """The training tools load a DINOv3 file through the same loader (patch 16 grid)."""
    bb = build_backbone(v3_weights['dinov3'], allow_test_width=True)
    feats, _ = bb(normalize_rgb255(torch.rand(1, 3, 448, 448) * 255))
    assert feats.shape[-2:] == (28, 28)


def test_fetch_weights_has_dinov3_bundles():
    from talk2dino_ros.cli import fetch_weights
    from talk2dino_ros.model.pretrained import bundle
    args = fetch_weights.build_parser().parse_args(['--variant', 'dinov3_vitl'])
    files = bundle(args.method, args.variant)
    assert files['dinov3'].url.endswith('timm/vit_large_patch16_dinov3.lvd1689m/resolve/main/model.safetensors')
    assert files['dinov3'].gated and 'DINOv3 License' in files['dinov3'].licence
    assert files['proj'].url.endswith('/weights/dinov3_vitl_mlp_infonce.pth')


def test_hf_token_goes_to_huggingface_only(monkeypatch):
    from talk2dino_ros.cli import fetch_weights
    monkeypatch.setenv('HF_TOKEN', 'hf_secret')
    dinov3 = catalog.PUBLISHED['dinov3_vitb16_lvd1689m']
    assert fetch_weights.request_headers(dinov3.url)['Authorization'] == 'Bearer hf_secret'
    for name in ('clip_vitb16_openai', 'talk2dino_dinov3_vitb', 'dinov2_vitb14_reg'):
        assert 'Authorization' not in fetch_weights.request_headers(catalog.PUBLISHED[name].url)
    monkeypatch.delenv('HF_TOKEN')
    assert 'Authorization' not in fetch_weights.request_headers(dinov3.url)


def _meta_layout(sd):
    """timm's names -> Meta's original DINOv3 names (storage tokens, ls1/ls2, zero qkv bias, rope periods)."""
    out = {}
    for k, v in sd.items():
        k = k.replace('reg_token', 'storage_tokens').replace('gamma_1', 'ls1.gamma').replace('gamma_2', 'ls2.gamma')
        out[k] = v
        if k.endswith('attn.qkv.weight'):
            out[k.replace('weight', 'bias')] = torch.zeros(v.shape[0])
            out[k.replace('weight', 'bias_mask')] = torch.ones(v.shape[0])
    out['rope_embed.periods'] = torch.ones(4)
    out['mask_token'] = torch.zeros(1, sd['cls_token'].shape[-1])
    return out


def test_meta_layout_loads_like_timm_layout(v3_weights, tmp_path):
    from safetensors.torch import load_file
    sd = load_file(str(v3_weights['dinov3']))
    meta = tmp_path / 'dinov3_meta.pth'
    torch.save(_meta_layout(sd), meta)
    a = build_backbone(v3_weights['dinov3'], allow_test_width=True)
    b = build_backbone(meta, expected_variant='dinov3_vitb', allow_test_width=True)
    x = normalize_rgb255(torch.rand(1, 3, 48, 64) * 255)
    with torch.no_grad():
        fa, la = a(x)
        fb, lb = b(x)
    assert torch.equal(fa, fb) and torch.equal(la, lb)
    bad = _meta_layout(sd)
    bad['blocks.0.attn.qkv.bias'] = torch.ones_like(bad['blocks.0.attn.qkv.bias'])
    torch.save(bad, meta)
    with pytest.raises(CheckpointError, match='non-zero qkv biases'):
        build_backbone(meta, allow_test_width=True)


def test_gated_download_refusal_says_how_to_get_access(monkeypatch, tmp_path):
    import urllib.error
    from talk2dino_ros.cli import fetch_weights
    seen = {}

    def refuse(req, timeout):
        seen['auth'] = req.get_header('Authorization')
        raise urllib.error.HTTPError(req.full_url, 401, 'Unauthorized', {}, None)
    monkeypatch.setattr(fetch_weights, 'check_network', lambda url, timeout: None)
    monkeypatch.setattr(fetch_weights.urllib.request, 'urlopen', refuse)
    monkeypatch.delenv('HF_TOKEN', raising=False)
    spec = catalog.PUBLISHED['dinov3_vitb16_lvd1689m']
    with pytest.raises(fetch_weights.FetchError, match='gated.*HF_TOKEN.*DINOv3 License'):
        fetch_weights.download(spec, tmp_path, progress=False)
    assert seen['auth'] is None and not list(tmp_path.iterdir())
