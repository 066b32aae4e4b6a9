"""Parse and validate a user vocabulary (topic string, parameter list or service request).

Rules (the node documents them in its README table):
* A string is split on commas and line breaks; a list is taken item by item (items are not split, so a
  service caller may use a comma inside a name).
* Each name is stripped and runs of whitespace inside it become one space.
* Rejected, with a reason: empty/whitespace-only names, names with control characters, names longer than
  ``max_chars`` characters, the reserved name 'background' (label 0 is always the background), and
  duplicates. Duplicates are compared case-insensitively (``str.casefold``) because the CLIP tokenizer
  lower-cases its input: 'Cat' and 'cat' would get the same embedding. The first spelling wins.
* At most ``max_names`` names are accepted; the rest are rejected as "too many names".
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Iterable, List, Sequence, Tuple, Union

BACKGROUND = "background"  # same reserved name as talk2dino_ros.model.types.BACKGROUND (kept torch-free here)

#: longest accepted class name; CLIP's context is 77 tokens, ~200 characters is well inside it for text
MAX_NAME_CHARS = 200
#: most names in one vocabulary (labels are mono16 above 255 classes, so this is not a format limit)
MAX_NAMES = 2048
# Unicode categories that are never part of a class name: control, surrogate, line/paragraph separator
_FORBIDDEN_CATEGORIES = {'Cc', 'Cs', 'Zl', 'Zp'}


@dataclass(frozen=True)
class Rejection:
    """A name that was ignored and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class ParsedVocabulary:
    """Outcome of :func:`parse_vocabulary`: the names to use and the ones ignored, in input order."""

    accepted: Tuple[str, ...]
    rejected: Tuple[Rejection, ...]

    def summary(self) -> str:
        """One line for logs / the service answer, e.g. "3 accepted; rejected: '' (empty)"."""
        text = f'{len(self.accepted)} accepted'
        if self.rejected:
            shown = '; '.join(f'{_short(r.name)} ({r.reason})' for r in self.rejected[:10])
            more = f'; ... and {len(self.rejected) - 10} more' if len(self.rejected) > 10 else ''
            text += f'; {len(self.rejected)} rejected: {shown}{more}'
        return text


def _short(name: str, limit: int = 40) -> str:
    """repr of a name, cut so that a 100 kB name does not flood the log."""
    return repr(name if len(name) <= limit else name[:limit] + '...')


def split_vocabulary(text: str) -> List[str]:
    """Split a topic/parameter string on commas and line breaks (no validation)."""
    return text.replace('\r\n', '\n').replace('\r', '\n').replace('\n', ',').split(',')


def normalise_name(raw: str) -> str:
    """Strip and collapse whitespace runs (spaces, tabs, ...) to single spaces."""
    return ' '.join(raw.split())


def _bad_character(name: str) -> str:
    for ch in name:
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES:
            return f'U+{ord(ch):04X}'
    return ''


def parse_vocabulary(source: Union[str, Iterable[str]], max_chars: int = MAX_NAME_CHARS,
                     max_names: int = MAX_NAMES) -> ParsedVocabulary:
    """Validate a vocabulary given as one string (comma/newline separated) or a sequence of names."""
    raw_names: Sequence = split_vocabulary(source) if isinstance(source, str) else list(source)
    accepted: List[str] = []
    rejected: List[Rejection] = []
    seen = set()
    for raw in raw_names:
        if not isinstance(raw, str):
            rejected.append(Rejection(repr(raw), 'not a string'))
            continue
        name = normalise_name(raw)
        if not name:
            rejected.append(Rejection(raw, 'empty'))
            continue
        bad = _bad_character(name)
        if bad:
            rejected.append(Rejection(name, f'control character {bad}'))
            continue
        if len(name) > max_chars:
            rejected.append(Rejection(name, f'longer than {max_chars} characters ({len(name)})'))
            continue
        key = name.casefold()
        if key == BACKGROUND:
            rejected.append(Rejection(name, "reserved: 'background' is always class 0"))
            continue
        if key in seen:
            rejected.append(Rejection(name, 'duplicate'))
            continue
        if len(accepted) >= max_names:
            rejected.append(Rejection(name, f'too many names (limit {max_names})'))
            continue
        seen.add(key)
        accepted.append(name)
    return ParsedVocabulary(tuple(accepted), tuple(rejected))
