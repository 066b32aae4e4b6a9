"""Write output files atomically: into a temporary file in the target's folder, then ``os.replace``.

A reader (or a resumed run) therefore sees either the previous file or the complete new one, never a
truncated file left by a crash, a full disk or Ctrl-C. The temporary file sits in the same folder
(a rename is atomic only within one file system), is hidden (leading dot), keeps the target's suffix
(``cv2.imwrite`` and Pillow choose the format from it) and is removed when the writer fails.

* :func:`atomic_path` yields a temporary *path* for writers that take a file name
  (``cv2.imwrite``, ``PIL.Image.save``, ``torch.save``, ``ScriptModule.save``);
* :func:`atomic_open` yields an open file object (``json.dump``, ``np.savez``, streamed downloads);
* :func:`atomic_write_bytes` / :func:`atomic_write_text` for data already in memory.

With ``fsync=True`` (the default) the data is flushed to disk before the rename, so a power loss
cannot leave an empty file under the final name either; high-rate writers may turn it off.

As with any write-then-rename, the new file gets fresh permissions (0o666 minus the umask) and a
symbolic link at the target is replaced by the file rather than written through.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Any, Iterator, Optional, Union

PathLike = Union[str, os.PathLike]

#: File names longer than this are shortened in the temporary name (NAME_MAX is 255 on Linux).
_MAX_NAME = 200


def temporary_sibling(path: PathLike) -> Path:
    """A fresh, hidden, not yet existing path next to ``path`` that keeps its suffix."""
    target = Path(path)
    name = target.name[:_MAX_NAME]
    return target.with_name(f'.{name}.{secrets.token_hex(4)}.tmp{target.suffix}')


def _reserve(path: Path) -> Path:
    """Create an empty temporary sibling exclusively (mode 0o666 minus the umask, like ``open``)."""
    for _ in range(100):
        tmp = temporary_sibling(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # a random clash: draw another name
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f'no free temporary name next to {path}')  # pragma: no cover


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit it replaces ``path``.

    The writer must write the whole file to the yielded path. If the block raises, the temporary
    file is removed and ``path`` is left as it was. ``path``'s folder must exist.
    """
    target = Path(path)
    tmp = _reserve(target)
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = 'w', *, encoding: Optional[str] = None,
                newline: Optional[str] = None, fsync: bool = True) -> Iterator[IO[Any]]:
    """Like ``open(path, mode)`` for writing (``'w'`` or ``'wb'``), but atomic (see :func:`atomic_path`).

    Text mode defaults to UTF-8, whatever the locale says.
    """
    if mode not in ('w', 'wb', 'wt'):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w', 'wt' or 'wb', got {mode!r}")
    if 'b' not in mode and encoding is None:
        encoding = 'utf-8'
    with atomic_path(path, fsync=False) as tmp:
        with open(tmp, mode, encoding=encoding, newline=newline) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())


def atomic_write_bytes(path: PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, 'wb', fsync=fsync) as fh:
        fh.write(data)


def atomic_write_text(path: PathLike, text: str, *, encoding: str = 'utf-8', fsync: bool = True) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8 unless ``encoding`` says otherwise)."""
    with atomic_open(path, 'w', encoding=encoding, fsync=fsync) as fh:
        fh.write(text)


def atomic_torch_save(obj: Any, path: PathLike, *, fsync: bool = True) -> None:
    """``torch.save(obj, path)`` atomically (torch is imported here only: this module stays stdlib-only)."""
    import torch

    with atomic_path(path, fsync=fsync) as tmp:
        torch.save(obj, tmp)
