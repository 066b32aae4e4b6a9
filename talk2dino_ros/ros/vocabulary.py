"""Parse and validate a user vocabulary (topic string, parameter list or service request).

Rules (the node documents them in its README table):
* A string is split on commas and line breaks; a list is taken item by item (items are not split, so a
  service caller may use a comma inside a name).
* Each name is stripped and runs of whitespace inside it become one space.
* Rejected, with a reason: empty/whitespace-only names, names with control, format or bidi-control
  characters or without a letter or digit (:func:`talk2dino_ros.class_names.name_problem`), names longer
  than ``max_chars`` characters, the reserved name 'background' in any spelling (label 0 is always the
  background), and duplicates. Duplicates are compared after NFKC normalisation and case folding
  (:func:`talk2dino_ros.class_names.name_key`) because the CLIP tokenizer lower-cases its input: 'Cat',
  'cat' and full-width 'ｃａｔ' would get the same embedding. The first spelling wins.
* At most ``max_names`` names are accepted; the rest are rejected as "too many names".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Sequence, Tuple, Union

from talk2dino_ros.class_names import BACKGROUND, is_background, name_key, name_problem
from talk2dino_ros.contract.parameters import DEFAULT_MAX_CLASSES, MAX_NAMES  # noqa: F401  (the table's limits)

#: longest accepted class name; CLIP's context is 77 tokens, ~200 characters is well inside it for text
MAX_NAME_CHARS = 200


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
        if len(name) > max_chars:
            rejected.append(Rejection(name, f'longer than {max_chars} characters ({len(name)})'))
            continue
        problem = name_problem(name)
        if problem:
            rejected.append(Rejection(name, problem))
            continue
        if is_background(name):
            rejected.append(Rejection(name, f"reserved: '{BACKGROUND}' is always class 0"))
            continue
        key = name_key(name)
        if key in seen:
            rejected.append(Rejection(name, 'duplicate'))
            continue
        if len(accepted) >= max_names:
            rejected.append(Rejection(name, f'too many names (limit {max_names})'))
            continue
        seen.add(key)
        accepted.append(name)
    return ParsedVocabulary(tuple(accepted), tuple(rejected))
