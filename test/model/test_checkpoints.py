"""Checkpoint loaders: every published layout loads, every broken file is one CheckpointError naming it."""
import subprocess
from collections import OrderedDict

import pytest
import torch

import talk2dino_ros.model  # noqa: F401  (torchvision workaround before timm/open_clip)
import open_clip
import timm
from timm.models.vision_transformer import checkpoint_filter_fn

from talk2dino_ros.model.backbone import build_dinov2_backbone, infer_dinov2_arch
from talk2dino_ros.model import checkpoints
from talk2dino_ros.model.checkpoints import git_blob_sha1, load_state_dict_file, sha256_file
from talk2dino_ros.errors import CheckpointError
from talk2dino_ros.model.methods.talk2dino import build_talk2dino
from talk2dino_ros.model.projection import build_projection
from talk2dino_ros.model.random_weights import WIDTHS, clip_state_dict, openai_dtypes, projection_state_dict
from talk2dino_ros.model.text import build_clip_text_encoder, tokenize

DINO_DIM, DINO_DEPTH = WIDTHS['tiny']['dino']
TEXT_WIDTH, TEXT_LAYERS, TEXT_EMBED = WIDTHS['tiny']['text']
VISION_WIDTH, VISION_LAYERS, VISION_PATCH = WIDTHS['tiny']['vision']

LOADERS = {
    'dinov2': lambda p: build_dinov2_backbone(p, allow_test_width=True),
    'clip': lambda p: build_clip_text_encoder(p),
    'proj': lambda p: build_projection(p),
}


def _raises(loader, path, *fragments) -> str:
    """Assert ``loader(path)`` raises a CheckpointError whose message names the file and the problem."""
    with pytest.raises(CheckpointError) as info:
        loader(path)
    msg = str(info.value)
    assert str(path) in msg, f'error does not name the file: {msg}'
    assert any(f in msg for f in fragments), f'error does not say what is wrong ({fragments}): {msg}'
    return msg


def _dino_out(backbone, size=(56, 84)):
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return backbone(x)


# ------------------------------------------------------------------ broken files, every loader

@pytest.mark.parametrize('role', sorted(LOADERS))
def test_missing_file(role, tmp_path):
    _raises(LOADERS[role], tmp_path / 'nope.pth', 'not found')


@pytest.mark.parametrize('role', sorted(LOADERS))
def test_empty_file(role, tmp_path):
    path = tmp_path / 'empty.pth'
    path.write_bytes(b'')
    _raises(LOADERS[role], path, 'empty')


@pytest.mark.parametrize('role', sorted(LOADERS))
def test_truncated_file(role, tiny_weights, tmp_path):
    data = tiny_weights[role].read_bytes()
    path = tmp_path / ('cut' + tiny_weights[role].suffix)
    path.write_bytes(data[:len(data) // 2])
    _raises(LOADERS[role], path, 'truncated', 'corrupt')


@pytest.mark.parametrize('role', sorted(LOADERS))
def test_random_bytes(role, tmp_path):
    path = tmp_path / 'noise.pth'
    path.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(1),
                                   dtype=torch.uint8).numpy().tobytes())
    _raises(LOADERS[role], path, 'not a PyTorch checkpoint', 'corrupt')


@pytest.mark.parametrize('role', sorted(LOADERS))
def test_directory_instead_of_file(role, tmp_path):
    _raises(LOADERS[role], tmp_path, 'not a file')


@pytest.mark.parametrize('role', sorted(LOADERS))
def test_pickle_with_objects_is_refused(role, tmp_path):
    # weights_only loading: arbitrary pickled objects are rejected, not executed
    path = tmp_path / 'objects.pth'
    torch.save({'weights': torch.zeros(2), 'cfg': OrderedDict, 'fn': len}, path)
    _raises(LOADERS[role], path, 'objects other than tensors', 'corrupt')


@pytest.mark.parametrize('role', sorted(LOADERS))
def test_not_a_state_dict(role, tmp_path):
    path = tmp_path / 'list.pth'
    torch.save([torch.zeros(3)], path)
    _raises(LOADERS[role], path, 'does not hold a state dict')


@pytest.mark.parametrize('role', sorted(LOADERS))
def test_no_tensors(role, tmp_path):
    path = tmp_path / 'meta.pth'
    torch.save({'epoch': 3, 'lr': 0.1}, path)
    _raises(LOADERS[role], path, 'contains no tensors')


# ------------------------------------------------------------------ wrong architecture

@pytest.mark.parametrize('role,other', [
    ('dinov2', 'clip'), ('dinov2', 'proj'), ('clip', 'dinov2'), ('clip', 'proj'),
    ('proj', 'dinov2'), ('proj', 'clip'),
])
def test_wrong_architecture_file(role, other, tiny_weights):
    """A file of another role: missing keys are listed, not a KeyError or a shape crash."""
    # the OpenAI TorchScript archive given as DINOv2/ψ is recognised as such rather than as missing keys
    _raises(LOADERS[role], tiny_weights[other], 'missing keys', 'TorchScript')


def test_dinov2_without_registers(tiny_weights, tmp_path):
    sd = torch.load(tiny_weights['dinov2'], weights_only=True)
    del sd['register_tokens']
    path = tmp_path / 'dinov2_vitb14_pretrain.pth'
    torch.save(sd, path)
    _raises(LOADERS['dinov2'], path, 'register')


def test_dinov2_wrong_patch_size(tiny_weights, tmp_path):
    sd = torch.load(tiny_weights['dinov2'], weights_only=True)
    sd['patch_embed.proj.weight'] = torch.zeros(DINO_DIM, 3, 16, 16)
    path = tmp_path / 'patch16.pth'
    torch.save(sd, path)
    _raises(LOADERS['dinov2'], path, 'patch')


def test_dinov2_inconsistent_tensor_shape(tiny_weights, tmp_path):
    """One block tensor of the wrong width (a different model's file spliced in) -> CheckpointError."""
    sd = torch.load(tiny_weights['dinov2'], weights_only=True)
    sd['blocks.1.mlp.fc1.weight'] = torch.zeros(3 * DINO_DIM, DINO_DIM)
    path = tmp_path / 'spliced.pth'
    torch.save(sd, path)
    _raises(LOADERS['dinov2'], path, 'blocks.1.mlp.fc1.weight')


def _official_layout_shapes(dim: int, depth: int):
    """Key -> shape of ``dinov2_vit?14_reg4_pretrain.pth`` (docs/method.md §8)."""
    shapes = {'cls_token': (1, 1, dim), 'pos_embed': (1, 1 + 37 * 37, dim), 'register_tokens': (1, 4, dim),
              'mask_token': (1, dim), 'patch_embed.proj.weight': (dim, 3, 14, 14), 'patch_embed.proj.bias': (dim,),
              'norm.weight': (dim,), 'norm.bias': (dim,)}
    for i in range(depth):
        p = f'blocks.{i}.'
        shapes.update({p + 'norm1.weight': (dim,), p + 'norm1.bias': (dim,),
                       p + 'attn.qkv.weight': (3 * dim, dim), p + 'attn.qkv.bias': (3 * dim,),
                       p + 'attn.proj.weight': (dim, dim), p + 'attn.proj.bias': (dim,), p + 'ls1.gamma': (dim,),
                       p + 'norm2.weight': (dim,), p + 'norm2.bias': (dim,),
                       p + 'mlp.fc1.weight': (4 * dim, dim), p + 'mlp.fc1.bias': (4 * dim,),
                       p + 'mlp.fc2.weight': (dim, 4 * dim), p + 'mlp.fc2.bias': (dim,), p + 'ls2.gamma': (dim,)})
    return shapes


def _save_shape_only(shapes, path):
    # expanded views share a one-element storage: a ViT-L-shaped file of a few kB
    one = torch.zeros(1)
    torch.save({k: one.expand(*s) for k, s in shapes.items()}, path)


@pytest.mark.parametrize('variant,dim,depth,selected', [('vitl', 1024, 24, 'vitb'), ('vitb', 768, 12, 'vitl'),
                                                        ('vits', 384, 12, 'vitb')])
def test_dinov2_wrong_width_for_selected_variant(variant, dim, depth, selected, tmp_path, monkeypatch):
    path = tmp_path / f'dinov2_{variant}14_reg4_pretrain.pth'
    _save_shape_only(_official_layout_shapes(dim, depth), path)
    assert path.stat().st_size < 1_000_000
    # a shape-only file is itself refused (its tensors are views of one value) ...
    _raises(lambda p: load_state_dict_file(p, 'DINOv2'), path, 'crafted view')
    # ... so, to check the variant rule on a few-kB file, let it through
    monkeypatch.setattr(checkpoints, 'check_tensor_data', lambda *args: None)
    sd = load_state_dict_file(path, 'DINOv2')
    arch = infer_dinov2_arch(sd, path)
    assert (arch.variant, arch.embed_dim, arch.depth, arch.num_heads) == (variant, dim, depth, dim // 64)
    msg = _raises(lambda p: build_dinov2_backbone(p, expected_variant=selected), path, 'variant')
    assert variant in msg and selected in msg


def test_dinov2_test_width_needs_permission(tiny_weights):
    _raises(lambda p: build_dinov2_backbone(p), tiny_weights['dinov2'], 'non-standard width')


def test_clip_inconsistent_tensor_shape(tmp_path):
    sd = clip_state_dict(TEXT_WIDTH, TEXT_LAYERS, TEXT_EMBED, VISION_WIDTH, VISION_LAYERS, VISION_PATCH)
    sd['transformer.resblocks.1.mlp.c_fc.weight'] = torch.zeros(10, TEXT_WIDTH)
    path = tmp_path / 'spliced_clip.pt'
    torch.save(sd, path)
    _raises(LOADERS['clip'], path, 'c_fc')


def test_clip_wrong_vocabulary(tmp_path):
    sd = clip_state_dict(TEXT_WIDTH, TEXT_LAYERS, TEXT_EMBED, VISION_WIDTH, VISION_LAYERS, VISION_PATCH)
    sd['token_embedding.weight'] = torch.zeros(1000, TEXT_WIDTH)
    path = tmp_path / 'small_vocab.pt'
    torch.save(sd, path)
    _raises(LOADERS['clip'], path, 'not a CLIP text tower')


def test_clip_vision_only_file(tmp_path):
    sd = clip_state_dict(TEXT_WIDTH, TEXT_LAYERS, TEXT_EMBED, VISION_WIDTH, VISION_LAYERS, VISION_PATCH)
    path = tmp_path / 'visual.pt'
    torch.save({k: v for k, v in sd.items() if k.startswith('visual.')}, path)
    _raises(LOADERS['clip'], path, 'missing keys')


# ------------------------------------------------------------------ DINOv2: official vs timm layout

def _independent_timm(official_sd, img_size):
    """timm's own DINOv2 reg4 model with the official weights through timm's filter (docs/method.md §8)."""
    model = timm.create_model('vit_base_patch14_reg4_dinov2', pretrained=False, img_size=img_size, num_classes=0,
                              embed_dim=DINO_DIM, depth=DINO_DEPTH, num_heads=DINO_DIM // 16)
    model.load_state_dict(checkpoint_filter_fn(dict(official_sd), model), strict=True)
    return model.eval()


def test_official_layout_values(tiny_weights):
    """The official file's values end where timm expects them (CLS position folded, registers renamed)."""
    sd = torch.load(tiny_weights['dinov2'], weights_only=True)
    vit = build_dinov2_backbone(tiny_weights['dinov2'], allow_test_width=True).vit
    assert torch.equal(vit.cls_token, sd['cls_token'] + sd['pos_embed'][:, :1])
    assert torch.equal(vit.reg_token, sd['register_tokens'])
    assert torch.equal(vit.pos_embed, sd['pos_embed'][:, 1:])
    assert torch.equal(vit.blocks[1].attn.qkv.weight, sd['blocks.1.attn.qkv.weight'])
    assert torch.equal(vit.blocks[0].ls2.gamma, sd['blocks.0.ls2.gamma'])


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_timm_layout_loads_same_model(tiny_weights, tmp_path, suffix):
    official = torch.load(tiny_weights['dinov2'], weights_only=True)
    timm_sd = {k: v.contiguous() for k, v in _independent_timm(official, 518).state_dict().items()}
    assert 'reg_token' in timm_sd and 'mask_token' not in timm_sd and timm_sd['pos_embed'].shape[1] == 37 * 37
    path = tmp_path / ('model' + suffix)
    if suffix == '.safetensors':
        from safetensors.torch import save_file
        save_file(timm_sd, str(path))
    else:
        torch.save(timm_sd, path)
    a = build_dinov2_backbone(tiny_weights['dinov2'], allow_test_width=True)
    b = build_dinov2_backbone(path, allow_test_width=True)
    sa, sb = a.vit.state_dict(), b.vit.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    fa, aa = _dino_out(a)
    fb, ab = _dino_out(b)
    assert torch.equal(fa, fb) and torch.equal(aa, ab)


# ------------------------------------------------------------------ CLIP: three file layouts, one tower

def _tokens():
    return tokenize(['a photo of a cat.', 'itap of a traffic light.', 'x'])


def test_clip_layouts_load_the_same_tower(tiny_weights, tmp_path):
    ts_enc = build_clip_text_encoder(tiny_weights['clip'])           # OpenAI TorchScript archive
    sd = {k: v for k, v in torch.jit.load(str(tiny_weights['clip'])).state_dict().items()}
    plain = tmp_path / 'plain.pt'
    torch.save(sd, plain)
    wrapped = tmp_path / 'open_clip_style.pt'
    torch.save({'epoch': 7, 'state_dict': {'module.' + k: v.float() for k, v in sd.items()}}, wrapped)
    encoders = [ts_enc, build_clip_text_encoder(plain), build_clip_text_encoder(wrapped)]
    with torch.no_grad():
        outs = [e(_tokens()) for e in encoders]
    assert outs[0].shape == (3, TEXT_EMBED)
    for o in outs[1:]:
        assert torch.equal(o, outs[0])
    # fp16 matrices (OpenAI dtypes) come back as fp32 tower weights
    assert all(p.dtype == torch.float32 for p in ts_enc.parameters())


def test_clip_tower_equals_open_clip_encode_text(tiny_weights):
    """The text-only tower computes what the full open_clip CLIP (QuickGELU) ``encode_text`` computes."""
    sd = {k: v.float() for k, v in torch.jit.load(str(tiny_weights['clip'])).state_dict().items()}
    full = open_clip.model.CLIP(
        embed_dim=TEXT_EMBED,
        vision_cfg=dict(image_size=224, layers=VISION_LAYERS, width=VISION_WIDTH, patch_size=VISION_PATCH,
                        head_width=min(64, VISION_WIDTH // 2)),
        text_cfg=dict(context_length=77, vocab_size=49408, width=TEXT_WIDTH, heads=max(1, TEXT_WIDTH // 64),
                      layers=TEXT_LAYERS),
        quick_gelu=True)
    full.load_state_dict(sd, strict=True)
    enc = build_clip_text_encoder(tiny_weights['clip'])
    with torch.no_grad():
        ref = full.eval().encode_text(_tokens())
        out = enc(_tokens())
    assert torch.allclose(out, ref, atol=1e-5, rtol=0)  # different kernels (fused attention), fp32 rounding
    # and it is not normalised (the reference averages raw EOT features)
    assert not torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-3)


def test_clip_openai_dtypes_plain_file(tmp_path):
    sd = openai_dtypes(clip_state_dict(TEXT_WIDTH, TEXT_LAYERS, TEXT_EMBED, VISION_WIDTH, VISION_LAYERS,
                                       VISION_PATCH, seed=3))
    assert any(v.dtype == torch.float16 for v in sd.values())
    path = tmp_path / 'ViT-B-16.pt'
    torch.save(sd, path)
    enc = build_clip_text_encoder(path)
    assert torch.equal(enc.tower.text_projection, sd['text_projection'].float())


# ------------------------------------------------------------------ ψ

def test_projection_legacy_key(tmp_path):
    sd = projection_state_dict(TEXT_EMBED, DINO_DIM, seed=4)
    modern, legacy = tmp_path / 'modern.pth', tmp_path / 'legacy.pth'
    torch.save(sd, modern)
    torch.save(OrderedDict((k.replace('hidden_layers.0.', 'linear_layer2.'), v) for k, v in sd.items()), legacy)
    assert any(k.startswith('linear_layer2.') for k in torch.load(legacy, weights_only=True))
    a, b = build_projection(modern), build_projection(legacy)
    t = torch.randn(4, TEXT_EMBED, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a(t), b(t))
    # ψ(t) = W2 tanh(W1 t + b1) + b2
    manual = torch.tanh(t @ sd['linear_layer.weight'].T + sd['linear_layer.bias']) @ sd['hidden_layers.0.weight'].T \
        + sd['hidden_layers.0.bias']
    assert torch.allclose(a(t), manual, atol=1e-6)


def test_projection_width_mismatch_with_backbone(tmp_path):
    path = tmp_path / 'vitl_mlp_infonce.pth'
    torch.save(projection_state_dict(512, 1024), path)
    msg = _raises(lambda p: build_projection(p, text_dim=512, dino_dim=768), path, 'DINOv2 backbone')
    assert '1024' in msg and '768' in msg and 'vitb_mlp_infonce.pth' in msg
    msg = _raises(lambda p: build_projection(p, text_dim=256), path, 'text')
    assert '512' in msg and '256' in msg


def test_projection_width_mismatch_through_method_builder(tiny_weights, tmp_path):
    path = tmp_path / 'wrong_proj.pth'
    torch.save(projection_state_dict(TEXT_EMBED, 2 * DINO_DIM), path)
    weights = dict(tiny_weights, proj=path)
    msg = _raises(lambda p: build_talk2dino(weights, allow_test_width=True), path, 'DINOv2 backbone')
    assert f'{2 * DINO_DIM}-d' in msg and f'{DINO_DIM}-d' in msg


def test_projection_bad_hidden_and_extra_keys(tmp_path):
    sd = projection_state_dict(TEXT_EMBED, DINO_DIM)
    bad = dict(sd, **{'hidden_layers.0.weight': torch.zeros(DINO_DIM, DINO_DIM + 1)})
    path = tmp_path / 'bad_hidden.pth'
    torch.save(bad, path)
    _raises(build_projection, path, 'hidden_layers.0.weight')
    extra = dict(sd, **{'hidden_layers.1.weight': torch.zeros(DINO_DIM, DINO_DIM)})
    path2 = tmp_path / 'extra.pth'
    torch.save(extra, path2)
    _raises(build_projection, path2, 'unexpected keys')


# ------------------------------------------------------------------ hashes used by fetch_weights

def test_hashes(tmp_path):
    path = tmp_path / 'blob.bin'
    path.write_bytes(b'talk2dino\n' * 1000)
    import hashlib
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    git = subprocess.run(['git', 'hash-object', str(path)], capture_output=True, text=True)
    if git.returncode != 0:
        pytest.skip('git not available')
    assert git_blob_sha1(path) == git.stdout.strip()
