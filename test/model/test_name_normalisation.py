"""Names are compared on the text the CLIP tokenizer encodes (HTML unescape, ftfy, NFKC, case folding)."""
import open_clip
import pytest
import torch

from talk2dino_ros.class_names import clip_text, is_background, name_key, name_problem
from talk2dino_ros.errors import InputError
from talk2dino_ros.model.segmenter import validate_names
from talk2dino_ros.model.text import tokenize
from talk2dino_ros.ros.vocabulary import parse_vocabulary

TRICKY = ['cat', '&#99;at', '&amp;#99;at', '&amp;amp;amp;', 'Ã©cole', '\u201ccat\u201d', 'ﬁsh', 'ＣＡＴ',
          '  a \t big   dog ', '&#98;ackground', 'Zürich', 'e\u0301', '猫', '🚲', '&lt;b&gt;', 'R&amp;D',
          'a\r\nb', 'x\x1b[31my', 'tab\tbed', 'nul\x00l', 'del\x7f', ' Mixed CASE  ', "it's", '<b>&amp;</b>']


def test_tokenizer_reads_exactly_what_open_clip_reads():
    prompts = [f'a photo of a {n}.' for n in TRICKY] + TRICKY
    assert torch.equal(tokenize(prompts), open_clip.tokenize(prompts, context_length=77))


@pytest.mark.parametrize('a, b', [('cat', '&#99;at'), ('cat', '&amp;#99;at'), ('école', 'Ã©cole'),
                                  ('"cat"', '\u201ccat\u201d'), ('big dog', 'big  dog')])
def test_names_with_identical_tokens_have_one_key(a, b):
    assert torch.equal(tokenize([a]), tokenize([b]))
    assert name_key(a) == name_key(b)


def test_engine_refuses_an_entity_spelled_duplicate():
    with pytest.raises(InputError, match='duplicate'):
        validate_names(['cat', '&#99;at'])


def test_node_vocabulary_drops_entity_duplicates_and_reserved_background():
    parsed = parse_vocabulary(['cat', '&#99;at', '&#98;ackground', 'B&#65;CKGROUND', 'door'])
    assert parsed.accepted == ('cat', 'door')
    assert [r.reason for r in parsed.rejected][0] == 'duplicate'
    assert all('reserved' in r.reason for r in parsed.rejected[1:])


@pytest.mark.parametrize('name', ['&#98;ackground', '&amp;#98;ackground', 'BACKGROUND', 'back&#103;round'])
def test_every_spelling_of_background_is_background(name):
    assert is_background(name) and clip_text(name) == 'background'


@pytest.mark.parametrize('name, fragment', [
    ('&#8238;cat', 'bidi control character U+202E'),   # an override hidden behind an entity
    ('&#8203;', 'invisible format character U+200B'),
    ('&amp;', 'no letter or digit'),                     # the tokenizer reads only '&'
])
def test_problems_hidden_behind_entities_are_found(name, fragment):
    problem = name_problem(name)
    assert problem is not None and fragment in problem and 'tokenizer' in problem
