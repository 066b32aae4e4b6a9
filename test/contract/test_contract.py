"""The contract tables and everything derived from them agree: a front end that restates a fact fails here."""
import re
from pathlib import Path

import pytest

from talk2dino_ros.contract import docs, outputs
from talk2dino_ros.contract.outputs import CADENCES, OUTPUTS, QOS, bag_outputs, camera_outputs, node_outputs
from talk2dino_ros.contract.parameters import GROUPS, PARAMETERS, SPECS, node_defaults

ROOT = Path(__file__).resolve().parents[2]


def test_rows_are_complete_and_consistent():
    assert len({s.name for s in OUTPUTS}) == len(OUTPUTS)
    assert len({s.topic for s in OUTPUTS}) == len(OUTPUTS)
    for spec in OUTPUTS:
        assert spec.qos in QOS and spec.cadence in CADENCES, spec.name
        assert re.fullmatch(r'[a-z_0-9]+/msg/[A-Za-z0-9]+', spec.msg_type), spec.name
        assert len(spec.description) > 20, spec.name
        if spec.switch:
            assert SPECS[spec.switch].default in (True, False), spec.name
        if spec.cadence == 'latched':
            assert QOS[spec.qos].durability == 'transient_local', spec.name
        if spec.encoding:
            assert spec.msg_type == 'sensor_msgs/msg/Image', spec.name
    assert {s.group for s in PARAMETERS} <= set(GROUPS)


def test_the_readme_tables_are_the_contract():
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    assert docs.render(text) == text, 'README tables differ: run python -m talk2dino_ros.contract.docs --write'
    for spec in node_outputs():
        assert f'| `{spec.readme_topic()}` |' in text
    for spec in PARAMETERS:
        assert f'| `{spec.name}` |' in text


def test_a_changed_row_shows_in_the_readme_check(monkeypatch):
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    changed = tuple(outputs.OutputSpec(**{**s.__dict__, 'description': 'something else entirely'})
                    if s.name == 'overlay' else s for s in OUTPUTS)
    monkeypatch.setattr(outputs, 'OUTPUTS', changed)
    assert docs.render(text) != text


def test_docs_command_checks_and_rewrites(tmp_path, capsys):
    readme = tmp_path / 'README.md'
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    readme.write_text(text.replace('| `~/overlay` |', '| `~/old_overlay` |'), encoding='utf-8')
    assert docs.main([str(readme)]) == 1 and '--write' in capsys.readouterr().err
    assert docs.main([str(readme), '--write']) == 0 and readme.read_text(encoding='utf-8') == text
    readme.write_text('# no tables\n', encoding='utf-8')
    assert docs.main([str(readme)]) == 2


def test_segment_bag_writes_the_bag_rows_with_the_node_defaults():
    from talk2dino_ros.cli import segment_bag

    per_frame = {s.name: (s.topic, s.msg_type) for s in bag_outputs() if s.cadence == 'per_frame'}
    latched = {s.name: (s.topic, s.msg_type) for s in bag_outputs() if s.cadence == 'latched'}
    assert segment_bag.OUTPUTS == per_frame and segment_bag.LEGENDS == latched
    assert segment_bag.NODE_DEFAULTS == {n: SPECS[n].default for n in ('mode', 'background_threshold', 'bg_clean')}
    help_text = segment_bag.build_parser().format_help()
    for spec in bag_outputs():
        assert f'<ns>/{spec.topic} (' in help_text, spec.name


def test_segment_image_node_preset_is_the_node():
    from talk2dino_ros.cli.segment_image import PRESETS, build_parser

    assert PRESETS['node'] == {'background': True, **node_defaults('mode', 'background_threshold', 'bg_clean',
                                                                    'pamr')}
    help_text = ' '.join(build_parser().format_help().split())
    assert f"background {SPECS['background_threshold'].default}" in help_text


def test_segment_node_help_lists_every_output_and_parameter():
    from talk2dino_ros.ros.segment_node import usage

    text = usage('segment_node')
    flat = ' '.join(text.split())
    for spec in node_outputs():
        assert outputs.topic_in('~', spec) in flat, spec.name
    for spec in PARAMETERS:
        assert f'  {spec.name} = ' in text, spec.name


def test_every_node_row_has_a_builder():
    pytest.importorskip('rclpy')
    from talk2dino_ros.ros.frame_outputs import BUILDERS

    assert set(BUILDERS) == {s.name for s in camera_outputs() if not s.family}
