"""Resumable bag processing: a work folder ``OUT.partial/`` next to the output bag.

What "resumable" means for ``segment_bag``:

* The output bag ``OUT`` only appears once it is complete: everything is written into
  ``OUT.partial/bag`` and renamed to ``OUT`` at the end. ``OUT`` itself is never overwritten.
* Every segmented frame's output messages (serialized) are appended to ``OUT.partial/frames.bin`` as one
  checksummed record, flushed frame by frame. After a crash, Ctrl-C or a killed job,
  ``segment_bag ... --resume`` re-reads that file, keeps every complete record (a torn last record is
  dropped), skips the model for those frames and segments only the rest. The output bag is rebuilt from
  the start (copying the input's topics is cheap next to inference).
* ``OUT.partial/run.json`` records the settings (input bag, topic, vocabulary, model, options); a resume
  with other settings is refused, naming what differs. Without ``--resume`` an existing ``OUT.partial``
  is an error (it is never deleted silently).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from talk2dino_ros.atomic_files import atomic_write_text
from talk2dino_ros.errors import Talk2DinoError

_MAGIC = b'T2DF'
_HEAD = struct.Struct('<4sIqI')      # magic, frame index, bag timestamp ns, payload length
_CRC = struct.Struct('<I')
_ITEM = struct.Struct('<HI')         # key length, value length

Record = Tuple[int, int, Dict[str, bytes]]  # (frame index, timestamp, key -> bytes)


class ResumeError(Talk2DinoError):
    """The output or its work folder is in a state this run must not touch."""


def encode_record(index: int, timestamp: int, items: Mapping[str, bytes]) -> bytes:
    """One frame's outputs as a self-checking record."""
    body = b''.join(_ITEM.pack(len(k.encode()), len(v)) + k.encode() + bytes(v) for k, v in items.items())
    return _HEAD.pack(_MAGIC, index, timestamp, len(body)) + body + _CRC.pack(zlib.crc32(body))


def _decode_body(body: bytes) -> Dict[str, bytes]:
    items: Dict[str, bytes] = {}
    off = 0
    while off < len(body):
        klen, vlen = _ITEM.unpack_from(body, off)
        off += _ITEM.size
        key = body[off:off + klen].decode()
        off += klen
        items[key] = body[off:off + vlen]
        off += vlen
    return items


def scan_records(path: Path) -> Tuple[Dict[int, Tuple[int, int, int]], int]:
    """Index of the complete records of a frames file: frame -> (timestamp, offset, size), and the
    number of valid bytes (a torn or corrupt record ends the scan). Bodies are not kept in memory."""
    index: Dict[int, Tuple[int, int, int]] = {}
    pos = 0
    try:
        f = open(path, 'rb')
    except FileNotFoundError:
        return index, 0
    with f:
        while True:
            head = f.read(_HEAD.size)
            if len(head) < _HEAD.size:
                break
            magic, frame, timestamp, length = _HEAD.unpack(head)
            if magic != _MAGIC:
                break
            body = f.read(length)
            crc = f.read(_CRC.size)
            if len(body) < length or len(crc) < _CRC.size or _CRC.unpack(crc)[0] != zlib.crc32(body):
                break
            size = _HEAD.size + length + _CRC.size
            index[frame] = (timestamp, pos, size)
            pos += size
    return index, pos


def read_record(path: Path, offset: int, size: int) -> Record:
    """The record at ``offset`` (as indexed by :func:`scan_records`)."""
    with open(path, 'rb') as f:
        f.seek(offset)
        data = f.read(size)
    _, frame, timestamp, length = _HEAD.unpack_from(data, 0)
    return frame, timestamp, _decode_body(data[_HEAD.size:_HEAD.size + length])


class PartialOutput:
    """The ``OUT.partial`` work folder of one run (see the module docstring)."""

    def __init__(self, out: Path):
        self.out = Path(out).expanduser()
        self.root = self.out.with_name(self.out.name + '.partial')
        self.bag = self.root / 'bag'
        self.frames_path = self.root / 'frames.bin'
        self.run_path = self.root / 'run.json'
        self._frames_file = None
        self._index: Dict[int, Tuple[int, int, int]] = {}
        self.valid_bytes = 0

    def start(self, settings: Dict[str, Any], resume: bool) -> int:
        """Prepare the folder; returns how many finished frames it holds (see :meth:`done`)."""
        if self.out.exists():
            raise ResumeError(f'output {self.out} exists already; remove it or choose another --out')
        if self.root.exists():
            if not resume:
                raise ResumeError(f'{self.root} holds an interrupted run: add --resume to continue it, or '
                                  'remove that folder to start again')
            self._check_settings(settings)
            self._index, self.valid_bytes = scan_records(self.frames_path)
            if self.bag.exists():
                shutil.rmtree(self.bag)  # a bag left by a crash is not readable: rebuilt from the records
        else:
            self.root.mkdir(parents=True)
        atomic_write_text(self.run_path, json.dumps(settings, indent=1, sort_keys=True, ensure_ascii=False))
        # drop a torn tail so that new records follow the last complete one
        with open(self.frames_path, 'ab') as f:
            f.truncate(self.valid_bytes)
        self._frames_file = open(self.frames_path, 'ab')
        return len(self._index)

    def done(self, frame: int, timestamp: int) -> Optional[Dict[str, bytes]]:
        """The stored outputs of ``frame`` if an earlier run finished it (same bag timestamp), else None."""
        entry = self._index.get(frame)
        if entry is None or entry[0] != timestamp:
            return None
        return read_record(self.frames_path, entry[1], entry[2])[2]

    def _check_settings(self, settings: Dict[str, Any]) -> None:
        try:
            old = json.loads(self.run_path.read_text(encoding='utf-8'))  # as atomic_write_text wrote it
        except (OSError, ValueError):
            raise ResumeError(f'cannot read {self.run_path}; remove {self.root} to start again') from None
        new = json.loads(json.dumps(settings))  # same normalisation as what is stored
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ResumeError(f'{self.root} was made with other settings ({", ".join(diff)} differ); '
                              f'remove it or run with the same settings')

    def append(self, index: int, timestamp: int, items: Mapping[str, bytes]) -> None:
        """Store one finished frame (flushed, so a crash right after keeps it)."""
        assert self._frames_file is not None
        self._frames_file.write(encode_record(index, timestamp, items))
        self._frames_file.flush()

    def finish(self) -> Path:
        """Move the finished bag to ``OUT`` and remove the work folder."""
        self.close()
        os.replace(self.bag, self.out)
        shutil.rmtree(self.root, ignore_errors=True)
        return self.out

    def close(self) -> None:
        if self._frames_file is not None:
            self._frames_file.close()
            self._frames_file = None
