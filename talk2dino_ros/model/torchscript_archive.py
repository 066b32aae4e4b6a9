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
  ``__buffers__`` lines of the class declarations in ``code/`` (text only, never compiled).
"""
from __future__ import annotations

import ast
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import torch

from talk2dino_ros.errors import CheckpointError

#: storage type name (as pickled: ``torch FloatStorage``) -> dtype
_STORAGE_DTYPES = {
    'DoubleStorage': torch.float64, 'FloatStorage': torch.float32, 'HalfStorage': torch.float16,
    'BFloat16Storage': torch.bfloat16, 'LongStorage': torch.int64, 'IntStorage': torch.int32,
    'ShortStorage': torch.int16, 'CharStorage': torch.int8, 'ByteStorage': torch.uint8,
    'BoolStorage': torch.bool,
}
_CLASS = re.compile(r'^class\s+(\w+)\s*\(', re.M)
_MEMBER_LIST = re.compile(r'^\s+(__parameters__|__buffers__)\s*=\s*(\[[^\]]*\])', re.M)
MAX_DATA_PKL = 64 << 20  # the state pickle of a big model is a few hundred kB


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
    try:
        return torch.as_strided(storage, tuple(size), tuple(stride), int(offset))
    except RuntimeError as exc:
        raise CheckpointError(f'a tensor in the archive does not fit its storage ({exc})') from None


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
        import io
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
        key = str(key)
        if key not in self._storages:
            self._storages[key] = self._read_storage(key, kind.dtype, int(numel))
        return self._storages[key]


def _declared_members(zf: zipfile.ZipFile, root: str) -> Dict[str, Tuple[List[str], List[str]]]:
    """qualified class name -> (parameters, buffers), read as text from the code/ declarations."""
    out: Dict[str, Tuple[List[str], List[str]]] = {}
    prefix = f'{root}code/'
    for name in zf.namelist():
        if not (name.startswith(prefix) and name.endswith('.py')):
            continue
        module = name[len(prefix):-3].replace('/', '.')
        text = zf.read(name).decode('utf-8', errors='replace')
        starts = [(m.start(), m.group(1)) for m in _CLASS.finditer(text)] + [(len(text), '')]
        for (begin, cls), (end, _) in zip(starts, starts[1:]):
            members: Dict[str, List[str]] = {'__parameters__': [], '__buffers__': []}
            for m in _MEMBER_LIST.finditer(text, begin, end):
                try:
                    members[m.group(1)] = [str(x) for x in ast.literal_eval(m.group(2))]
                except (ValueError, SyntaxError):
                    raise CheckpointError(f'unreadable {m.group(1)} of class {module}.{cls}') from None
            out[f'{module}.{cls}'] = (members['__parameters__'], members['__buffers__'])
    return out


def _archive_root(zf: zipfile.ZipFile) -> str:
    names = [n for n in zf.namelist() if n.endswith('data.pkl') and n.count('/') <= 1]
    if len(names) != 1:
        raise CheckpointError('not a TorchScript archive (no single data.pkl)')
    return names[0][:-len('data.pkl')]


def _flatten(obj: ScriptObject, members, prefix: str, out: Dict[str, torch.Tensor], depth: int = 0) -> None:
    if depth > 64:
        raise CheckpointError('module nesting deeper than 64 levels')
    if obj.qualname not in members:
        raise CheckpointError(f'class {obj.qualname} has no declaration in the archive')
    params, buffers = members[obj.qualname]
    tensors = set(params) | set(buffers)
    for name, value in obj.attributes.items():
        if isinstance(value, ScriptObject):
            _flatten(value, members, f'{prefix}{name}.', out, depth + 1)
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
            byteorder = zf.read(f'{root}byteorder').decode().strip() if f'{root}byteorder' in zf.namelist() \
                else 'little'
            if byteorder != 'little':
                raise CheckpointError(f'{byteorder}-endian archives are not supported')
            info = zf.getinfo(f'{root}data.pkl')
            if info.file_size > MAX_DATA_PKL:
                raise CheckpointError(f'data.pkl is {info.file_size} bytes, more than a weights archive holds')

            def read_storage(key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
                if not re.fullmatch(r'\w+', key):
                    raise CheckpointError(f'bad storage key {key!r}')
                member = f'{root}data/{key}'
                try:
                    size = zf.getinfo(member).file_size
                except KeyError:
                    raise CheckpointError(f'storage data/{key} is missing') from None
                itemsize = torch.empty((), dtype=dtype).element_size()
                if size != numel * itemsize:
                    raise CheckpointError(f'storage data/{key} has {size} bytes, expected {numel * itemsize}')
                raw = bytearray(zf.read(member))
                return torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)

            top = _ArchiveUnpickler(zf.read(f'{root}data.pkl'), read_storage).load()
            members = _declared_members(zf, root)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError,
            AttributeError, IndexError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f'corrupt TorchScript archive ({type(exc).__name__}: '
                              f'{str(exc).splitlines()[0][:200] if str(exc) else ""})') from None
    if not isinstance(top, ScriptObject):
        raise CheckpointError(f'the archive holds a {type(top).__name__}, not a module')
    out: Dict[str, torch.Tensor] = OrderedDict()
    _flatten(top, members, '', out)
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
