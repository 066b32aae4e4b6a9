"""Vocabulary parsing: splitting, normalisation, every rejection reason, and random input."""
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from talk2dino_ros.ros.vocabulary import (
    MAX_NAME_CHARS, ParsedVocabulary, parse_vocabulary, split_vocabulary)


def reasons(parsed: ParsedVocabulary):
    return [(r.name, r.reason) for r in parsed.rejected]


def test_string_is_split_on_commas_and_line_breaks():
    parsed = parse_vocabulary('cat, dog\nred car\r\ntree\rsky,')
    assert parsed.accepted == ('cat', 'dog', 'red car', 'tree', 'sky')
    assert reasons(parsed) == [('', 'empty')]


def test_list_items_are_not_split_and_whitespace_is_collapsed():
    parsed = parse_vocabulary(['salt, pepper', '  a \t  big   dog ', 'x'])
    assert parsed.accepted == ('salt, pepper', 'a big dog', 'x')
    assert parsed.rejected == ()


def test_duplicates_are_case_insensitive_first_spelling_wins():
    parsed = parse_vocabulary(['Cat', 'dog', 'cat', 'CAT ', 'Straße', 'STRASSE'])
    assert parsed.accepted == ('Cat', 'dog', 'Straße')
    assert reasons(parsed) == [('cat', 'duplicate'), ('CAT', 'duplicate'), ('STRASSE', 'duplicate')]


def test_empty_whitespace_control_long_reserved_and_non_string():
    long_name = 'a' * (MAX_NAME_CHARS + 1)
    parsed = parse_vocabulary(['', '   ', 'bad\x00name', 'bell\x07', long_name, 'Background', 7, 'ok'])
    assert parsed.accepted == ('ok',)
    got = reasons(parsed)
    assert got[0][1] == 'empty' and got[1][1] == 'empty'
    assert got[2] == ('bad\x00name', 'control character U+0000')
    assert got[3] == ('bell\x07', 'control character U+0007')
    assert got[4][1] == f'longer than {MAX_NAME_CHARS} characters ({MAX_NAME_CHARS + 1})'
    assert 'reserved' in got[5][1]
    assert got[6] == ('7', 'not a string')


def test_name_at_the_limit_is_accepted():
    assert parse_vocabulary(['b' * MAX_NAME_CHARS]).accepted == ('b' * MAX_NAME_CHARS,)


def test_unicode_names_are_kept():
    parsed = parse_vocabulary('coche rojo, 猫, Ελιά, 🚲, Zürich tram, e\u0301')
    assert parsed.accepted == ('coche rojo', '猫', 'Ελιά', '🚲', 'Zürich tram', 'e\u0301')


def test_too_many_names():
    parsed = parse_vocabulary([f'class {i}' for i in range(12)], max_names=10)
    assert len(parsed.accepted) == 10
    assert reasons(parsed) == [('class 10', 'too many names (limit 10)'), ('class 11', 'too many names (limit 10)')]


def test_summary_is_one_bounded_line():
    parsed = parse_vocabulary(['x' * 100_000] + [''] * 30 + ['cat'])
    text = parsed.summary()
    assert '\n' not in text and len(text) < 1000
    assert text.startswith('1 accepted; 31 rejected:') and '... and 21 more' in text


def test_split_keeps_empty_pieces_for_reporting():
    assert split_vocabulary('a,,b\n') == ['a', '', 'b', '']


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=40) | st.text(max_size=400))
def test_property_accepted_names_are_clean_unique_and_accounted_for(source):
    parsed = parse_vocabulary(source)
    pieces = split_vocabulary(source) if isinstance(source, str) else source
    assert len(parsed.accepted) + len(parsed.rejected) == len(pieces)
    keys = [n.casefold() for n in parsed.accepted]
    assert len(keys) == len(set(keys))
    for name in parsed.accepted:
        assert name and name == name.strip() and '  ' not in name
        assert len(name) <= MAX_NAME_CHARS
        assert not any(unicodedata.category(c) in ('Cc', 'Cs') for c in name)
        assert ',' not in name or not isinstance(source, str)
        assert name.casefold() != 'background'
    for rejection in parsed.rejected:
        assert rejection.reason


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 3000), st.integers(0, 5))
def test_property_very_long_lists_and_names(count, extra):
    names = [f'n{i}' for i in range(count)] + ['z' * (MAX_NAME_CHARS + 1 + extra * 1000)]
    parsed = parse_vocabulary(names)
    assert len(parsed.accepted) == min(count, 2048)
    assert parsed.rejected[-1].reason.startswith('longer than')


@pytest.mark.parametrize('text', ['', ' ', ',,,', '\n\n', ' , \t ,'])
def test_nothing_usable(text):
    parsed = parse_vocabulary(text)
    assert parsed.accepted == () and all(r.reason == 'empty' for r in parsed.rejected)


# ---------------------------------------------------------------- Unicode look-alikes and invisible names
def test_duplicates_are_compared_after_nfkc_and_case_folding():
    nfc = unicodedata.normalize('NFC', 'café')
    nfd = unicodedata.normalize('NFD', 'café')
    assert nfc != nfd
    parsed = parse_vocabulary([nfc, nfd, 'cat', '\uff43\uff41\uff54', 'ＣＡＴ', 'ﬁsh', 'fish'])
    assert parsed.accepted == (nfc, 'cat', 'ﬁsh')
    assert [r.reason for r in parsed.rejected] == ['duplicate'] * 4


def test_full_width_background_is_reserved():
    parsed = parse_vocabulary(['\uff42\uff41\uff43\uff4b\uff47\uff52\uff4f\uff55\uff4e\uff44', 'BACKGROUND', 'door'])
    assert parsed.accepted == ('door',)
    assert all('reserved' in r.reason for r in parsed.rejected)


@pytest.mark.parametrize('name, reason', [
    ('\u200b', 'invisible format character U+200B'),          # zero-width space alone
    ('cat\u200b', 'invisible format character U+200B'),       # ... or hidden inside a name
    ('\u0301', 'no letter or digit'),                         # a lone combining accent
    ('...', 'no letter or digit'),
    ('\u202egod', 'bidi control character U+202E'),           # right-to-left override
    ('door\u2066x\u2069', 'bidi control character U+2066'),   # isolates
    ('a\u200fb', 'bidi control character U+200F'),            # right-to-left mark
    ('\ufeffcat', 'invisible format character U+FEFF'),       # byte order mark
])
def test_invisible_and_bidi_names_are_refused_with_a_reason(name, reason):
    parsed = parse_vocabulary([name, 'ok'])
    assert parsed.accepted == ('ok',)
    assert [r.reason for r in parsed.rejected] == [reason]


def test_visible_names_with_joiners_digits_and_emoji_are_kept():
    names = ['\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645', 'R2D2', '42', '👨\u200d🔧', '🚲']
    assert parse_vocabulary(names).accepted == tuple(names)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=30))
def test_property_accepted_names_are_unique_by_key_and_visible(source):
    from talk2dino_ros.class_names import name_key, name_problem
    parsed = parse_vocabulary(source)
    keys = [name_key(n) for n in parsed.accepted]
    assert len(keys) == len(set(keys))
    assert all(name_problem(n) is None and name_key(n) != 'background' for n in parsed.accepted)
