"""Registry of the published checkpoint files: name -> URL, expected size and checksum.

Like open_clip's pretrained registry: ``fetch_weights`` downloads from here and every loader can
look files up by role in a weights directory. Sizes/checksums are from shared docs `checkpoints.md` §6;
where none is published we check the size bound and then load the file strictly.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

DEFAULT_WEIGHTS_DIR = Path(os.environ.get('T2D_WEIGHTS_DIR', '~/.cache/talk2dino_ros')).expanduser()


@dataclass(frozen=True)
class PretrainedFile:
    """One published checkpoint file."""

    name: str                    # registry key
    filename: str                # file name in the weights directory
    role: str                    # loader role: dinov2 | clip | proj | openclip | clip_dinoiser
    url: str
    size: Optional[int] = None   # exact size in bytes, when known
    approx_size: Optional[int] = None  # size estimate (accept ±5 %) when the exact size is unknown
    sha256: Optional[str] = None
    git_blob: Optional[str] = None  # GitHub-hosted files: `git hash-object` of the pinned blob
    description: str = ''


_DINO = 'https://dl.fbaipublicfiles.com/dinov2'
_T2D = 'https://raw.githubusercontent.com/lorebianchi98/Talk2DINO/4918c2df1d00c644ecc7f34de070694af1a8bc69/weights'
_CD = 'https://raw.githubusercontent.com/wysoczanska/clip_dinoiser/a954aae6fb61f5ff18834e50a0c78a2258cd9afb'

PRETRAINED: Dict[str, PretrainedFile] = {f.name: f for f in [
    PretrainedFile('dinov2_vitb14_reg', 'dinov2_vitb14_reg4_pretrain.pth', 'dinov2',
                   f'{_DINO}/dinov2_vitb14/dinov2_vitb14_reg4_pretrain.pth', approx_size=346_398_551,
                   description='DINOv2 ViT-B/14 with registers (official)'),
    PretrainedFile('dinov2_vits14_reg', 'dinov2_vits14_reg4_pretrain.pth', 'dinov2',
                   f'{_DINO}/dinov2_vits14/dinov2_vits14_reg4_pretrain.pth', approx_size=88_232_448,
                   description='DINOv2 ViT-S/14 with registers (official)'),
    PretrainedFile('dinov2_vitl14_reg', 'dinov2_vitl14_reg4_pretrain.pth', 'dinov2',
                   f'{_DINO}/dinov2_vitl14/dinov2_vitl14_reg4_pretrain.pth', approx_size=1_217_490_944,
                   description='DINOv2 ViT-L/14 with registers (official)'),
    PretrainedFile('clip_vitb16_openai', 'ViT-B-16.pt', 'clip',
                   'https://openaipublic.azureedge.net/clip/models/'
                   '5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt',
                   sha256='5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f',
                   description='OpenAI CLIP ViT-B/16 (TorchScript release; text tower used)'),
    PretrainedFile('talk2dino_vitb', 'vitb_mlp_infonce.pth', 'proj', f'{_T2D}/vitb_mlp_infonce.pth',
                   size=3_940_664,
                   sha256='5f6efcc520f22916ecf3dfdfb01d6f57e701c1c2e1feda71a80d89e3cd752f0f',
                   git_blob='2e8fd64706f39b247c71a0b10a46c3d98cff440e',
                   description='Talk2DINO projection ψ for DINOv2 ViT-B'),
    PretrainedFile('talk2dino_vitl', 'vitl_mlp_infonce.pth', 'proj', f'{_T2D}/vitl_mlp_infonce.pth',
                   approx_size=6_300_000, git_blob='21a0038cc793403648264fe9c90a29c9533770a3',
                   description='Talk2DINO projection ψ for DINOv2 ViT-L'),
    PretrainedFile('clip_dinoiser', 'last.pt', 'clip_dinoiser', f'{_CD}/checkpoints/last.pt',
                   approx_size=7_084_465, git_blob='0b6c94d9c439ebac7bcb07fe805be3654ea03c7f',
                   description='CLIP-DINOiser obj_proj + bkg_decoder'),
    PretrainedFile('openclip_vitb16_laion2b', 'open_clip_pytorch_model.bin', 'openclip',
                   'https://huggingface.co/laion/CLIP-ViT-B-16-laion2B-s34B-b88K/resolve/main/'
                   'open_clip_pytorch_model.bin', approx_size=598_500_000,
                   description='OpenCLIP ViT-B/16 LAION-2B (GELU) for CLIP-DINOiser'),
]}

#: which registry entries a method + variant needs, by role
BUNDLES: Dict[Tuple[str, str], Dict[str, str]] = {
    ('talk2dino', 'vitb'): {'dinov2': 'dinov2_vitb14_reg', 'clip': 'clip_vitb16_openai', 'proj': 'talk2dino_vitb'},
    ('talk2dino', 'vitl'): {'dinov2': 'dinov2_vitl14_reg', 'clip': 'clip_vitb16_openai', 'proj': 'talk2dino_vitl'},
    ('clip_dinoiser', 'vitb'): {'openclip': 'openclip_vitb16_laion2b', 'clip_dinoiser': 'clip_dinoiser'},
}


def bundle(method: str, variant: str = 'vitb') -> Dict[str, PretrainedFile]:
    """role -> PretrainedFile for a method/variant (CLIP-DINOiser has one variant)."""
    key = (method, 'vitb' if method == 'clip_dinoiser' else variant)
    if key not in BUNDLES:
        known = ', '.join(f'{m}/{v}' for m, v in BUNDLES)
        raise KeyError(f'no published weights for {method}/{variant} (known: {known})')
    return {role: PRETRAINED[name] for role, name in BUNDLES[key].items()}


def default_paths(method: str, variant: str = 'vitb', weights_dir: os.PathLike | str | None = None) -> Dict[str, Path]:
    """Where ``fetch_weights`` puts each file of a bundle (role -> path)."""
    root = Path(weights_dir).expanduser() if weights_dir else DEFAULT_WEIGHTS_DIR
    return {role: root / f.filename for role, f in bundle(method, variant).items()}
