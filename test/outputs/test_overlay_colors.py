"""Class palette, colour overrides, the overlay and its legend."""
import numpy as np
import pytest

from talk2dino_ros.outputs.colors import (
    BACKGROUND_COLOR, ColorSpecError, class_colors, palette_color, parse_color_overrides, parse_hex_color)
from talk2dino_ros.outputs.overlay import ascii_label, draw_legend, legend_entries, make_overlay


def test_palette_is_distinct_and_never_the_background():
    colours = [palette_color(i) for i in range(1, 301)]
    assert len(set(colours)) == 300
    assert BACKGROUND_COLOR not in colours
    assert palette_color(0) == BACKGROUND_COLOR
    # neighbouring ids differ clearly
    for a, b in zip(colours, colours[1:]):
        assert sum(abs(x - y) for x, y in zip(a, b)) > 60


def test_hex_and_overrides():
    assert parse_hex_color('#FF8000') == (255, 128, 0)
    assert parse_hex_color('00ff00') == (0, 255, 0)
    for bad in ('#12345', 'red', '#GG0000', ''):
        with pytest.raises(ColorSpecError):
            parse_hex_color(bad)
    positional, by_name = parse_color_overrides(['#010203', 'Red  Car=#ff0000'])
    assert positional == [(1, 2, 3)] and by_name == {'red car': (255, 0, 0)}
    with pytest.raises(ColorSpecError, match='no class name'):
        parse_color_overrides(['=#ff0000'])


def test_class_colors_by_name_then_position_then_palette():
    colours = class_colors(['a', 'red car', 'c'], ['#0000ff', 'RED CAR=#ff0000'])
    assert colours.dtype == np.uint8 and colours.shape == (4, 3)
    assert colours[0].tolist() == list(BACKGROUND_COLOR)
    assert colours[1].tolist() == [0, 0, 255]
    assert colours[2].tolist() == [255, 0, 0]
    assert colours[3].tolist() == list(palette_color(3))


def test_legend_entries_largest_area_first_without_background():
    labels = np.array([[0, 0, 0, 0], [2, 2, 2, 1], [3, 3, 0, 0]])
    assert legend_entries(labels, 5, 10) == [2, 3, 1]
    assert legend_entries(labels, 5, 2) == [2, 3]
    assert legend_entries(np.zeros((3, 3), int), 2, 5) == []


def test_ascii_label():
    assert ascii_label('red car') == 'red car'
    assert ascii_label('猫 cat') == '? cat'
    assert ascii_label('x' * 50, limit=10) == 'xxxxxxx...'


def test_legend_draws_a_swatch_per_class_in_order():
    image = np.full((240, 320, 3), 200, np.uint8)
    colours = class_colors(['sky', 'road', 'tree'])
    rows = draw_legend(image, [3, 1], ['background', 'sky', 'road', 'tree'], colours)
    assert rows == 2
    # the swatches sit in the left column of the box, one row each, in the order given
    column = image[:, 6]
    first = np.flatnonzero((column == colours[3]).all(axis=1))
    second = np.flatnonzero((column == colours[1]).all(axis=1))
    assert first.size and second.size and first.max() < second.min()
    assert not (column == colours[2]).all(axis=1).any()
    # white text was drawn to the right of the swatches
    assert (image[:40, 20:120] > 240).all(axis=2).any()


def test_legend_rows_are_limited_by_image_height():
    image = np.zeros((30, 100, 3), np.uint8)
    colours = class_colors([f'c{i}' for i in range(10)])
    rows = draw_legend(image, list(range(1, 11)), ['background'] + [f'c{i}' for i in range(10)], colours)
    assert 0 < rows < 10
    assert draw_legend(np.zeros((4, 4, 3), np.uint8), [1], ['background', 'a'], colours) == 0


def test_overlay_blends_classes_and_leaves_background():
    rgb = np.full((60, 80, 3), 100, np.uint8)
    labels = np.zeros((60, 80), np.int64)
    labels[40:, 60:] = 1
    colours = np.array([[0, 0, 0], [255, 0, 0]], np.uint8)
    out = make_overlay(rgb, labels, colours, ['background', 'thing'], alpha=0.5, legend=False)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    assert out[0, 79].tolist() == [100, 100, 100]
    assert out[59, 79].tolist() == [178, 50, 50]
    with_legend = make_overlay(rgb, labels, colours, ['background', 'thing'], alpha=0.5)
    assert not np.array_equal(with_legend[:20, :40], out[:20, :40])  # legend box drawn top-left
    np.testing.assert_array_equal(with_legend[40:, 60:], out[40:, 60:])


@pytest.mark.parametrize('h, w', [(1, 1), (2, 3), (7, 5)])
def test_overlay_on_tiny_images(h, w):
    rgb = np.zeros((h, w, 3), np.uint8)
    labels = np.ones((h, w), np.int64)
    out = make_overlay(rgb, labels, class_colors(['a']), ['background', 'a'])
    assert out.shape == (h, w, 3)


def test_overlay_rejects_mismatched_labels():
    with pytest.raises(ValueError, match='labels of the image size'):
        make_overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), int), class_colors(['a']), ['background', 'a'])
