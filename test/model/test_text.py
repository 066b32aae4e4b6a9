"""Text side: templates, template averaging -> ψ -> L2 norm, and the per-name embedding cache."""
import random
import threading

import numpy as np
import pytest
import torch

import talk2dino_ros.model  # noqa: F401
from talk2dino_ros.model.text import TALK2DINO_TEMPLATES, TextEmbeddingCache, template_prompts, tokenize

NAMES = ['cat', 'traffic light', 'sky', 'person', 'potted plant', 'road', 'tree', 'dog', 'bus', 'wall']


@pytest.fixture(scope='module')
def method(tiny_segmenter):
    return tiny_segmenter.method


# ------------------------------------------------------------------ templates

def test_templates_are_the_authors_seven_in_order():
    assert TALK2DINO_TEMPLATES == (
        'itap of a {}.', 'a bad photo of a {}.', 'a origami {}.', 'a photo of the large {}.',
        'a {} in a video game.', 'art of the {}.', 'a photo of the small {}.')


def test_template_prompts_name_major():
    prompts = template_prompts(['cat', 'sky'], TALK2DINO_TEMPLATES)
    assert len(prompts) == 14
    assert prompts[:2] == ['itap of a cat.', 'a bad photo of a cat.']
    assert prompts[6] == 'a photo of the small cat.'
    assert prompts[7] == 'itap of a sky.'
    assert template_prompts(['a {b}'], ('x {} y',)) == ['x a {b} y']   # names are not format strings


def test_tokenize_shape():
    tok = tokenize(['itap of a cat.', 'x'])
    assert tok.shape == (2, 77) and tok.dtype == torch.long
    assert (tok.argmax(-1) > 0).all()  # EOT (highest id) after SOT


# ------------------------------------------------------------------ average -> project -> normalise

def _manual_embedding(method, name: str) -> np.ndarray:
    """One prompt at a time through the tower, float64 mean of the 7 raw EOT features, ψ by hand, L2 norm."""
    raw = []
    with torch.no_grad():
        for t in TALK2DINO_TEMPLATES:
            raw.append(method.text_encoder(tokenize([t.format(name)]))[0].double().numpy())
    mean = np.mean(raw, axis=0)
    p = {k: v.double().numpy() for k, v in method.projection.state_dict().items()}
    hidden = np.tanh(p['linear_layer.weight'] @ mean + p['linear_layer.bias'])
    out = p['hidden_layers.0.weight'] @ hidden + p['hidden_layers.0.bias']
    return out / np.linalg.norm(out), np.asarray(raw)


def test_encode_text_matches_manual_computation(method):
    with torch.no_grad():
        emb = method.encode_text(['cat', 'traffic light']).double().numpy()
    assert emb.shape == (2, method.backbone.embed_dim)
    for i, name in enumerate(['cat', 'traffic light']):
        expected, raw = _manual_embedding(method, name)
        np.testing.assert_allclose(emb[i], expected, atol=1e-5)
        # the order matters: projecting (or normalising) each template first gives another vector
        p = method.projection
        with torch.no_grad():
            proj_first = p(torch.from_numpy(raw).float()).mean(0)
            norm_first = p(torch.nn.functional.normalize(torch.from_numpy(raw).float(), dim=-1).mean(0))
        for wrong in (proj_first, norm_first):
            wrong = (wrong / wrong.norm()).double().numpy()
            assert np.abs(wrong - expected).max() > 1e-3
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)


def test_rows_independent_of_batch_composition(method):
    names = NAMES[:6]
    with torch.no_grad():
        together = method.encode_text(names)                  # 42 prompts: 2 chunks of the tower
        reversed_ = method.encode_text(names[::-1])
        alone = torch.cat([method.encode_text([n]) for n in names])
    assert torch.allclose(together, alone, atol=1e-6, rtol=0), (together - alone).abs().max()
    assert torch.allclose(together, reversed_.flip(0), atol=1e-6, rtol=0)


# ------------------------------------------------------------------ the cache

class CountingEncoder:
    """Deterministic fake text encoder that records every call."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    @staticmethod
    def vector(name: str) -> torch.Tensor:
        g = torch.Generator().manual_seed(sum(ord(c) * (i + 1) for i, c in enumerate(name)))
        return torch.randn(4, generator=g)

    def __call__(self, names):
        with self.lock:
            self.calls.append(list(names))
        return torch.stack([self.vector(n) for n in names])


def test_cache_hits_misses_and_only_new_names_encoded():
    enc = CountingEncoder()
    cache = TextEmbeddingCache(enc, max_entries=10)
    out = cache.get_many(['a', 'b', 'c'])
    assert enc.calls == [['a', 'b', 'c']]
    assert torch.equal(out[1], enc.vector('b'))
    assert (cache.hits, cache.misses) == (0, 3)
    out = cache.get_many(['c', 'd', 'a', 'e'])
    assert enc.calls[-1] == ['d', 'e']
    assert (cache.hits, cache.misses) == (2, 5)
    assert torch.equal(out, torch.stack([enc.vector(n) for n in ['c', 'd', 'a', 'e']]))
    cache.get_many(['e', 'a'])
    assert len(enc.calls) == 2 and (cache.hits, cache.misses) == (4, 5)
    # a name repeated in one request is encoded once
    cache.get_many(['f', 'f'])
    assert enc.calls[-1] == ['f']
    assert len(cache) == 6 and 'f' in cache
    cache.clear()
    assert len(cache) == 0


def test_cache_lru_bound():
    enc = CountingEncoder()
    cache = TextEmbeddingCache(enc, max_entries=3)
    cache.get_many(['a', 'b', 'c'])
    cache.get_many(['a'])          # a is now the most recent; b the least recent
    cache.get_many(['d'])          # evicts b
    assert len(cache) == 3
    assert 'b' not in cache and all(n in cache for n in 'acd')
    cache.get_many(['b'])          # re-encoded, evicts c
    assert enc.calls[-1] == ['b'] and 'c' not in cache
    with pytest.raises(ValueError):
        TextEmbeddingCache(enc, max_entries=0)
    # a request larger than the bound still returns every row
    out = cache.get_many(['p', 'q', 'r', 's', 't'])
    assert out.shape == (5, 4) and len(cache) == 3


def test_cache_thread_safety_smoke():
    enc = CountingEncoder()
    cache = TextEmbeddingCache(enc, max_entries=64)
    pool = [f'name{i}' for i in range(24)]
    errors, requested = [], []

    def worker(seed):
        rng = random.Random(seed)
        try:
            for _ in range(40):
                names = rng.sample(pool, rng.randint(1, 6))
                requested.append(len(names))
                out = cache.get_many(names)
                expected = torch.stack([enc.vector(n) for n in names])
                if not torch.equal(out, expected):
                    errors.append(f'wrong rows for {names}')
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    assert len(cache) <= 64
    assert cache.hits + cache.misses == sum(requested)   # counters updated under the lock, none lost
    # every pool name was encoded at least once, and rarely more than once (only on a concurrent first miss)
    encoded = [n for call in enc.calls for n in call]
    assert set(encoded) <= set(pool) and len(encoded) < 8 * len(pool)


def test_cache_eviction_while_encoding_keeps_cached_rows():
    """A cached name evicted by another thread while this thread encodes a new name must still be returned."""
    gate, entered = threading.Event(), threading.Event()
    enc = CountingEncoder()

    def slow_encode(names):
        if 'slow' in names:
            entered.set()
            gate.wait(10)
        return enc(names)

    cache = TextEmbeddingCache(slow_encode, max_entries=3)
    cache.get_many(['x'])
    result, errors = {}, []

    def reader():
        try:
            result['out'] = cache.get_many(['x', 'slow'])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    assert entered.wait(10)
    cache.get_many(['a', 'b', 'c'])    # evicts 'x' while the reader is encoding 'slow'
    gate.set()
    t.join(10)
    assert not errors, ('BUG text.py TextEmbeddingCache.get_many: a name that was cached when the call started '
                        'is looked up again after encoding and is gone if another thread evicted it '
                        f'meanwhile -> {errors[0]!r}')
    assert torch.equal(result['out'][0], enc.vector('x'))


# ------------------------------------------------------------------ through the segmenter

def test_segmenter_encodes_only_new_names(fresh_tiny_segmenter, monkeypatch):
    seg = fresh_tiny_segmenter
    calls = []
    original = seg.method.encode_text

    def counting(names):
        calls.append(list(names))
        return original(names)

    monkeypatch.setattr(seg.method, 'encode_text', counting)
    v1 = seg.set_vocabulary(['cat', 'dog'])
    v2 = seg.set_vocabulary(['dog', 'bus', 'cat'])
    assert calls == [['cat', 'dog'], ['bus']]
    assert torch.equal(v2.embeddings[0], v1.embeddings[1]) and torch.equal(v2.embeddings[2], v1.embeddings[0])
    seg.set_vocabulary(['bus'])
    assert len(calls) == 2
    assert v2.version > v1.version
    assert seg.text_cache.hits >= 3


def test_eot_truncated_encoding_equals_the_full_tower(tiny_weights):
    """Dropping the positions after the last EOT (causal attention) changes nothing but rounding."""
    import torch
    from talk2dino_ros.model.text import build_clip_text_encoder, tokenize
    enc = build_clip_text_encoder(tiny_weights['clip'])
    tokens = tokenize(['a', 'a photo of the small traffic light.', 'x ' * 60])
    with torch.no_grad():
        full = enc.tower(tokens)
        fast = enc(tokens)
        short = enc(tokens[:1])
    assert torch.allclose(full, fast, atol=1e-5)
    assert torch.allclose(full[:1], short, atol=1e-5)
