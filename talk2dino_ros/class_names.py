"""What counts as one usable class name, shared by the engine and the node (standard library only).

* Two names are the same class when their :func:`name_key` is equal: NFKC normalisation (``café``
  composed or decomposed, full-width ``ｃａｔ``) followed by case folding, because CLIP's tokenizer
  lower-cases its input and would give such spellings the same or nearly the same embedding.
* :func:`name_problem` refuses names that would be invisible or misleading in logs and legends:
  control, surrogate, line/paragraph separator and format characters (zero-width space, the bidi
  overrides and isolates), and names with nothing visible to encode (no letter, digit or pictograph,
  e.g. a lone combining accent or only punctuation).
"""
from __future__ import annotations

import unicodedata
from typing import Optional

#: the name of label 0 when the background class is on
BACKGROUND = 'background'

# never part of a class name: control, surrogate, line/paragraph separator (unassigned code points are
# allowed: emoji newer than Python's Unicode tables must not be refused)
_FORBIDDEN_CATEGORIES = {'Cc': 'control', 'Cs': 'surrogate', 'Zl': 'line separator',
                         'Zp': 'paragraph separator'}
# the explicit directional marks, embeddings, overrides and isolates (Unicode bidi algorithm, UAX #9)
_BIDI_CONTROLS = frozenset('\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069')
# zero-width (non-)joiners are format characters that Persian and Indic spellings and emoji sequences
# need; they are allowed inside a name that has something visible
_JOINERS = frozenset('\u200c\u200d')


def name_key(name: str) -> str:
    """The comparison key of a class name: NFKC, case folded, NFKC again (folding can denormalise)."""
    return unicodedata.normalize('NFKC', unicodedata.normalize('NFKC', name).casefold())


def is_background(name: str) -> bool:
    """True for every spelling of the reserved background name (``Background``, full-width, ...)."""
    return name_key(name) == BACKGROUND


def name_problem(name: str) -> Optional[str]:
    """Why ``name`` cannot be a class name (None when it can). Whitespace is the caller's business."""
    visible = False
    for ch in name:
        category = unicodedata.category(ch)
        if ch in _BIDI_CONTROLS:
            return f'bidi control character U+{ord(ch):04X}'
        if category in _FORBIDDEN_CATEGORIES:
            return f'{_FORBIDDEN_CATEGORIES[category]} character U+{ord(ch):04X}'
        if category == 'Cf' and ch not in _JOINERS:
            return f'invisible format character U+{ord(ch):04X}'
        # letters, digits and pictographs (emoji are So) are what the text tower can tell apart
        if category[0] in 'LN' or category == 'So':
            visible = True
    if not visible:
        return 'no letter or digit'
    return None
