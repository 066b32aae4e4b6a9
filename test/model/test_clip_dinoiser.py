"""CLIP-DINOiser backend: loaders, hand-computed pooling / background rule, text, end-to-end segmenter."""
import dataclasses
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import talk2dino_ros.model  # noqa: F401
from talk2dino_ros.model import random_weights
from talk2dino_ros.model.clip_visual import MaskClipFeatures, pad_to_multiple, resize_clip_pos_embed, token_map
from talk2dino_ros.errors import CheckpointError, InputError
from talk2dino_ros.model.methods import clip_dinoiser as cd
from talk2dino_ros.model.random_weights import tiny_segmenter_config, write_random_weights
from talk2dino_ros.model.segmenter import Segmenter
from talk2dino_ros.model.text import tokenize
from talk2dino_ros.model.types import InferenceOptions

NAMES = ['cat', 'road', 'tree']


@pytest.fixture(scope='module')
def cd_weights(tmp_path_factory):
    return write_random_weights(tmp_path_factory.mktemp('cd_weights'), method='clip_dinoiser', width='tiny')


@pytest.fixture(scope='module')
def method(cd_weights):
    return cd.build_clip_dinoiser(cd_weights, allow_test_width=True)


@pytest.fixture(scope='module')
def text(method):
    with torch.inference_mode():
        return method.encode_text(NAMES)


def _scene(h=120, w=160, seed=0):
    rs = np.random.RandomState(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (200, 40, 30)
    img[h // 2:, w // 2:] = (20, 160, 60)
    return (img + rs.randint(0, 30, img.shape)).clip(0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- files and loaders
def test_writer_registered_and_head_layout(cd_weights):
    assert random_weights.WRITERS['clip_dinoiser'] is cd.write_clip_dinoiser_weights
    assert cd_weights['openclip'].name == 'open_clip_pytorch_model.bin'
    ckpt = torch.load(cd_weights['clip_dinoiser'], weights_only=True)
    assert set(ckpt) == {'epoch', 'model_state_dict'}
    assert list(ckpt['model_state_dict']) == ['obj_proj.bias', 'obj_proj.weight', 'bkg_decoder.bias',
                                              'bkg_decoder.weight']
    sd = torch.load(cd_weights['openclip'], weights_only=True)
    # tiny vision tower: obj_proj reads its width
    assert ckpt['model_state_dict']['obj_proj.weight'].shape[1] == sd['visual.conv1.weight'].shape[0]


def test_openclip_wrappers_and_safetensors_load_identically(cd_weights, method, tmp_path):
    from safetensors.torch import save_file
    sd = torch.load(cd_weights['openclip'], weights_only=True)
    wrapped = tmp_path / 'epoch_1.pt'
    torch.save({'epoch': 1, 'state_dict': {'module.' + k: v for k, v in sd.items()}}, wrapped)
    st = tmp_path / 'open_clip_model.safetensors'
    save_file({k: v.contiguous() for k, v in sd.items()}, str(st))
    for path in (wrapped, st):
        other = cd.build_clip_dinoiser({'openclip': path, 'clip_dinoiser': cd_weights['clip_dinoiser']},
                                       allow_test_width=True)
        for (k, a), (_, b) in zip(method.state_dict().items(), other.state_dict().items()):
            assert torch.equal(a, b), k


def test_model_is_gelu_not_quickgelu(method):
    act = method.clip.visual.transformer.resblocks[0].mlp.gelu
    assert type(act) is torch.nn.GELU


def test_tiny_width_refused_without_flag(cd_weights):
    with pytest.raises(CheckpointError, match='non-standard|random test model') as exc:
        cd.build_clip_dinoiser(cd_weights)
    assert str(cd_weights['openclip']) in str(exc.value)


def test_swapped_files_are_named(cd_weights):
    swapped = {'openclip': cd_weights['clip_dinoiser'], 'clip_dinoiser': cd_weights['openclip']}
    with pytest.raises(CheckpointError, match='looks like the CLIP-DINOiser last.pt') as exc:
        cd.build_clip_dinoiser(swapped, allow_test_width=True)
    assert str(cd_weights['clip_dinoiser']) in str(exc.value)


def test_bad_head_files(cd_weights, tmp_path):
    head = torch.load(cd_weights['clip_dinoiser'], weights_only=True)['model_state_dict']
    cases = {
        'wrong_in.pt': ({**head, 'obj_proj.weight': torch.zeros(16, 768, 3, 3)}, r'obj_proj.weight \[16, 768, 3, 3\]'),
        'wrong_bkg.pt': ({**head, 'bkg_decoder.weight': torch.zeros(2, 64, 1, 1)}, 'bkg_decoder.weight'),
        'missing.pt': ({k: v for k, v in head.items() if k != 'bkg_decoder.bias'}, "missing \\['bkg_decoder.bias'\\]"),
        'extra.pt': ({**head, 'found.weight': torch.zeros(1)}, 'unexpected'),
    }
    for name, (sd, pattern) in cases.items():
        path = tmp_path / name
        torch.save({'epoch': 3, 'model_state_dict': OrderedDict(sd)}, path)
        with pytest.raises(CheckpointError, match=pattern) as exc:
            cd.build_clip_dinoiser({'openclip': cd_weights['openclip'], 'clip_dinoiser': path},
                                   allow_test_width=True)
        assert str(path) in str(exc.value)


def test_bad_openclip_files(cd_weights, tmp_path):
    truncated = tmp_path / 'truncated.bin'
    truncated.write_bytes(cd_weights['openclip'].read_bytes()[:5000])
    sd = torch.load(cd_weights['openclip'], weights_only=True)
    bad_shape = tmp_path / 'bad_shape.bin'
    torch.save({**sd, 'visual.ln_post.weight': torch.zeros(7)}, bad_shape)
    no_text = tmp_path / 'visual_only.bin'
    torch.save({k: v for k, v in sd.items() if k.startswith('visual.')}, no_text)
    for path, pattern in [(tmp_path / 'absent.bin', 'not found'), (truncated, 'corrupt|not a PyTorch'),
                          (bad_shape, r'visual.ln_post.weight\[7\]'), (no_text, 'missing keys token_embedding')]:
        with pytest.raises(CheckpointError, match=pattern) as exc:
            cd.build_clip_dinoiser({'openclip': path, 'clip_dinoiser': cd_weights['clip_dinoiser']},
                                   allow_test_width=True)
        assert str(path) in str(exc.value)


# ----------------------------------------------------------------------------- text
def test_templates_are_openai_imagenet_80():
    t = cd.IMAGENET_TEMPLATES
    assert len(t) == 80 and len(set(t)) == 80
    assert t[:3] == ('a bad photo of a {}.', 'a photo of many {}.', 'a sculpture of a {}.')
    assert all(s.endswith('.') and s.count('{}') == 1 for s in t)


def test_class_embedding_is_normalised_mean_of_normalised_prompts(method, text):
    prompts = [t.format('road') for t in cd.IMAGENET_TEMPLATES]
    with torch.inference_mode():
        raw = method.clip.encode_text(tokenize(prompts)).float()
    per_prompt = raw / raw.norm(dim=-1, keepdim=True)
    expected = per_prompt.mean(0) / per_prompt.mean(0).norm()
    assert torch.allclose(text[1], expected, atol=1e-6)
    unnormalised = raw.mean(0) / raw.mean(0).norm()
    assert (unnormalised - expected).abs().max() > 1e-3  # the test can tell the two recipes apart
    assert torch.allclose(text.norm(dim=-1), torch.ones(3), atol=1e-6)


def test_rows_depend_only_on_their_name(method, text):
    with torch.inference_mode():
        alone = method.encode_text(['tree'])
        swapped = method.encode_text(['tree', 'cat'])
    assert torch.equal(alone[0], text[2])
    assert torch.equal(swapped[1], text[0])


def test_text_names_background_is_a_text_class(method):
    assert method.text_names(NAMES, background=False) == NAMES
    assert method.text_names(NAMES, background=True) == ['background'] + NAMES
    assert not method.adds_background_channel(InferenceOptions(background=True))
    with pytest.raises(InputError, match='background'):
        method.text_names(['background', 'cat'], background=True)


# ----------------------------------------------------------------------------- hand-computed steps
def test_threshold_is_strict_and_zeroes_negatives():
    c = torch.tensor([-0.5, 0.0, 0.19999, 0.2, 0.20001, 0.7, 1.0])
    out = cd.threshold_correlations(c)
    assert out.tolist() == pytest.approx([0.0, 0.0, 0.0, 0.2, 0.20001, 0.7, 1.0])
    assert out[3].item() == torch.tensor(0.2).item()  # exactly gamma is kept


def test_patch_correlations_by_hand():
    # 3 patches on a 1x3 grid with 2-d projections: angles give cos 0.6, -1 and -0.6
    p = torch.tensor([[1.0, 0.6 * 5, -2.0], [0.0, 0.8 * 5, 0.0]]).reshape(1, 2, 1, 3)
    c = cd.patch_correlations(p)
    assert c.shape == (1, 3, 1, 3)
    expected = torch.tensor([[1.0, 0.6, -1.0], [0.6, 1.0, -0.6], [-1.0, -0.6, 1.0]])
    assert torch.allclose(c.reshape(3, 3), expected, atol=1e-6)
    kept = cd.threshold_correlations(c).reshape(3, 3)
    assert torch.allclose(kept, torch.tensor([[1.0, 0.6, 0.0], [0.6, 1.0, 0.0], [0.0, 0.0, 1.0]]), atol=1e-6)


def test_guided_pool_by_hand():
    feats = torch.tensor([[1.0, 2.0, 4.0], [0.0, 1.0, -1.0]]).reshape(1, 2, 1, 3)
    corrs = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 1.0]]).reshape(1, 3, 1, 3)
    out = cd.guided_pool(feats, corrs).reshape(2, 3)
    expected = torch.tensor([
        [(1 + 0.5 * 2) / 1.500001, (0.5 + 2 + 0.2 * 4) / 1.700001, (0.2 * 2 + 4) / 1.200001],
        [(0.5 * 1) / 1.500001, (1 - 0.2) / 1.700001, (0.2 - 1) / 1.200001]])
    assert torch.allclose(out, expected, rtol=0, atol=1e-6)
    # a patch with no kept correlation gets 0 (the 1e-6 keeps it finite), not NaN
    lonely = cd.guided_pool(feats, torch.zeros(1, 3, 1, 3))
    assert torch.equal(lonely, torch.zeros_like(lonely))


def test_class_probabilities_by_hand():
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    feats = torch.tensor([[3.0], [0.0]]).reshape(1, 2, 1, 1)  # direction (1, 0): cos 1 and 0.6
    p = cd.class_probabilities(feats, text).reshape(2)
    e = torch.exp(torch.tensor([0.0, -40.0]))
    assert torch.allclose(p, e / e.sum(), atol=1e-7)


def test_background_rule_by_hand():
    # 5 patches, classes (background, a, b)
    probs = torch.tensor([[0.10, 0.30, 0.60],    # not salient, uncertain -> background := 1
                          [0.10, 0.30, 0.60],    # salient -> unchanged
                          [0.005, 0.005, 0.99],  # max exactly 0.99 is not uncertain -> unchanged
                          [0.20, 0.70, 0.10],    # logit exactly 0: sigmoid 0.5 is not salient -> reset
                          [0.001, 0.995, 0.004]  # certain -> unchanged
                          ]).T.reshape(1, 3, 1, 5)
    logits = torch.tensor([-2.0, 3.0, -1.0, 0.0, -5.0]).reshape(1, 1, 1, 5)
    out = cd.apply_background_rule(probs, logits)
    assert out[0, 0, 0].tolist() == pytest.approx([1.0, 0.10, 0.005, 1.0, 0.001])
    assert torch.equal(out[:, 1:], probs[:, 1:])  # other classes keep their values, no renormalisation


# ----------------------------------------------------------------------------- MaskCLIP features
def test_value_only_block_equals_identity_attention(method):
    blk = method.clip.visual.transformer.resblocks[-1]
    x = torch.randn(2, 10, method.features.width, generator=torch.Generator().manual_seed(0))
    diag_only = torch.full((10, 10), float('-inf'))
    diag_only.fill_diagonal_(0.0)
    with torch.inference_mode():
        ours = MaskClipFeatures._value_only_block(blk, x)
        masked = blk(x, attn_mask=diag_only)
    assert torch.allclose(ours, masked, atol=1e-5)


def test_intermediate_tokens_match_a_hook_on_ln2(method):
    visual = method.clip.visual
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    seen = {}
    handle = visual.transformer.resblocks[-3].ln_2.register_forward_hook(lambda m, i, o: seen.update(t=o))
    try:
        with torch.inference_mode():
            visual(x)
            _, inter = method.features(x)
    finally:
        handle.remove()
    assert torch.equal(inter, seen['t'])
    assert token_map(inter, 14, 14).shape == (1, method.features.width, 14, 14)
    pos = visual.positional_embedding.detach()
    assert torch.allclose(resize_clip_pos_embed(pos, (14, 14), (14, 14)), pos, atol=1e-6)


def test_padding_happens_before_normalisation(method, text):
    rs = np.random.RandomState(3)
    win = torch.from_numpy(rs.randint(0, 256, (1, 3, 40, 56))).float()
    padded = F.pad(win, (0, 8, 0, 8), value=0.0)  # zero in 0..255 space = zero in [0, 1] space
    opts = InferenceOptions()
    with torch.inference_mode():
        a = method.grid_scores(win, text, opts)
        b = method.grid_scores(padded, text, opts)
        full = method.window_scores(win, text, opts)
    assert a.shape == (1, 3, 3, 4) and torch.equal(a, b)
    # the window map squeezes the padded 48x64 grid into the 40x56 window (not a crop)
    assert torch.equal(full, F.interpolate(a, size=(40, 56), mode='bilinear', align_corners=False))
    assert pad_to_multiple(win, 16).shape[-2:] == (48, 64)


def test_batch_equals_one_window_at_a_time(method, text):
    rs = np.random.RandomState(4)
    wins = torch.from_numpy(rs.randint(0, 256, (3, 3, 64, 80))).float()
    for opts in (InferenceOptions(), InferenceOptions(background=True)):  # row 0 acts as 'background'
        with torch.inference_mode():
            batched = method.window_scores(wins, text, opts)
            single = torch.cat([method.window_scores(wins[i:i + 1], text, opts) for i in range(3)])
        assert torch.equal(batched, single)


def test_rule_only_with_background_and_background_rule(method, text):
    rs = np.random.RandomState(5)
    wins = torch.from_numpy(rs.randint(0, 256, (2, 3, 96, 96))).float()
    with torch.inference_mode():
        plain = method.grid_scores(wins, text, InferenceOptions(background=True, background_rule=False))
        rule = method.grid_scores(wins, text, InferenceOptions(background=True))
        off = method.grid_scores(wins, text, InferenceOptions(background=False))
        extras = method.grid_scores(wins, text, InferenceOptions(background=True, pamr=True, bg_clean=True))
    assert torch.equal(plain, off)
    assert torch.equal(rule, extras)  # pamr / bg_clean are Talk2DINO steps: ignored here
    changed = rule[:, 0] != plain[:, 0]
    assert changed.any() and (~changed).any()  # the tiny weights exercise both branches
    assert torch.all(rule[:, 0][changed] == 1.0)
    assert torch.equal(rule[:, 1:], plain[:, 1:])


# ----------------------------------------------------------------------------- segmenter end to end
@pytest.mark.parametrize('mode', ['slide', 'whole'])
def test_segmenter_end_to_end(cd_weights, mode):
    seg = Segmenter.from_config(tiny_segmenter_config(cd_weights, method='clip_dinoiser', mode=mode))
    assert seg.method.name == 'clip_dinoiser' and seg.method.patch_size == 16
    seg.set_vocabulary(NAMES)
    img = _scene(150, 200)
    res = seg.segment(img)
    assert res.scores.shape == (3, 150, 200) and res.labels.shape == (150, 200)
    assert res.class_names == tuple(NAMES) and not res.has_background
    # averaged window probabilities still sum to one per pixel
    assert np.allclose(res.scores.sum(0), 1.0, atol=1e-4)
    assert np.array_equal(res.labels, res.scores.argmax(0))

    seg.with_options(background=True)
    res_bg = seg.segment(img)
    assert res_bg.class_names == ('background',) + tuple(NAMES) and res_bg.has_background
    assert res_bg.scores.shape == (4, 150, 200)
    assert seg.vocabulary.text_names[0] == 'background'
    assert (res_bg.scores.sum(0) >= 1.0 - 1e-4).all()

    seg.with_options(background_rule=False)
    res_plain = seg.segment(img)
    assert np.allclose(res_plain.scores.sum(0), 1.0, atol=1e-4)
    assert not np.array_equal(res_plain.scores, res_bg.scores)


def test_whole_mode_runs_one_window_of_multiples_of_16(cd_weights, monkeypatch):
    seg = Segmenter.from_config(tiny_segmenter_config(cd_weights, method='clip_dinoiser', mode='whole'))
    seg.set_vocabulary(NAMES)
    shapes = []
    real = seg.method.window_stages  # the engine's entry into the method

    def spy(windows, text, options):
        shapes.append(tuple(windows.shape))
        return real(windows, text, options)
    monkeypatch.setattr(seg.method, 'window_stages', spy)
    seg.segment(_scene(375, 500))
    assert shapes == [(1, 3, 448, 592)]


def test_options_field_default():
    assert InferenceOptions().background_rule is True
    assert dataclasses.replace(InferenceOptions(), background_rule=False).background_rule is False


@pytest.mark.parametrize('spelling', ['&#98;ackground', 'Background', 'back&#103;round'])
def test_no_spelling_of_background_becomes_a_second_background_class(method, spelling):
    with pytest.raises(InputError, match='background'):
        method.text_names([spelling, 'cat'], background=True)
