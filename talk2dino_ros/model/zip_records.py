"""Budgets on a checkpoint's zip records, checked before anything is decompressed or unpickled.

PyTorch writes ``.pth``/``.pt`` files (``torch.save``, ``torch.jit.save``) as zip archives whose tensor
data records are stored uncompressed. A crafted archive can instead claim a record of gigabytes that
deflates from a few hundred bytes, or point many records at the same bytes. So, from the central
directory alone:

* the record count is bounded;
* every record lies inside the file and the records together claim no more bytes than the file has
  (overlapping records would let one byte be read many times);
* a stored record's size is its size in the file; records that must be stored (tensor data, and
  everything in a ``torch.save`` file) are refused when compressed;
* a record is only ever read up to a limit fixed by what it is (:func:`read_record`).

A record that is compressed is therefore never inflated past the size it claims, and that claim is
checked against a per-record budget before a byte is read.
"""
from __future__ import annotations

import os
import zipfile
from typing import Callable

from talk2dino_ros.errors import CheckpointError

#: far more records than any weights file has (ViT-B/16 TorchScript: ~850; a DINOv2 .pth: ~350)
MAX_RECORDS = 50_000
#: the compression methods PyTorch's own reader understands
_METHODS = {zipfile.ZIP_STORED: 'stored', zipfile.ZIP_DEFLATED: 'deflated'}


def check_records(zf: zipfile.ZipFile, path: os.PathLike | str,
                  must_be_stored: Callable[[str], bool] = lambda name: True) -> None:
    """Refuse an archive whose directory claims more than the file holds (CheckpointError, no path)."""
    infos = zf.infolist()
    if len(infos) > MAX_RECORDS:
        raise CheckpointError(f'the archive has {len(infos)} records (at most {MAX_RECORDS})')
    size = os.path.getsize(path)
    claimed = 0
    for info in infos:
        name = info.filename[:120]
        if info.compress_type not in _METHODS:
            raise CheckpointError(f'record {name} uses compression method {info.compress_type}, '
                                  'which PyTorch never writes')
        if info.compress_type != zipfile.ZIP_STORED and must_be_stored(info.filename):
            raise CheckpointError(f'record {name} is compressed ({info.file_size} bytes claimed from '
                                  f'{info.compress_size}); PyTorch stores tensor data uncompressed')
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise CheckpointError(f'stored record {name} claims {info.file_size} bytes but occupies '
                                  f'{info.compress_size}')
        if info.header_offset < 0 or info.header_offset + info.compress_size > size:
            raise CheckpointError(f'record {name} lies outside the {size}-byte file')
        claimed += info.compress_size
    if claimed > size:
        raise CheckpointError(f'the records claim {claimed} bytes of a {size}-byte file (overlapping records)')


def read_record(zf: zipfile.ZipFile, name: str, limit: int, what: str | None = None) -> bytes:
    """The bytes of one record, refused when it claims more than ``limit`` bytes (read at most that)."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise CheckpointError(f'{what or name} is missing') from None
    if info.file_size > limit:
        raise CheckpointError(f'{what or name} claims {info.file_size} bytes (at most {limit} expected)')
    with zf.open(info) as f:
        # zipfile stops at the claimed size and checks the CRC there: a record can never inflate further
        return f.read(limit + 1)
