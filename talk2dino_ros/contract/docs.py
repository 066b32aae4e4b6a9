"""What the contract looks like to users: README tables, ``--help`` lines and RViz displays, derived from the tables.

``python -m talk2dino_ros.contract.docs --write`` rewrites the generated README tables (between their
``<!-- generated: ... -->`` markers) after a row changed; without ``--write`` it exits 1 when the README
disagrees with the tables (the test suite runs the same comparison).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from talk2dino_ros.contract.outputs import OUTPUTS, OutputSpec, node_outputs, readme_row
from talk2dino_ros.contract.parameters import PARAMETERS, ParamSpec

README = Path(__file__).resolve().parents[2] / 'README.md'


# ------------------------------------------------------------------------------------------ README tables
def _default_words(spec: ParamSpec) -> str:
    if spec.default is None:
        return '(unset)'
    if isinstance(spec.default, bool):
        return f'`{str(spec.default).lower()}`'
    if isinstance(spec.default, str):
        return f'`{spec.default}`' if spec.default else '`""`'
    return f'`{spec.default}`'


def _range_words(spec: ParamSpec) -> str:
    if spec.choices:
        return ' \\| '.join(spec.choices)
    for bounds in (spec.float_range, spec.int_range):
        if bounds is not None:
            return f'[{bounds[0]:g}, {bounds[1]:g}]'
    return ''


def parameter_rows() -> List[str]:
    """The README parameter table, one row per parameter of the table."""
    rows = ['| Parameter | Default | Range / choices | Kind | Meaning |', '|---|---|---|---|---|']
    for spec in PARAMETERS:
        kind = 'read-only' if spec.read_only else spec.group
        rows.append(f'| `{spec.name}` | {_default_words(spec)} | {_range_words(spec)} | {kind} | '
                    f'{spec.description} |')
    return rows


def output_rows() -> List[str]:
    """The README output table, one row per output the node publishes."""
    rows = ['| Topic | Type | QoS | Published |', '|---|---|---|---|']
    rows += [readme_row(spec) for spec in node_outputs()]
    return rows


#: marker name -> rows
TABLES = {'outputs': output_rows, 'parameters': parameter_rows}


def _block(name: str) -> re.Pattern:
    return re.compile(rf'(<!-- generated: {name} .*?-->\n)(.*?)(\n<!-- end: {name} -->)', re.S)


def render(text: str) -> str:
    """``text`` (the README) with every generated table rewritten from the tables."""
    for name, rows in TABLES.items():
        pattern = _block(name)
        if not pattern.search(text):
            raise ValueError(f'README has no "<!-- generated: {name} ... -->" block')
        text = pattern.sub(lambda m: m.group(1) + '\n'.join(rows()) + m.group(3), text)
    return text


# ------------------------------------------------------------------------------------------ RViz
#: the RViz Image display every generated display starts from
_IMAGE_DISPLAY: Dict[str, Any] = {
    'Class': 'rviz_default_plugins/Image', 'Enabled': True, 'Max Value': 1, 'Median window': 5, 'Min Value': 0}


def _display(name: str, topic: str, reliability: str, normalize: bool) -> Dict[str, Any]:
    return {**_IMAGE_DISPLAY, 'Name': name, 'Normalize Range': normalize,
            'Topic': {'Depth': 5, 'Durability Policy': 'Volatile', 'History Policy': 'Keep Last',
                      'Reliability Policy': reliability, 'Value': topic},
            'Value': True}


def rviz_displays(cameras: Sequence[Tuple[str, str]], node_namespace: str) -> List[Dict[str, Any]]:
    """RViz displays for ``cameras`` ((name, image topic); name '' = the single camera, outputs in the node's
    namespace) and the outputs of the table that name an RViz display, under ``node_namespace``
    (e.g. ``/talk2dino``). Label ids are small integers: "Normalize Range" stretches them to be visible."""
    displays = []
    shown = [spec for spec in node_outputs() if spec.rviz]
    for name, image_topic in cameras:
        prefix = f'{name} ' if name else ''
        outputs_ns = f'{node_namespace.rstrip("/")}/{name}' if name else node_namespace.rstrip('/')
        displays.append(_display(f'{prefix}Camera', image_topic, 'Best Effort', False))
        for spec in shown:
            displays.append(_display(prefix + spec.rviz, f'{outputs_ns}/{spec.topic}', 'Reliable',
                                     spec.name == 'labels'))
    return displays


def rviz_config(template: Dict[str, Any], cameras: Sequence[Tuple[str, str]], node_namespace: str) -> Dict[str, Any]:
    """The RViz ``template`` (panels, views, window) with the displays of :func:`rviz_displays`."""
    config = dict(template)
    manager = dict(config['Visualization Manager'])
    manager['Displays'] = rviz_displays(cameras, node_namespace)
    config['Visualization Manager'] = manager
    return config


# ------------------------------------------------------------------------------------------ help texts
def outputs_help(namespace: str = '~', specs: Optional[Sequence[OutputSpec]] = None, width: int = 100) -> str:
    """The outputs as a wrapped comma-separated list of topics, for ``--help`` texts."""
    import textwrap

    from talk2dino_ros.contract.outputs import topic_in
    names = [topic_in(namespace, spec) for spec in (node_outputs() if specs is None else specs)]
    return textwrap.fill(', '.join(names), width, initial_indent='outputs: ', subsequent_indent=' ' * 9)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog='python -m talk2dino_ros.contract.docs', description=__doc__.split('\n\n')[0])
    p.add_argument('readme', nargs='?', type=Path, default=README, help='the README to check or rewrite')
    p.add_argument('--write', action='store_true', help='rewrite the generated tables in place')
    args = p.parse_args(argv)
    text = args.readme.read_text(encoding='utf-8')
    try:
        rendered = render(text)
    except ValueError as exc:
        print(f'error: {args.readme}: {exc}', file=sys.stderr)
        return 2
    if args.write:
        if rendered != text:
            from talk2dino_ros.atomic_files import atomic_write_text
            atomic_write_text(args.readme, rendered)
        return 0
    if rendered != text:
        print(f'{args.readme}: the generated tables differ from talk2dino_ros/contract; run with --write',
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())


__all__ = ['OUTPUTS', 'TABLES', 'main', 'output_rows', 'outputs_help', 'parameter_rows', 'render', 'rviz_config',
           'rviz_displays']
