"""Train the projection ψ on extracted features with the authors' recipe (docs/method.md §4).

One sample per caption: (raw CLIP caption embedding, the image's per-head ``disentangled_self_attn``).
Per batch: ψ(text) and every head vector are L2-normalised; for each matched pair i the head with the
highest cosine to the image's *own* caption is selected, giving v_i; S[j, i] = ⟨t_j, v_i⟩ (rows texts,
columns images); loss = symmetric InfoNCE at the fixed temperature 0.07, divided by B². Adam, lr 1e-4,
constant; batch 128 with the last partial batch kept; seeded shuffling. Validation: retrieval
recall@k in both directions with ``avg_self_attn_out`` as the image embedding.
"""
from __future__ import annotations

import functools
import json
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from talk2dino_ros.atomic_files import atomic_torch_save, atomic_write_text
from talk2dino_ros.model.checkpoints import sha256_file
from talk2dino_ros.errors import Talk2DinoError
from talk2dino_ros.model.projection import ProjectionHead
from talk2dino_ros.training.features import FeatureSet

CHECKPOINT_FORMAT = 'talk2dino_ros.fit/1'
CHECKPOINT_NAME = 'checkpoint.pt'
HISTORY_NAME = 'history.jsonl'
# Options that must not change between a run and its resumption (epochs may grow).
RESUME_KEYS = ('batch_size', 'lr', 'temperature', 'seed')


class FitError(Talk2DinoError):
    """Bad training options or a checkpoint that cannot be resumed."""


@dataclass(frozen=True)
class FitConfig:
    """Options of ``train fit`` (``config/train.yaml``, section ``fit``)."""

    features: str = ''               # training feature folder (from `train extract`)
    val_features: str = ''           # validation feature folder; '' = no validation
    output: str = 'talk2dino_psi.pth'  # final ψ, released Talk2DINO layout
    run_dir: str = ''                # checkpoints + history; '' = <output without suffix>_run
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-4
    temperature: float = 0.07        # fixed, as in the authors' optimizer (never learned)
    seed: int = 123
    device: str = 'auto'             # 'auto' | 'cpu' | 'cuda' | 'cuda:N'
    resume: bool = True              # continue from run_dir's checkpoint when one exists
    variant: str = ''                # expected DINOv2 variant of the features ('' = no check)
    dinov2: str = ''                 # DINOv2 checkpoint whose sha256 the features must carry ('' = no check)
    val_max_images: int = 5000       # first N validation images (0 = all); retrieval is O(N_img · N_cap)
    recall_ks: Tuple[int, ...] = (1, 5)
    progress: bool = True
    plots: bool = True               # loss.png / recall.png in run_dir after every epoch (needs matplotlib)

    def resolved_run_dir(self) -> Path:
        if self.run_dir:
            return Path(self.run_dir).expanduser()
        out = Path(self.output).expanduser()
        return out.with_name(out.stem + '_run')


def resolve_device(name: str) -> torch.device:
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FitError(f'unknown device {name!r} (use auto, cpu, cuda or cuda:N)') from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise FitError(f'device {name!r} requested but CUDA is not available')
    return device


# ---------------------------------------------------------------------------------------------
# the loss


def select_heads(text: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
    """v_i = heads[i, argmax_m ⟨text_i, heads[i, m]⟩] for unit text [B, D] and unit heads [B, M, D]."""
    scores = torch.einsum('bd,bmd->bm', text, heads)
    best = scores.argmax(dim=1)
    return heads[torch.arange(heads.shape[0], device=heads.device), best]


def max_head_infonce(text: torch.Tensor, heads: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """The training loss of one batch: symmetric InfoNCE on S[j, i] = ⟨t_j, v_i⟩, divided by B².

    ``text``: ψ outputs [B, D] (unnormalised); ``heads``: image head embeddings [B, M, D] (unnormalised).
    """
    t = F.normalize(text, dim=-1)
    v = select_heads(t, F.normalize(heads, dim=-1))
    sim = t @ v.T / temperature
    target = torch.arange(sim.shape[0], device=sim.device)
    loss = (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target)) / 2
    return loss / sim.shape[0] ** 2


# ---------------------------------------------------------------------------------------------
# validation


@torch.no_grad()
def retrieval_recall(text: torch.Tensor, images: torch.Tensor, caption_image: torch.Tensor,
                     ks: Sequence[int] = (1, 5), chunk: int = 1024) -> Dict[str, float]:
    """Recall@k (percent) of caption→image (``t2i_rK``) and image→caption (``i2t_rK``) retrieval.

    Caption→image: the caption's own image is among the k most similar images. Image→caption: at
    least one of the image's captions is among its k most similar captions. Inputs are unit vectors.
    """
    n_cap, n_img = text.shape[0], images.shape[0]
    kmax = max(ks)
    t2i = torch.zeros(len(ks))
    for s in range(0, n_cap, chunk):
        sim = text[s:s + chunk] @ images.T
        top = sim.topk(min(kmax, n_img), dim=1).indices
        hit = top == caption_image[s:s + chunk, None]
        for i, k in enumerate(ks):
            t2i[i] += hit[:, :k].any(dim=1).sum().item()
    i2t = torch.zeros(len(ks))
    for s in range(0, n_img, chunk):
        sim = images[s:s + chunk] @ text.T
        top = sim.topk(min(kmax, n_cap), dim=1).indices
        hit = caption_image[top] == torch.arange(s, s + sim.shape[0], device=sim.device)[:, None]
        for i, k in enumerate(ks):
            i2t[i] += hit[:, :k].any(dim=1).sum().item()
    out = {}
    for i, k in enumerate(ks):
        out[f't2i_r{k}'] = 100.0 * t2i[i].item() / max(n_cap, 1)
        out[f'i2t_r{k}'] = 100.0 * i2t[i].item() / max(n_img, 1)
    return out


class ValidationSet:
    """Validation images (``avg_self_attn_out``) and their captions, loaded once."""

    def __init__(self, features: FeatureSet, max_images: int = 0):
        n_img = features.num_images if max_images <= 0 else min(max_images, features.num_images)
        caption_image = features.arrays['caption_image'].materialize()
        keep = np.nonzero(caption_image < n_img)[0]
        self.images = torch.from_numpy(features.arrays['avg'].slice(0, n_img).astype(np.float32))
        self.text = torch.from_numpy(features.arrays['text'].gather(keep).astype(np.float32))
        self.caption_image = torch.from_numpy(caption_image[keep].astype(np.int64))

    @torch.no_grad()
    def evaluate(self, head: ProjectionHead, device: torch.device, ks: Sequence[int]) -> Dict[str, float]:
        was_training = head.training
        head.eval()
        text = torch.cat([head(self.text[s:s + 8192].to(device)) for s in range(0, len(self.text), 8192)])
        head.train(was_training)
        return retrieval_recall(F.normalize(text, dim=-1), F.normalize(self.images.to(device), dim=-1),
                                self.caption_image.to(device), ks)


# ---------------------------------------------------------------------------------------------
# checkpoints and the released ψ layout


def projection_state(head: ProjectionHead) -> 'OrderedDict[str, torch.Tensor]':
    """ψ as the released Talk2DINO file holds it: a plain OrderedDict of 4 fp32 CPU tensors."""
    sd = head.state_dict()
    return OrderedDict((k, sd[k].detach().to('cpu', torch.float32).clone())
                       for k in ('linear_layer.weight', 'linear_layer.bias',
                                 'hidden_layers.0.weight', 'hidden_layers.0.bias'))


def _save_atomic(obj, path: Path) -> None:
    atomic_torch_save(obj, path)


def save_projection(head: ProjectionHead, path: os.PathLike | str) -> Path:
    out = Path(path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    _save_atomic(projection_state(head), out)
    return out


def _resume_identity(cfg: FitConfig, features: FeatureSet) -> Dict[str, object]:
    ident = {k: getattr(cfg, k) for k in RESUME_KEYS}
    ident['features_backbone'] = features.manifest['backbone']
    ident['features_dataset'] = features.manifest['dataset']
    ident['num_captions'] = features.num_captions
    return ident


# ---------------------------------------------------------------------------------------------
# the training loop


@dataclass
class FitResult:
    output: Path
    history: List[Dict[str, float]] = field(default_factory=list)
    samples_per_s: float = 0.0
    random_weights: bool = False  # the features came from random test weights: ψ means nothing


def _check_config(cfg: FitConfig) -> None:
    if not cfg.features:
        raise FitError('no training features given (set `features` to a folder written by `train extract`)')
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise FitError(f'epochs and batch_size must be >= 1 (got {cfg.epochs}, {cfg.batch_size})')
    if not (cfg.lr > 0 and cfg.temperature > 0):
        raise FitError(f'lr and temperature must be > 0 (got {cfg.lr}, {cfg.temperature})')
    if not cfg.recall_ks or min(cfg.recall_ks) < 1:
        raise FitError(f'recall_ks must be positive integers (got {cfg.recall_ks})')


def fit(cfg: FitConfig, log: Callable[[str], None] = print) -> FitResult:
    """Train ψ (resuming from ``run_dir`` when a checkpoint exists) and write it to ``cfg.output``."""
    _check_config(cfg)
    device = resolve_device(cfg.device)
    train = FeatureSet(cfg.features)
    if cfg.dinov2 and not Path(cfg.dinov2).expanduser().is_file():
        raise FitError(f'DINOv2 checkpoint not found: {cfg.dinov2}')
    expected_sha = sha256_file(Path(cfg.dinov2).expanduser()) if cfg.dinov2 else None
    train.check_backbone(cfg.variant or None, expected_sha)
    val = None
    if cfg.val_features:
        val_features = FeatureSet(cfg.val_features)
        val_features.check_backbone(like=train)
        val = ValidationSet(val_features, cfg.val_max_images)

    run_dir = cfg.resolved_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / CHECKPOINT_NAME
    identity = _resume_identity(cfg, train)

    torch.manual_seed(cfg.seed)
    head = ProjectionHead(train.text_dim, train.embed_dim).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    start_epoch = 0
    history: List[Dict[str, float]] = []
    if ckpt_path.exists():
        if not cfg.resume:
            raise FitError(f'{ckpt_path} exists; pass --resume to continue it or choose another --run-dir')
        state = torch.load(ckpt_path, map_location='cpu', weights_only=True)
        if state.get('format') != CHECKPOINT_FORMAT:
            raise FitError(f'{ckpt_path} is not a talk2dino_ros training checkpoint')
        if state['identity'] != identity:
            diff = [k for k in identity if state['identity'].get(k) != identity[k]]
            raise FitError(f'{ckpt_path} was made with different {", ".join(diff)}; '
                           'use the same options or another --run-dir')
        head.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        shuffle.set_state(state['shuffle_rng'])
        torch.set_rng_state(state['torch_rng'])
        start_epoch = int(state['epoch'])
        history = list(state['history'])
        log(f'resuming {ckpt_path} after epoch {start_epoch}')

    # Captions' text (RAM, stored dtype) and caption -> image; head vectors stay memory-mapped.
    text_all = torch.from_numpy(train.arrays['text'].materialize())
    caption_image = train.arrays['caption_image'].materialize()
    heads = train.arrays['heads']
    n = train.num_captions
    steps = math.ceil(n / cfg.batch_size)
    if start_epoch < cfg.epochs:
        log(f'training ψ {train.text_dim}->{train.embed_dim} on {n} captions / {train.num_images} images, '
            f'{steps} steps per epoch, device {device}')
    total_samples, total_time = 0, 0.0
    plot = _plot_writer(log) if cfg.plots and start_epoch < cfg.epochs else None
    if plot is not None and train.random_weights:
        plot = functools.partial(plot, random_weights=True)
    for epoch in range(start_epoch, cfg.epochs):
        head.train()
        perm = torch.randperm(n, generator=shuffle)
        t0 = time.perf_counter()
        loss_sum = 0.0
        bar = _progress(steps, f'epoch {epoch + 1}/{cfg.epochs}', cfg.progress)
        for s in range(0, n, cfg.batch_size):
            idx = perm[s:s + cfg.batch_size]
            text = text_all[idx].to(device, torch.float32)
            img = torch.from_numpy(heads.gather(caption_image[idx.numpy()]).astype(np.float32)).to(device)
            loss = max_head_infonce(head(text), img, cfg.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(idx)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - t0
        total_samples += n
        total_time += seconds
        record: Dict[str, float] = {'epoch': epoch + 1, 'loss': loss_sum / n, 'seconds': seconds,
                                    'samples_per_s': n / max(seconds, 1e-9),
                                    'random_weights': train.random_weights}  # said in history.jsonl too
        if val is not None:
            record.update(val.evaluate(head, device, cfg.recall_ks))
        history.append(record)
        _save_atomic({'format': CHECKPOINT_FORMAT, 'epoch': epoch + 1, 'identity': identity,
                      'model': head.state_dict(), 'optimizer': optimizer.state_dict(),
                      'shuffle_rng': shuffle.get_state(), 'torch_rng': torch.get_rng_state(),
                      'history': history}, ckpt_path)
        # rewritten whole from the checkpointed history: a resumed run never repeats or loses an epoch line
        atomic_write_text(run_dir / HISTORY_NAME, ''.join(json.dumps(r) + '\n' for r in history))
        log(_format_record(record))
        if plot is not None:
            plot(history, run_dir)
    out = save_projection(head, cfg.output)
    log(f'wrote ψ to {out}')
    return FitResult(out, history, total_samples / total_time if total_time else 0.0,
                     random_weights=train.random_weights)


def _plot_writer(log: Callable[[str], None]):
    """The per-epoch picture writer, or None (said once, in one line) when matplotlib is missing."""
    from talk2dino_ros.evaluation.plots import PlotsUnavailable, require_matplotlib, write_training_plots

    try:
        require_matplotlib()
    except PlotsUnavailable as exc:
        log(f'note: no loss/recall pictures: {exc} (or set plots: false)')
        return None
    return write_training_plots


def _format_record(r: Dict[str, float]) -> str:
    parts = [f"epoch {r['epoch']}", f"loss {r['loss']:.6g}", f"{r['samples_per_s']:.0f} samples/s"]
    parts += [f'{k} {v:.2f}' for k, v in r.items() if k.startswith(('t2i_', 'i2t_'))]
    return ' | '.join(parts)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit='step', leave=False)
