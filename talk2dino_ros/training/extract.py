"""Extract what ψ training needs from a COCO-captions dataset, once (docs/method.md §4).

Per image (Resize 448 bicubic on the short side, CenterCrop 448, ImageNet normalisation; frozen
DINOv2 reg4): the per-head ``disentangled_self_attn`` [M, D] = mean over patches of
softmax_p(CLS→patch logits of head m) · patch token, ``avg_self_attn_out`` [D] = the same with the
softmax of the head-mean logits, optionally the patch tokens. Per caption: the raw CLIP text
embedding (tokens truncated to 77). Written as sharded ``.npy`` files (see ``features.py``).
"""
from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch

import talk2dino_ros.model  # noqa: F401  (torchvision workaround before torchvision/timm)
from talk2dino_ros import catalog
from talk2dino_ros.model.backbone import IMAGENET_MEAN, IMAGENET_STD, PATCH_SIZE, build_backbone
from talk2dino_ros.model.checkpoints import sha256_file
from talk2dino_ros.errors import Talk2DinoError
from talk2dino_ros.model.text import build_clip_text_encoder
from talk2dino_ros.training import features as fmt
from talk2dino_ros.training.coco_captions import CocoCaptions, check_images_present, load_coco_captions
from talk2dino_ros.training.fit import resolve_device

DTYPES = {'float16': np.float16, 'float32': np.float32}
# Kept free on the output disk beyond the estimate (manifest rewrites, temporary shard files).
DISK_MARGIN_BYTES = 64 << 20


class ExtractError(Talk2DinoError):
    """Bad extraction options, an unreadable image, or not enough disk space."""


@dataclass(frozen=True)
class ExtractConfig:
    """Options of ``train extract`` (``config/train.yaml``, section ``extract``)."""

    images: str = ''                 # folder with the images named by the json's file_name
    annotations: str = ''            # COCO captions json (e.g. captions_train2014.json)
    output: str = ''                 # feature folder to create (or resume)
    dinov2: str = ''                 # backbone: DINOv2 reg4 (official .pth or timm layout) or DINOv3
    clip: str = ''                   # OpenAI CLIP ViT-B/16 (ViT-B-16.pt) or an open_clip state dict
    variant: str = ''                # expected backbone variant (a Talk2DINO variant of the catalog; '' = any)
    resolution: int = 448            # Resize short side + CenterCrop (the authors' 448)
    shard_size: int = 1024           # images per shard
    batch_size: int = 16             # images per backbone forward
    text_batch_size: int = 256       # captions per text-tower forward
    dtype: str = 'float16'           # storage dtype of the features: float16 | float32
    patch_tokens: bool = False       # also store the [P, D] patch tokens (large: P*D values per image)
    device: str = 'auto'
    workers: int = 4                 # image-decoding threads
    limit: int = 0                   # first N images only (0 = all)
    allow_random_weights: bool = False  # accept non-standard (test) backbone widths
    progress: bool = True


def image_transform(resolution: int) -> Callable:
    """The authors' feature-extraction preprocessing: PIL image -> normalised [3, R, R] tensor."""
    import torchvision.transforms as T
    return T.Compose([T.Resize(resolution, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(resolution),
                      T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def attention_pooled(patches: torch.Tensor, logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(disentangled_self_attn [B, M, D], avg_self_attn_out [B, D]) from patches [B, P, D], logits [B, M, P].

    Softmax over patches, weighted sum, divided by P (the reference takes the mean over patches of the
    weighted tokens).
    """
    n_patches = patches.shape[1]
    per_head = torch.softmax(logits, dim=-1)
    heads = torch.einsum('bmp,bpd->bmd', per_head, patches) / n_patches
    avg = torch.softmax(logits.mean(dim=1), dim=-1)
    return heads, torch.einsum('bp,bpd->bd', avg, patches) / n_patches


def _load_image(path: Path, transform: Callable) -> torch.Tensor:
    from PIL import Image
    try:
        with Image.open(path) as im:
            return transform(im.convert('RGB'))
    except (OSError, ValueError) as exc:
        raise ExtractError(f'image {path} cannot be read: {exc}') from None


def estimate_bytes(n_images: int, n_captions: int, heads: int, width: int, text_dim: int, n_patches: int,
                   itemsize: int, patch_tokens: bool) -> int:
    """Size on disk of the features of ``n_images`` images and ``n_captions`` captions (data only)."""
    per_image = (heads * width + width + (n_patches * width if patch_tokens else 0)) * itemsize
    per_caption = text_dim * itemsize + 8  # + int64 caption -> image index
    return n_images * per_image + n_captions * per_caption


def _human(n: float) -> str:
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(n) < 1024 or unit == 'TiB':
            return f'{n:.1f} {unit}'
        n /= 1024
    return f'{n:.1f} TiB'


def _check_space(folder: Path, needed: int) -> int:
    """Free bytes where ``folder`` is (or will be); ExtractError when ``needed`` does not fit."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed + DISK_MARGIN_BYTES > free:
        raise ExtractError(f'not enough disk space at {folder}: the features need about {_human(needed)} '
                           f'(+{_human(DISK_MARGIN_BYTES)} margin) but only {_human(free)} is free')
    return free


def _check_config(cfg: ExtractConfig) -> None:
    for name in ('images', 'annotations', 'output', 'dinov2', 'clip'):
        if not getattr(cfg, name):
            raise ExtractError(f'extract needs `{name}` (flag --{name.replace("_", "-")} or the yaml)')
    if cfg.dtype not in DTYPES:
        raise ExtractError(f'dtype must be one of {sorted(DTYPES)}, got {cfg.dtype!r}')
    # the variant's patch size when it is known up front (14 for DINOv2, 16 for DINOv3); otherwise the
    # loaded backbone's is checked once its file is read
    backbone = catalog.backbones().get(cfg.variant) if cfg.variant else None
    patch = backbone.patch_size if backbone is not None else PATCH_SIZE
    if cfg.resolution < patch or (backbone is not None and cfg.resolution % patch):
        raise ExtractError(f'resolution must be a positive multiple of {patch} (the backbone patch size {patch}), '
                           f'got {cfg.resolution}')
    if min(cfg.shard_size, cfg.batch_size, cfg.text_batch_size, cfg.workers) < 1:
        raise ExtractError('shard_size, batch_size, text_batch_size and workers must be >= 1')


def build_header(cfg: ExtractConfig, dataset: CocoCaptions, backbone, text_dim: int) -> Dict:
    """The manifest fields that identify an extraction (checked again when resuming)."""
    arch = backbone.arch
    return {
        'format': fmt.FORMAT,
        'backbone': {'variant': arch.variant, 'embed_dim': arch.embed_dim, 'num_heads': arch.num_heads,
                     'depth': arch.depth, 'checkpoint': Path(cfg.dinov2).name,
                     'sha256': sha256_file(Path(cfg.dinov2).expanduser())},
        'text': {'model': 'clip', 'embed_dim': int(text_dim), 'checkpoint': Path(cfg.clip).name,
                 'sha256': sha256_file(Path(cfg.clip).expanduser()), 'truncate': True},
        'preprocessing': {'resize': 'short side, bicubic', 'crop': 'center', 'resolution': cfg.resolution,
                          'normalize': 'imagenet'},
        'dataset': {'annotations': Path(cfg.annotations).name,
                    'annotations_sha256': sha256_file(Path(cfg.annotations).expanduser()),
                    'num_images': len(dataset.images), 'num_captions': len(dataset.captions)},
        'dtype': cfg.dtype,
        'shard_size': cfg.shard_size,
        'patch_tokens': cfg.patch_tokens,
    }


def run_extract(cfg: ExtractConfig, log: Callable[[str], None] = print) -> Dict[str, float]:
    """Extract (or finish extracting) the features of a dataset; returns timing statistics."""
    _check_config(cfg)
    dataset = load_coco_captions(cfg.annotations, cfg.limit)
    paths = check_images_present(dataset, cfg.images)
    device = resolve_device(cfg.device)
    backbone = build_backbone(cfg.dinov2, expected_variant=cfg.variant or None,
                              allow_test_width=cfg.allow_random_weights).to(device)
    if cfg.resolution % backbone.patch_size:  # DINOv3 files have 16-pixel patches
        raise ExtractError(f'resolution must be a multiple of the backbone patch size {backbone.patch_size}, '
                           f'got {cfg.resolution}')
    text_encoder = build_clip_text_encoder(cfg.clip).to(device)
    header = build_header(cfg, dataset, backbone, text_encoder.embed_dim)
    # what was loaded decides: a test width, or files accepted through the random-weights switch
    header['random_weights'] = bool(cfg.allow_random_weights or backbone.arch.variant == 'test'
                                    or (text_encoder.width, text_encoder.embed_dim) != (512, 512))
    shards = fmt.plan_shards(dataset.caption_range(), cfg.shard_size)
    index = {'images': [{'id': im.id, 'file_name': im.file_name} for im in dataset.images],
             'captions': [{'id': cid, 'image': img, 'caption': cap} for cid, img, cap
                          in zip(dataset.caption_ids, dataset.caption_image, dataset.captions)]}
    output = Path(cfg.output).expanduser()
    n_patches = (cfg.resolution // backbone.patch_size) ** 2
    itemsize = np.dtype(DTYPES[cfg.dtype]).itemsize
    arch, text_dim = backbone.arch, text_encoder.embed_dim

    def size_of(n_img: int, n_cap: int) -> int:
        return estimate_bytes(n_img, n_cap, arch.num_heads, arch.embed_dim, text_dim, n_patches, itemsize,
                              cfg.patch_tokens)

    total = size_of(len(dataset.images), len(dataset.captions))
    if not (output / fmt.MANIFEST).exists():  # refuse before creating anything
        _check_space(output, total)
    manifest = fmt.open_for_writing(output, header, shards, index)
    todo = [s for s in manifest['shards'] if not s['complete']]
    n_todo_img = sum(s['images'][1] - s['images'][0] for s in todo)
    needed = size_of(n_todo_img, sum(s['captions'][1] - s['captions'][0] for s in todo))
    free = _check_space(output, needed)
    log(f'{len(dataset.images)} images, {len(dataset.captions)} captions; features {_human(total)} in total, '
        f'{_human(needed)} still to write ({len(todo)} of {len(shards)} shards); {_human(free)} free at {output}')
    stats = {'images': 0, 'captions': 0, 'image_seconds': 0.0, 'text_seconds': 0.0,
             'random_weights': header['random_weights']}
    if not todo:
        log(f'{output}: all {len(shards)} shards already complete')
        return stats

    transform = image_transform(cfg.resolution)
    store = DTYPES[cfg.dtype]
    bar = None
    if cfg.progress:
        from tqdm import tqdm
        bar = tqdm(total=len(dataset.images), initial=len(dataset.images) - n_todo_img, unit='img', desc='extract')
    with ThreadPoolExecutor(cfg.workers) as pool:
        for shard in todo:
            i0, i1 = shard['images']
            c0, c1 = shard['captions']
            t0 = time.perf_counter()
            out: Dict[str, List[np.ndarray]] = {'heads': [], 'avg': [], 'patches': []}
            for b in range(i0, i1, cfg.batch_size):
                batch = list(pool.map(lambda p: _load_image(p, transform), paths[b:min(b + cfg.batch_size, i1)]))
                with torch.inference_mode():
                    feats, logits = backbone(torch.stack(batch).to(device))
                    patches = feats.flatten(2).transpose(1, 2)  # [B, P, D], row-major patches
                    heads, avg = attention_pooled(patches.float(), logits.float())
                out['heads'].append(heads.cpu().numpy().astype(store))
                out['avg'].append(avg.cpu().numpy().astype(store))
                if cfg.patch_tokens:
                    out['patches'].append(patches.cpu().numpy().astype(store))
                if bar is not None:
                    bar.update(len(batch))
            t1 = time.perf_counter()
            captions = list(dataset.captions[c0:c1])
            text = text_encoder.encode_raw(captions, chunk=cfg.text_batch_size).cpu().numpy()
            t2 = time.perf_counter()
            arrays = {name: np.concatenate(parts) for name, parts in out.items() if parts}
            arrays['text'] = text.reshape(len(captions), text_dim).astype(store)
            arrays['caption_image'] = np.asarray(dataset.caption_image[c0:c1], dtype=np.int64)
            fmt.write_shard(output, manifest, shard['index'], arrays)
            stats['images'] += i1 - i0
            stats['captions'] += c1 - c0
            stats['image_seconds'] += t1 - t0
            stats['text_seconds'] += t2 - t1
    if bar is not None:
        bar.close()
    stats['images_per_s'] = stats['images'] / max(stats['image_seconds'], 1e-9)
    stats['captions_per_s'] = stats['captions'] / max(stats['text_seconds'], 1e-9)
    log(f'wrote {stats["images"]} images ({stats["images_per_s"]:.2f} img/s) and {stats["captions"]} captions '
        f'({stats["captions_per_s"]:.1f} captions/s) to {output}')
    return stats
