"""Read the tensors of a TorchScript archive as data: nothing in the file is ever run.

``torch.jit.load`` compiles the archive's ``code/`` tree and runs its ``__setstate__`` methods, so a
crafted file executes whatever it carries. The OpenAI CLIP release (``ViT-B-16.pt``) is such an
archive; its weights are plain tensors in ``data.pkl`` + ``data/<key>``. This module reads exactly
that and gives the ``state_dict()`` that ``torch.jit.load(path).state_dict()`` would give:

* ``data.pkl`` is unpickled with an allow-list: tensor rebuilds, storage types, ``OrderedDict`` and
  TorchScript's list constructors. Every ``__torch__.*`` class becomes an inert record of its
  attribute dict. Any other global (``os.system``, ``builtins.eval``, ...) is refused.
* a class whose state is not a plain attribute dict has a custom ``__setstate__``: refused, since
  reading it would need its code.
* which attributes are parameters and buffers is read from the ``__parameters__`` /
  ``__buffers__`` lines of the class declarations in ``code/`` (text only, never compiled), by a
  line scanner that is linear in the text (no regular expression over the file's contents).

It also reads within budgets, so a small crafted file cannot cost much time or memory: the zip
records are checked first (:mod:`talk2dino_ros.model.zip_records`: tensor data stored uncompressed,
no record inflating past its budget, no overlapping records), ``data.pkl``, ``byteorder`` and the
code text each have a size limit, a storage must be exactly the size its tensor metadata declares,
and the module tree is walked with a bound on its depth and on the number of objects visited (a
module graph whose nodes are shared is a DAG that would otherwise unfold exponentially).
"""
from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import torch

from talk2dino_ros.errors import CheckpointError
from talk2dino_ros.model.zip_records import check_records, read_record

#: storage type name (as pickled: ``torch FloatStorage``) -> dtype
_STORAGE_DTYPES = {
    'DoubleStorage': torch.float64, 'FloatStorage': torch.float32, 'HalfStorage': torch.float16,
    'BFloat16Storage': torch.bfloat16, 'LongStorage': torch.int64, 'IntStorage': torch.int32,
    'ShortStorage': torch.int16, 'CharStorage': torch.int8, 'ByteStorage': torch.uint8,
    'BoolStorage': torch.bool,
}
#: the state pickle of CLIP ViT-B/16 is ~45 kB; an unpickled object costs at most ~60x its opcode,
#: so this bounds unpickling to ~120 MB whatever the pickle builds
MAX_DATA_PKL = 2 << 20
#: the class declarations of CLIP ViT-B/16 are ~130 kB of text in ~270 files
MAX_CODE_BYTES = 8 << 20
#: modules + attributes visited while flattening (CLIP ViT-B/16: ~2,000)
MAX_OBJECTS = 100_000
MAX_DEPTH = 64
MAX_TENSOR_DIMS = 16
_MEMBER_LISTS = ('__parameters__', '__buffers__')


class _StorageType:
    """What a pickled ``torch XStorage`` global stands for: only its dtype."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class ScriptObject:
    """An inert stand-in for one ``__torch__.*`` object: its class name and attribute dict."""

    def __init__(self, qualname: str):
        self.qualname = qualname
        self.attributes: Dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise CheckpointError(f'class {self.qualname} restores itself with custom code (__setstate__), '
                                  'which is never run: this is not a plain weights archive')
        self.attributes = dict(state)


def _script_class(qualname: str) -> type:
    # NEWOBJ calls cls.__new__(cls); a fresh subclass per name lets __new__ record which class it was
    return type('ScriptObject', (ScriptObject,), {'__new__': lambda cls, *a, **k: _new_record(qualname),
                                                  '__init__': lambda self, *a, **k: None})


def _new_record(qualname: str) -> ScriptObject:
    obj = object.__new__(ScriptObject)
    ScriptObject.__init__(obj, qualname)
    return obj


def _rebuild_tensor(storage: torch.Tensor, offset: int, size, stride, requires_grad=False,
                    backward_hooks=None, metadata=None) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2`` over a flat storage tensor, without calling into the file."""
    if not isinstance(storage, torch.Tensor):
        raise CheckpointError('a tensor in the archive has no storage')
    size, stride = _dims(size, 'size'), _dims(stride, 'stride')
    if len(size) != len(stride) or not _is_count(offset):
        raise CheckpointError(f'a tensor in the archive has a malformed layout (size {size[:4]}, '
                              f'stride {stride[:4]}, offset {str(offset)[:20]})')
    try:
        return torch.as_strided(storage, tuple(size), tuple(stride), int(offset))
    except RuntimeError as exc:
        raise CheckpointError(f'a tensor in the archive does not fit its storage ({exc})') from None


def _is_count(value: Any) -> bool:
    # bool is an int; an unbounded or float "size" (inf) must never reach arithmetic or torch
    return type(value) is int and 0 <= value < (1 << 62)


def _dims(values: Any, what: str) -> Tuple[int, ...]:
    if not isinstance(values, (tuple, list)) or len(values) > MAX_TENSOR_DIMS \
            or not all(_is_count(v) for v in values):
        raise CheckpointError(f'a tensor in the archive has a malformed {what} ({str(values)[:60]})')
    return tuple(values)


def _as_list(values) -> list:
    return list(values)


def _restore_type_tag(value, type_str=None):
    return value


#: the only globals data.pkl may name (module, name) -> a harmless local implementation
_ALLOWED: Dict[Tuple[str, str], Callable] = {
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
    ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
    ('collections', 'OrderedDict'): OrderedDict,
    ('torch.jit._pickle', 'build_intlist'): _as_list,
    ('torch.jit._pickle', 'build_doublelist'): _as_list,
    ('torch.jit._pickle', 'build_boollist'): _as_list,
    ('torch.jit._pickle', 'build_tensorlist'): _as_list,
    ('torch.jit._pickle', 'restore_type_tag'): _restore_type_tag,
}


class _ArchiveUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, read_storage: Callable[[str, torch.dtype, int], torch.Tensor]):
        super().__init__(io.BytesIO(data))
        self._read_storage = read_storage
        self._storages: Dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str):
        if module.startswith('__torch__'):
            return _script_class(f'{module}.{name}')
        if module == 'torch' and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise CheckpointError(f'refuses {module}.{name}: only tensors and module attributes are read from '
                              'a TorchScript archive (its code is never run)')

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == 'storage'
                and isinstance(pid[1], _StorageType)):
            raise CheckpointError(f'unexpected persistent id {str(pid)[:80]}')
        _, kind, key, _location, numel = pid
        if not isinstance(key, str) or not _is_count(numel):
            raise CheckpointError(f'malformed storage reference (key {str(key)[:20]}, size {str(numel)[:20]})')
        if key not in self._storages:
            self._storages[key] = self._read_storage(key, kind.dtype, numel)
        return self._storages[key]


def _member_names(listing: str, where: str) -> List[str]:
    """``["weight", "bias", ]`` -> ['weight', 'bias'] (plain quoted names only)."""
    listing = listing.strip()
    if not (listing.startswith('[') and listing.endswith(']')):
        raise CheckpointError(f'unreadable member list of class {where}')
    names = []
    for item in listing[1:-1].split(','):
        item = item.strip()
        if not item:
            continue
        if len(item) < 2 or item[0] != item[-1] or item[0] not in '"\'' or '"' in item[1:-1] or "'" in item[1:-1]:
            raise CheckpointError(f'unreadable member list of class {where}')
        names.append(item[1:-1])
    return names


def _scan_declarations(text: str, module: str, out: Dict[str, Tuple[List[str], List[str]]]) -> None:
    """Add ``module.Class -> (parameters, buffers)`` for each ``class`` block of one code file.

    One pass over the lines; a member list may continue over several lines up to its ``]``.
    """
    cls = ''
    members: Dict[str, List[str]] = {}
    pending, parts = '', []  # a member list still open at the end of a line
    for line in text.split('\n'):
        if pending:
            parts.append(line)
            if ']' in line:
                members[pending] = _member_names(' '.join(parts), f'{module}.{cls}')
                pending, parts = '', []
            continue
        if line.startswith('class '):
            if cls:
                out[f'{module}.{cls}'] = (members.get('__parameters__', []), members.get('__buffers__', []))
            cls, members = line[len('class '):].split('(', 1)[0].strip(), {}
            continue
        stripped = line.strip()
        head, eq, rest = stripped.partition('=')
        if cls and eq and line[:1].isspace() and head.strip() in _MEMBER_LISTS:
            if ']' in rest:
                members[head.strip()] = _member_names(rest, f'{module}.{cls}')
            else:
                pending, parts = head.strip(), [rest]
    if pending:
        raise CheckpointError(f'unterminated {pending} of class {module}.{cls}')
    if cls:
        out[f'{module}.{cls}'] = (members.get('__parameters__', []), members.get('__buffers__', []))


def _declared_members(zf: zipfile.ZipFile, root: str) -> Dict[str, Tuple[List[str], List[str]]]:
    """qualified class name -> (parameters, buffers), read as text from the code/ declarations."""
    out: Dict[str, Tuple[List[str], List[str]]] = {}
    prefix = f'{root}code/'
    budget = MAX_CODE_BYTES
    for info in zf.infolist():
        name = info.filename
        if not (name.startswith(prefix) and name.endswith('.py')):
            continue
        data = read_record(zf, name, budget, f'the code text (more than {MAX_CODE_BYTES} bytes; {name[:80]})')
        budget -= len(data)
        module = name[len(prefix):-3].replace('/', '.')
        _scan_declarations(data.decode('utf-8', errors='replace'), module, out)
    return out


def _archive_root(zf: zipfile.ZipFile) -> str:
    names = [n for n in zf.namelist() if n.endswith('data.pkl') and n.count('/') <= 1]
    if len(names) != 1:
        raise CheckpointError('not a TorchScript archive (no single data.pkl)')
    return names[0][:-len('data.pkl')]


class _Budget:
    """How many more objects the walk over the module tree may visit."""

    def __init__(self, objects: int):
        self.left = objects

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise CheckpointError(f'the module tree has more than {MAX_OBJECTS} objects (a module graph that '
                                  'shares its nodes unfolds exponentially): not a plain weights archive')


def _flatten(obj: ScriptObject, members, prefix: str, out: Dict[str, torch.Tensor], budget: _Budget,
             depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise CheckpointError(f'module nesting deeper than {MAX_DEPTH} levels')
    if obj.qualname not in members:
        raise CheckpointError(f'class {obj.qualname[:120]} has no declaration in the archive')
    budget.spend(1 + len(obj.attributes))
    params, buffers = members[obj.qualname]
    tensors = set(params) | set(buffers)
    for name, value in obj.attributes.items():
        if isinstance(value, ScriptObject):
            _flatten(value, members, f'{prefix}{name}.', out, budget, depth + 1)
        elif name in tensors and isinstance(value, torch.Tensor):
            out[prefix + name] = value


def read_torchscript_state_dict(path: Path | str) -> Dict[str, torch.Tensor]:
    """The parameters and buffers of a TorchScript archive, by dotted name, without running anything.

    Raises :class:`CheckpointError` for anything that is not a plain module tree of tensors.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            root = _archive_root(zf)
            check_records(zf, path, must_be_stored=lambda name: name.startswith(f'{root}data/'))
            byteorder = 'little'
            if f'{root}byteorder' in zf.namelist():
                byteorder = read_record(zf, f'{root}byteorder', 16, 'the byteorder record').decode().strip()
            if byteorder != 'little':
                raise CheckpointError(f'{byteorder[:16]}-endian archives are not supported')
            pickled = read_record(zf, f'{root}data.pkl', MAX_DATA_PKL, 'data.pkl')

            def read_storage(key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
                if not (0 < len(key) <= 64 and key.isascii() and key.replace('_', '').isalnum()):
                    raise CheckpointError(f'bad storage key {key[:64]!r}')
                member = f'{root}data/{key}'
                itemsize = torch.empty((), dtype=dtype).element_size()
                # the record must be exactly what the tensor metadata declares (checked before reading)
                try:
                    size = zf.getinfo(member).file_size
                except KeyError:
                    raise CheckpointError(f'storage data/{key} is missing') from None
                if size != numel * itemsize:
                    raise CheckpointError(f'storage data/{key} has {size} bytes, expected {numel * itemsize}')
                raw = bytearray(read_record(zf, member, size, f'storage data/{key}'))
                return torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)

            top = _ArchiveUnpickler(pickled, read_storage).load()
            members = _declared_members(zf, root)
        if not isinstance(top, ScriptObject):
            raise CheckpointError(f'the archive holds a {type(top).__name__}, not a module')
        out: Dict[str, torch.Tensor] = OrderedDict()
        _flatten(top, members, '', out, _Budget(MAX_OBJECTS))
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001  every failure to interpret these untrusted bytes is a bad file
        # (zlib.error from a corrupt compressed record, OverflowError, MemoryError, RecursionError, ...)
        text = str(exc).strip()
        raise CheckpointError(f'corrupt TorchScript archive ({type(exc).__name__}: '
                              f'{text.splitlines()[0][:200] if text else ""})') from None
    return out


def is_torchscript_archive(path: Path | str) -> bool:
    """True when ``path`` is a zip with a TorchScript ``code/`` tree or ``constants.pkl``."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as zf:
            return any(n.split('/', 1)[-1].startswith('code/') or n.endswith('/constants.pkl')
                       for n in zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
