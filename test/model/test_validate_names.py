"""The engine's own name check (used by segment_image, evaluate and the node): Unicode look-alikes are one class."""
import unicodedata

import pytest

from talk2dino_ros.errors import InputError
from talk2dino_ros.model.segmenter import validate_names


@pytest.mark.parametrize('names, fragment', [
    ([unicodedata.normalize('NFC', 'café'), unicodedata.normalize('NFD', 'café')], 'duplicate'),
    (['cat', '\uff43\uff41\uff54'], 'duplicate'),
    (['Cat', 'cat'], 'duplicate'),
    (['\u200b'], 'invisible format character U\\+200B'),
    (['\u0301'], 'no letter or digit'),
    (['\u202etac'], 'bidi control character U\\+202E'),
])
def test_look_alikes_and_invisible_names_are_refused(names, fragment):
    with pytest.raises(InputError, match=fragment):
        validate_names(names)


def test_log_safe_message_names_both_spellings():
    with pytest.raises(InputError) as info:
        validate_names(['cat', '\uff43\uff41\uff54'])
    assert info.value.args[0].isascii() and '(same as cat)' in info.value.args[0]


def test_distinct_names_pass_unchanged():
    names = ('door', 'Zürich tram', 'e\u0301', '猫', '🚲')
    assert validate_names(list(names)) == names
