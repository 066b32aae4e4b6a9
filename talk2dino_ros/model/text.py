"""CLIP text tower through open_clip, prompt templates and the per-name embedding cache."""
from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from typing import Callable, Dict, List, Sequence, Tuple

import torch

import talk2dino_ros.model  # noqa: F401  (torchvision workaround before open_clip)
from open_clip.model import _build_text_tower
from open_clip.tokenizer import SimpleTokenizer

from talk2dino_ros.class_names import clip_text
from talk2dino_ros.model.checkpoints import (StateDict, load_into, load_state_dict_file,
                                          malformed_checkpoint, require_keys)
from talk2dino_ros.errors import CheckpointError

#: Talk2DINO's inference prompt set ("sub_imagenet_template"), in the authors' order.
TALK2DINO_TEMPLATES: Tuple[str, ...] = (
    'itap of a {}.',
    'a bad photo of a {}.',
    'a origami {}.',
    'a photo of the large {}.',
    'a {} in a video game.',
    'art of the {}.',
    'a photo of the small {}.',
)
CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408
TEXT_KEYS = ('token_embedding.weight', 'positional_embedding', 'ln_final.weight', 'text_projection')


@functools.lru_cache(maxsize=1)
def _tokenizer() -> SimpleTokenizer:
    tok = SimpleTokenizer(context_length=CONTEXT_LENGTH)
    # the one normalisation of the package: class names are compared on exactly what is encoded
    tok.clean_fn = clip_text
    return tok


def tokenize(texts: Sequence[str]) -> torch.Tensor:
    """CLIP BPE tokens [len(texts), 77] (SOT + BPE + EOT, zero padded, truncated to 77).

    The text is cleaned by :func:`talk2dino_ros.class_names.clip_text` (open_clip's own cleaning steps).
    """
    return _tokenizer()(list(texts), context_length=CONTEXT_LENGTH)


def _text_state(sd: StateDict) -> StateDict:
    return {k: v for k, v in sd.items()
            if not k.startswith('visual.') and k not in ('logit_scale', 'logit_bias', 'attn_mask')
            and not k.startswith('text.')} or {k[5:]: v for k, v in sd.items() if k.startswith('text.')}


def encode_eot(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """CLIP ``encode_text`` (EOT feature after ln_final and text_projection, unnormalised), computed only
    over the first L positions, L = the last EOT position of the batch + 1.

    The text transformer is causal and the output is read at the EOT token, so the positions after it
    never influence the result; dropping them cuts the cost ~6-9x for short prompts (differences are
    float rounding, ~1e-6). ``model`` is an open_clip ``CLIP`` or ``TextTransformer`` (same attributes).
    """
    eot = tokens.argmax(dim=-1)
    L = int(eot.max()) + 1
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens[:, :L]).to(cast_dtype)
    x = x + model.positional_embedding[:L].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:L, :L])
    x = model.ln_final(x)
    pooled = x[torch.arange(x.shape[0], device=x.device), eot]
    proj = model.text_projection
    if proj is None:
        return pooled
    return proj(pooled) if isinstance(proj, torch.nn.Linear) else pooled @ proj


class ClipTextEncoder(torch.nn.Module):
    """The CLIP text transformer: ``forward(tokens) -> [B, E]`` EOT features (ln_final + projection, unnormalised)."""

    def __init__(self, width: int, layers: int, heads: int, embed_dim: int, quick_gelu: bool = True):
        super().__init__()
        cfg = dict(context_length=CONTEXT_LENGTH, vocab_size=VOCAB_SIZE, width=width, heads=heads, layers=layers)
        self.tower = _build_text_tower(embed_dim, cfg, quick_gelu=quick_gelu)
        self.embed_dim = embed_dim
        self.width = width

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return encode_eot(self.tower, tokens)

    @torch.inference_mode()
    def encode_raw(self, texts: Sequence[str], chunk: int = 256) -> torch.Tensor:
        """Unnormalised CLIP embeddings [len(texts), E] (e.g. captions for training), fp32."""
        device = next(self.parameters()).device
        out = [self(tokenize(texts[i:i + chunk]).to(device)).float() for i in range(0, len(texts), chunk)]
        return torch.cat(out) if out else torch.empty(0, self.embed_dim, device=device)


#: OpenAI CLIP ViT-B/16's text tower, the one Talk2DINO's ψ reads (random test towers are smaller)
PUBLISHED_TEXT_TOWER = dict(width=512, layers=12, embed_dim=512)


def _text_tower_shape(sd: StateDict, path: os.PathLike | str) -> Tuple[int, int, int]:
    """(width, layers, embed_dim) declared by the file, refused when larger than the published tower."""
    width = int(sd['ln_final.weight'].shape[0])
    blocks = {k.split('.')[2] for k in sd if k.startswith('transformer.resblocks.') and k.count('.') >= 3}
    layers = len(blocks)
    embed_dim = int(sd['text_projection'].shape[1])
    declared = dict(width=width, layers=layers, embed_dim=embed_dim)
    if any(declared[k] > v for k, v in PUBLISHED_TEXT_TOWER.items()):
        raise CheckpointError(f'CLIP file {path} declares a text tower of width {width}, {layers} layers, '
                              f'{embed_dim}-d output: larger than the OpenAI ViT-B/16 tower Talk2DINO uses '
                              '(512, 12, 512)')
    if blocks != {str(i) for i in range(layers)}:
        raise CheckpointError(f'CLIP file {path} numbers its text blocks {sorted(blocks)[:6]}, not 0..{layers - 1}')
    return width, layers, embed_dim


def build_clip_text_encoder(path: os.PathLike | str, quick_gelu: bool = True) -> ClipTextEncoder:
    """Load the text tower from the OpenAI ``ViT-B-16.pt`` (TorchScript), a plain or open_clip state dict.

    ``quick_gelu`` must be True for OpenAI weights (they were trained with QuickGELU) and False for
    LAION open_clip weights; getting it wrong silently shifts the embeddings. Every tensor shape is
    checked against the architecture the file declares before the tower is allocated.
    """
    with malformed_checkpoint(path, 'CLIP'):
        sd = _text_state(load_state_dict_file(path, 'CLIP', allow_torchscript=True))
        require_keys(sd, TEXT_KEYS, path, 'CLIP')
        width, layers, embed_dim = _text_tower_shape(sd, path)
        if tuple(sd['token_embedding.weight'].shape) != (VOCAB_SIZE, width) or layers == 0:
            raise CheckpointError(f'CLIP file {path} is not a CLIP text tower: token_embedding '
                                  f'{list(sd["token_embedding.weight"].shape)}, {layers} layers')
        heads = max(1, width // 64)
        with torch.device('meta'):  # shapes only: nothing is allocated until they all match
            expected = ClipTextEncoder(width, layers, heads, embed_dim, quick_gelu=quick_gelu).tower.state_dict()
        missing = [k for k in expected if k not in sd]
        if missing:
            raise CheckpointError(f'CLIP file {path} is missing text-tower keys: {missing[:4]}')
        wrong = [k for k in expected if tuple(sd[k].shape) != tuple(expected[k].shape)]
        if wrong:
            raise CheckpointError(f'CLIP file {path} does not fit a {width}-wide text tower: ' + ', '.join(
                f'{k} {list(sd[k].shape)} (expected {list(expected[k].shape)})' for k in wrong[:3]))
        enc = ClipTextEncoder(width, layers, heads, embed_dim, quick_gelu=quick_gelu)
        tower_sd = {k: sd[k].float() for k in expected}
        load_into(enc.tower, tower_sd, path, 'CLIP', strict=False)
        return enc.eval().requires_grad_(False)


def template_prompts(names: Sequence[str], templates: Sequence[str]) -> List[str]:
    """Name-major list of prompts: for each name, every template (``template.format(name)``, verbatim)."""
    return [t.format(n) for n in names for t in templates]


class TextEmbeddingCache:
    """Thread-safe bounded LRU of per-name embeddings; ``get_many`` encodes only the names it lacks."""

    def __init__(self, encode: Callable[[List[str]], torch.Tensor], max_entries: int = 4096):
        if max_entries < 1:
            raise ValueError('text cache size must be >= 1')
        self._encode = encode
        self._max = max_entries
        self._entries: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get_many(self, names: Sequence[str]) -> torch.Tensor:
        """Embeddings [len(names), D] in order; a name absent from the cache is encoded once."""
        with self._lock:
            # keep references to the rows we already have: another thread may evict them while we encode
            have = {n: self._entries[n] for n in names if n in self._entries}
            missing = list(dict.fromkeys(n for n in names if n not in have))
            self.hits += sum(1 for n in names if n in have)
            self.misses += len(missing)
        fresh: Dict[str, torch.Tensor] = {}
        if missing:
            # encode outside the lock: a reader of cached names never waits for the text tower
            emb = self._encode(missing)
            fresh = {n: emb[i] for i, n in enumerate(missing)}
        with self._lock:
            rows = []
            for n in names:
                e = fresh[n] if n in fresh else have[n]
                self._entries[n] = e
                self._entries.move_to_end(n)
                rows.append(e)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return torch.stack(rows) if rows else torch.empty(0)
