"""Every weight loader against broken files: the only exception is CheckpointError naming the file.

Property-based (hypothesis): empty, truncated, random-byte, bit-flipped, wrong-architecture (keys
dropped / added / reshaped / retyped, another role's file) and wrong-width files, for the DINOv2
backbone, CLIP text tower and Talk2DINO projection loaders, the CLIP-DINOiser loaders and both method
builders (the code path of ``Segmenter.from_config``).
"""
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from talk2dino_ros.model.backbone import build_dinov2_backbone
from talk2dino_ros.model.checkpoints import load_state_dict_file
from talk2dino_ros.errors import CheckpointError
from talk2dino_ros.model.methods import get_builder
from talk2dino_ros.model.projection import build_projection
from talk2dino_ros.model.random_weights import (dinov2_official_state_dict, projection_state_dict,
                                                write_random_weights)
from talk2dino_ros.model.text import build_clip_text_encoder

FUZZ = settings(max_examples=6, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ROLES = ('dinov2', 'clip', 'proj', 'openclip', 'clip_dinoiser')
METHOD_OF = {'dinov2': 'talk2dino', 'clip': 'talk2dino', 'proj': 'talk2dino',
             'openclip': 'clip_dinoiser', 'clip_dinoiser': 'clip_dinoiser'}


@pytest.fixture(scope='module')
def good(tmp_path_factory):
    """role -> path of a valid tiny file, for both methods."""
    root = tmp_path_factory.mktemp('good_weights')
    paths = dict(write_random_weights(root / 't2d', method='talk2dino', width='tiny'))
    paths.update(write_random_weights(root / 'cd', method='clip_dinoiser', width='tiny'))
    return paths


@pytest.fixture(scope='module')
def originals(good):
    """role -> (state dict of the good file, whether it is wrapped in {'model_state_dict': ...})."""
    out = {}
    for role, path in good.items():
        if role == 'clip':  # the OpenAI release is TorchScript; the loader also takes its plain state dict
            out[role] = (dict(torch.jit.load(str(path), map_location='cpu').state_dict()), False)
            continue
        obj = torch.load(path, map_location='cpu', weights_only=True)
        out[role] = (obj['model_state_dict'], True) if 'model_state_dict' in obj else (obj, False)
    return out


def load_role(role, path, good):
    """Load ``path`` as ``role`` through the method builder (every other role gets its good file)."""
    weights = {r: str(p) for r, p in good.items() if METHOD_OF[r] == METHOD_OF[role]}
    weights[role] = str(path)
    return get_builder(METHOD_OF[role])(weights, variant='vitb', allow_test_width=True)


def direct_loaders(good):
    """role -> the role's own loader (as the builders call it)."""
    return {
        'dinov2': lambda p: build_dinov2_backbone(p, allow_test_width=True),
        'clip': lambda p: build_clip_text_encoder(p),
        'proj': lambda p: build_projection(p, text_dim=32, dino_dim=64),
        'any': lambda p: load_state_dict_file(p, 'test'),
    }


def assert_clean_failure(fn, path: Path, must_fail: bool = True):
    """``fn(path)`` either works (only when ``must_fail`` is False) or raises CheckpointError naming the file."""
    try:
        fn(path)
    except CheckpointError as exc:
        assert path.name in str(exc), f'error does not name {path.name}: {exc}'
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - the property under test
        pytest.fail(f'{path.name}: {type(exc).__name__} instead of CheckpointError: {exc}')
    if must_fail:
        pytest.fail(f'{path.name} was accepted')
    return None


@pytest.mark.parametrize('role', ROLES)
def test_empty_and_missing_files(tmp_path, good, role):
    empty = tmp_path / f'empty_{role}.pth'
    empty.write_bytes(b'')
    assert 'empty' in assert_clean_failure(lambda p: load_role(role, p, good), empty)
    missing = tmp_path / f'missing_{role}.pth'
    assert 'not found' in assert_clean_failure(lambda p: load_role(role, p, good), missing)
    folder = tmp_path / f'folder_{role}.pth'
    folder.mkdir()
    assert_clean_failure(lambda p: load_role(role, p, good), folder)


@pytest.mark.parametrize('role', ROLES)
@FUZZ
@given(data=st.data())
def test_truncated_random_and_flipped_bytes(tmp_path, good, role, data):
    blob = Path(good[role]).read_bytes()
    kind = data.draw(st.sampled_from(['truncated', 'random', 'zip_garbage', 'flipped']))
    if kind == 'truncated':
        content = blob[:data.draw(st.integers(1, len(blob) - 1))]
    elif kind == 'random':
        content = data.draw(st.binary(min_size=1, max_size=4096))
    elif kind == 'zip_garbage':  # looks like a zip archive (what torch.save writes), is not one
        content = b'PK\x03\x04' + data.draw(st.binary(max_size=2048))
    else:
        at = data.draw(st.integers(0, len(blob) - 1))
        content = blob[:at] + bytes([blob[at] ^ data.draw(st.integers(1, 255))]) + blob[at + 1:]
    path = tmp_path / f'{kind}_{role}_{len(content)}.pth'
    path.write_bytes(content)
    # a flipped byte inside tensor data still loads (different numbers); anything else must fail cleanly
    assert_clean_failure(lambda p: load_role(role, p, good), path, must_fail=kind != 'flipped')


def mutate(sd, data, role):
    """Change a valid state dict the way a wrong architecture would: drop / add / reshape / retype keys.

    Returns (state dict, description, harmless): ``harmless`` marks changes a loader may accept: integer
    tensors (copied into float parameters), DINOv2's ``mask_token`` (unused for inference, dropped by
    timm), anything outside the CLIP text tower (the OpenAI file also holds the image tower, which
    Talk2DINO does not use), a scalar replaced by a scalar.
    """
    sd = dict(sd)
    keys = sorted(sd)
    op = data.draw(st.sampled_from(['drop', 'add', 'reshape', 'retype', 'scalar']))
    key = data.draw(st.sampled_from(keys))
    text_only = role == 'clip' and (key.startswith('visual.') or key in ('logit_scale', 'logit_bias'))
    harmless = op == 'retype' or key == 'mask_token' or (op == 'add' and role == 'clip') or text_only \
        or (op == 'scalar' and sd[key].ndim == 0)
    if op == 'drop':
        del sd[key]
    elif op == 'add':
        sd[data.draw(st.sampled_from([key + '_extra', 'blocks.99.norm1.weight', 'head.weight']))] = torch.zeros(3)
    elif op == 'reshape':
        shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
        harmless = harmless or shape == tuple(sd[key].shape)
        sd[key] = torch.zeros(*shape)
    elif op == 'retype':
        sd[key] = sd[key].to(torch.int64)
    else:
        sd[key] = torch.tensor(1.0)
    return sd, f'{op} {key}', harmless


@pytest.mark.parametrize('role', ROLES)
@FUZZ
@given(data=st.data())
def test_wrong_architecture_state_dicts(tmp_path, good, originals, role, data):
    original, wrapped = originals[role]
    sd, what, harmless = mutate(original, data, role)
    path = tmp_path / f'mutated_{role}.pth'
    torch.save({'epoch': 0, 'model_state_dict': sd} if wrapped else sd, path)
    assert_clean_failure(lambda p: load_role(role, p, good), path, must_fail=not harmless)


@pytest.mark.parametrize('role', ROLES)
def test_another_roles_file_is_refused_by_name(tmp_path, good, role):
    for other in ROLES:
        # LAION's open_clip file has exactly the OpenAI text-tower layout: it cannot be told apart by keys
        if other == role or (other, role) == ('openclip', 'clip'):
            continue
        path = tmp_path / f'{other}_as_{role}{Path(good[other]).suffix}'
        shutil.copy(good[other], path)
        assert_clean_failure(lambda p: load_role(role, p, good), path)


def test_non_tensor_and_wrong_width_files(tmp_path, good):
    loaders = direct_loaders(good)
    cases = []
    objects = tmp_path / 'objects.pth'
    torch.save({'epoch': 3, 'note': 'no tensors'}, objects)
    cases += [('any', objects), ('dinov2', objects)]
    # wrong widths: a projection for other text/DINOv2 sizes, a DINOv2 of a width the heads cannot split
    proj = tmp_path / 'proj_48_to_96.pth'
    torch.save(projection_state_dict(48, 96), proj)
    cases.append(('proj', proj))
    odd = tmp_path / 'dinov2_width_70.pth'
    torch.save(dinov2_official_state_dict(70, 1), odd)
    cases.append(('dinov2', odd))
    for role, path in cases:
        assert_clean_failure(loaders[role], path)
    # test widths are refused unless random weights are allowed, and the message says why
    message = assert_clean_failure(lambda p: build_dinov2_backbone(p), Path(good['dinov2']))
    assert 'non-standard width' in message
    # a backbone of another width than the projection: the error names a file and both widths
    wide = tmp_path / 'dinov2_width_96.pth'
    torch.save(dinov2_official_state_dict(96, 1), wide)
    with pytest.raises(CheckpointError) as err:
        load_role('dinov2', wide, good)
    assert '96' in str(err.value) and '64' in str(err.value)


#: tensors whose shape the loaders read to infer the architecture (a 0-d tensor there must not crash them)
SHAPE_KEYS = {
    'dinov2': ('cls_token', 'pos_embed', 'patch_embed.proj.weight', 'norm.weight', 'register_tokens'),
    'clip': ('ln_final.weight', 'text_projection', 'token_embedding.weight', 'positional_embedding'),
    'proj': ('linear_layer.weight', 'hidden_layers.0.weight', 'linear_layer.bias'),
    'openclip': ('visual.conv1.weight', 'visual.positional_embedding', 'ln_final.weight', 'text_projection',
                 'token_embedding.weight', 'positional_embedding', 'visual.transformer.resblocks.0.mlp.c_fc.weight'),
    'clip_dinoiser': ('obj_proj.weight', 'obj_proj.bias', 'bkg_decoder.weight'),
}


@pytest.mark.parametrize('role', ROLES)
def test_scalar_where_a_shape_is_read(tmp_path, good, originals, role):
    original, wrapped = originals[role]
    for key in SHAPE_KEYS[role]:
        sd = dict(original)
        sd[key] = torch.tensor(0.5)
        path = tmp_path / f'scalar_{key.replace(".", "_")}_{role}.pth'
        torch.save({'epoch': 0, 'model_state_dict': sd} if wrapped else sd, path)
        assert_clean_failure(lambda p: load_role(role, p, good), path)
