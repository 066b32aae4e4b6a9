"""What counts as one usable class name, shared by the engine, the tokenizer and the node.

* :func:`clip_text` is the text the CLIP tokenizer actually encodes for a name: mojibake repaired
  (ftfy), HTML entities decoded twice, whitespace collapsed, lower-cased. The tokenizer in
  :mod:`talk2dino_ros.model.text` runs exactly this function, so names are judged on what is encoded.
* Two names are the same class when their :func:`name_key` is equal: :func:`clip_text` followed by
  NFKC normalisation (``café`` composed or decomposed, full-width ``ｃａｔ``) and case folding. So
  ``cat`` and ``&#99;at`` (identical tokens) are one class, and ``&#98;ackground`` is the reserved
  background name.
* :func:`name_problem` refuses names that would be invisible or misleading in logs and legends:
  control, surrogate, line/paragraph separator and format characters (zero-width space, the bidi
  overrides and isolates), and names with nothing visible to encode (no letter, digit or pictograph,
  e.g. a lone combining accent or only punctuation), in the name as written and in its
  :func:`clip_text` (``&#8238;cat`` hides a right-to-left override behind an entity).
"""
from __future__ import annotations

import functools
import html
import unicodedata
from typing import Optional

import ftfy  # the CLIP tokenizer's own mojibake repair (a dependency of open_clip)

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


@functools.lru_cache(maxsize=8192)
def clip_text(text: str) -> str:
    """The text CLIP's tokenizer encodes: ftfy repair, HTML unescaped twice, whitespace collapsed, lower case.

    The same steps, in the same order, as open_clip's default ("lower") cleaning; the tokenizer of
    this package calls this function instead of its own copy (a test pins them to equal tokens).
    Cached: vocabularies repeat their names, and every name is checked, keyed and tokenized.
    """
    # printable ASCII without '&' is left as it is by ftfy and html.unescape (nothing to repair or
    # decode): skip the two passes, which dominate the cost of a large vocabulary
    if not (text.isascii() and text.isprintable() and '&' not in text):
        text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return ' '.join(text.split()).lower()


def name_key(name: str) -> str:
    """The comparison key of a class name: its :func:`clip_text`, NFKC, case folded, NFKC again.

    NFKC and folding on top of the tokenizer's text merge spellings that encode (nearly) alike; the
    second NFKC because folding can denormalise.
    """
    return unicodedata.normalize('NFKC', unicodedata.normalize('NFKC', clip_text(name)).casefold())


def is_background(name: str) -> bool:
    """True for every spelling of the reserved background name (``Background``, full-width, ...)."""
    return name_key(name) == BACKGROUND


def name_problem(name: str) -> Optional[str]:
    """Why ``name`` cannot be a class name (None when it can). Whitespace is the caller's business.

    Checked on the name as written (what logs and legends show) and on its :func:`clip_text` (what
    the text tower reads).
    """
    problem = _text_problem(name)
    if problem is None:
        decoded = clip_text(name)
        problem = _text_problem(decoded)
        if problem is not None:
            problem = f'{problem} in the text the CLIP tokenizer reads ({ascii(decoded)[:60]})'
    return problem


def _text_problem(name: str) -> Optional[str]:
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
