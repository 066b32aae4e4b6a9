"""Display colours of the classes (overlay, ClassInfo legend, RViz).

Label id 0 is the background (dark grey); vocabulary class ``i`` (0-based) has label id ``i + 1``.
The default palette starts with 20 hand-picked, well separated colours and continues with golden-ratio
hue steps, so any number of classes gets a colour and neighbouring ids never look alike.
Users override colours with the ``colors`` parameter: entries ``'#RRGGBB'`` apply to classes 1, 2, ...
in order, entries ``'name=#RRGGBB'`` to the class of that name (case-insensitive), wherever it is.
"""
from __future__ import annotations

import colorsys
import re
from typing import Dict, List, Sequence, Tuple

import numpy as np

BACKGROUND_COLOR = (40, 40, 40)
_BASE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
]
_HEX = re.compile(r'^#?([0-9a-fA-F]{6})$')


class ColorSpecError(ValueError):
    """A ``colors`` parameter entry that is not '#RRGGBB' or 'name=#RRGGBB'."""


def parse_hex_color(text: str) -> Tuple[int, int, int]:
    """'#RRGGBB' (or 'RRGGBB') -> (r, g, b) in 0..255."""
    match = _HEX.match(text.strip())
    if match is None:
        raise ColorSpecError(f'colour {text!r} is not #RRGGBB')
    value = int(match.group(1), 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def parse_color_overrides(entries: Sequence[str]) -> Tuple[List[Tuple[int, int, int]], Dict[str, Tuple[int, int, int]]]:
    """Split the ``colors`` parameter into positional colours and per-name colours (raises ColorSpecError)."""
    positional: List[Tuple[int, int, int]] = []
    by_name: Dict[str, Tuple[int, int, int]] = {}
    for entry in entries:
        if '=' in entry:
            name, _, colour = entry.rpartition('=')
            if not name.strip():
                raise ColorSpecError(f'colour entry {entry!r} has no class name before "="')
            by_name[' '.join(name.split()).casefold()] = parse_hex_color(colour)
        else:
            positional.append(parse_hex_color(entry))
    return positional, by_name


def palette_color(class_id: int) -> Tuple[int, int, int]:
    """Default colour of a label id (0 = background)."""
    if class_id == 0:
        return BACKGROUND_COLOR
    index = class_id - 1
    if index < len(_BASE):
        return _BASE[index]
    hue = (index * 0.618033988749895) % 1.0
    sat = 0.65 + 0.3 * ((index // 7) % 2)
    val = 0.95 - 0.25 * ((index // 3) % 2)
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def class_colors(names: Sequence[str], overrides: Sequence[str] = ()) -> np.ndarray:
    """uint8 [len(names) + 1, 3]: row 0 the background, row i + 1 the colour of ``names[i]``."""
    positional, by_name = parse_color_overrides(overrides)
    colours = np.empty((len(names) + 1, 3), np.uint8)
    colours[0] = BACKGROUND_COLOR
    for i, name in enumerate(names):
        key = ' '.join(name.split()).casefold()
        if key in by_name:
            colours[i + 1] = by_name[key]
        elif i < len(positional):
            colours[i + 1] = positional[i]
        else:
            colours[i + 1] = palette_color(i + 1)
    return colours
