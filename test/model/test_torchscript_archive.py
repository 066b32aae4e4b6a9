"""The OpenAI CLIP release is a TorchScript archive: its tensors are read as data and nothing in it runs."""
import os
import pickle
import shutil
import zipfile
from typing import Tuple

import pytest
import torch

from talk2dino_ros.errors import CheckpointError
from talk2dino_ros.model.checkpoints import load_state_dict_file
from talk2dino_ros.model.random_weights import clip_state_dict, openai_dtypes, save_torchscript_state_dict
from talk2dino_ros.model.text import build_clip_text_encoder
from talk2dino_ros.model.torchscript_archive import read_torchscript_state_dict


def _assert_same_as_jit_load(path):
    ref = torch.jit.load(str(path), map_location='cpu').state_dict()  # trusted: the test wrote the file
    got = read_torchscript_state_dict(path)
    assert list(got) == list(ref)
    for key, value in ref.items():
        assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
        assert got[key].stride() == value.stride(), key
        assert torch.equal(got[key], value), key


def test_openai_layout_reads_identical_tensors(tmp_path):
    path = tmp_path / 'ViT-B-16.pt'
    save_torchscript_state_dict(openai_dtypes(clip_state_dict(64, 2, 32, 64, 2, 16, seed=3)), path)
    _assert_same_as_jit_load(path)
    assert any(v.dtype == torch.float16 for v in read_torchscript_state_dict(path).values())


class _WithBuffers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(8, 2)
        self.conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.BatchNorm2d(8))
        self.register_buffer('mask', torch.ones(3, 3))
        self.strided = torch.nn.Parameter(torch.randn(4, 6)[:, ::2])  # a view: offset/stride must survive
        self.note = 'not a tensor'

    def forward(self, x):
        return self.attn(x, x, x, attn_mask=self.mask)[0]


def test_scripted_and_traced_modules_read_identical_tensors(tmp_path):
    import open_clip
    torch.jit.script(_WithBuffers()).save(str(tmp_path / 'scripted.pt'))
    _assert_same_as_jit_load(tmp_path / 'scripted.pt')
    model = open_clip.model.CLIP(embed_dim=16, quick_gelu=True,
                                 vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
                                 text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1))
    traced = torch.jit.trace_module(model.eval(), {'encode_text': torch.zeros(1, 77, dtype=torch.long)})
    traced.save(str(tmp_path / 'traced.pt'))
    _assert_same_as_jit_load(tmp_path / 'traced.pt')


class _SetState(torch.nn.Module):
    """A module whose restore code changes its weights: torch.jit.load runs that code."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2))

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, bool]:
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]) -> None:
        self.weight = state[0] * 0 + 42
        self.training = state[1]


def test_archive_code_is_never_run(tmp_path):
    path = tmp_path / 'ViT-B-16.pt'
    torch.jit.script(_SetState()).save(str(path))
    assert torch.jit.load(str(path)).state_dict()['weight'].tolist() == [42.0, 42.0]  # the code runs there
    with pytest.raises(CheckpointError, match=r'ViT-B-16\.pt.*__setstate__.*never run'):
        load_state_dict_file(path, 'CLIP', allow_torchscript=True)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def _archive_with_payload(tmp_path, marker):
    """A valid TorchScript zip whose data.pkl is replaced by a pickle that calls os.system."""
    good = tmp_path / 'good.pt'
    save_torchscript_state_dict(openai_dtypes(clip_state_dict(64, 2, 32, 64, 2, 16)), good)
    evil = tmp_path / 'ViT-B-16.pt'
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(evil, 'w') as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith('/data.pkl'):
                data = pickle.dumps(_Payload(marker), protocol=2)
            dst.writestr(info, data)
    return evil


def test_pickle_payload_never_runs(tmp_path):
    # the payload works: a plain unpickler runs it
    probe = tmp_path / 'probe'
    pickle.loads(pickle.dumps(_Payload(probe), protocol=2))
    assert probe.exists()
    marker = tmp_path / 'marker'
    evil = _archive_with_payload(tmp_path, marker)
    with pytest.raises(CheckpointError, match=r'ViT-B-16\.pt.*refuses (posix|os)\.system'):
        build_clip_text_encoder(evil, quick_gelu=True)
    assert not marker.exists()


def test_segment_image_refuses_the_payload_in_one_line(tmp_path, capsys, tiny_weights):
    import cv2
    import numpy as np
    from talk2dino_ros.cli import segment_image
    marker = tmp_path / 'marker'
    evil = _archive_with_payload(tmp_path, marker)
    img = tmp_path / 'a.png'
    cv2.imwrite(str(img), np.full((30, 40, 3), 90, np.uint8))
    folder = tmp_path / 'weights'
    folder.mkdir()
    for role in ('dinov2', 'proj'):
        shutil.copy(tiny_weights[role], folder / tiny_weights[role].name)
    argv = [str(img), '--vocab', 'cat', '--out', str(tmp_path / 'out'), '--weights-dir', str(folder),
            '--clip-weights', str(evil), '--allow-random-weights', '--device', 'cpu']
    assert segment_image.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err and 'ViT-B-16.pt' in err
    assert not marker.exists()


@pytest.mark.parametrize('damage', ['truncated', 'missing_storage', 'no_code'])
def test_damaged_archives_are_one_checkpoint_error(tmp_path, damage):
    good = tmp_path / 'good.pt'
    save_torchscript_state_dict(openai_dtypes(clip_state_dict(64, 2, 32, 64, 2, 16)), good)
    bad = tmp_path / 'ViT-B-16.pt'
    if damage == 'truncated':
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    else:
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, 'w') as dst:
            for info in src.infolist():
                name = info.filename
                if (damage == 'missing_storage' and name.endswith('/data/0')) or \
                        (damage == 'no_code' and '/code/' in name and 'random_weights' in name):
                    continue
                dst.writestr(info, src.read(info))
    with pytest.raises(CheckpointError, match=r'ViT-B-16\.pt'):
        load_state_dict_file(bad, 'CLIP', allow_torchscript=True)
