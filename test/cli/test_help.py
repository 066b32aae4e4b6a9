"""Every flag of every command-line tool has a real description, and its choices are shown (issue 18).

The parsers are taken from the console scripts in setup.py: each ``main`` is called and stopped at its
first ``parse_args`` / ``parse_known_args``, so a parser built inside ``main`` is checked as well.
"""
import argparse
import re

import pytest

from helpers.cli import capture_parser, console_scripts

PLACEHOLDER = re.compile(r'^(yaml \S+; )?built-in default|^yaml [\w.]+;|^todo\b|^-?$|^help$', re.IGNORECASE)


def walk(parser: argparse.ArgumentParser, prefix: str):
    """(command path, parser, action) for every action, subcommands included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, f'{prefix} {name}')
            continue
        if isinstance(action, argparse._HelpAction):
            continue
        yield prefix, parser, action


def _shown_choices(parser, action) -> bool:
    formatter = parser._get_formatter()
    shown = formatter._format_action_invocation(action) + ' ' + (action.help or '')
    return all(str(c) in shown for c in action.choices if str(c) != '')


@pytest.mark.parametrize('name', sorted(console_scripts()))
def test_every_option_is_described_and_shows_its_choices(name, monkeypatch):
    parser = capture_parser(console_scripts()[name], monkeypatch)
    problems = []
    for command, sub, action in walk(parser, name):
        label = f'{command} {"/".join(action.option_strings) or action.dest}'
        text = (action.help or '').strip()
        if text == argparse.SUPPRESS:
            continue
        if not text or PLACEHOLDER.search(text) or len(text) < 8:
            problems.append(f'{label}: no real help ({text!r})')
        if action.choices is not None and not isinstance(action.choices, dict) and not _shown_choices(sub, action):
            problems.append(f'{label}: choices {list(action.choices)} not shown')
    assert not problems, '\n'.join(problems)


def test_the_walker_sees_subcommands_and_flags(monkeypatch):
    parser = capture_parser(console_scripts()['train'], monkeypatch)
    seen = {(cmd, '/'.join(a.option_strings)) for cmd, _, a in walk(parser, 'train')}
    assert ('train extract', '--variant') in seen and ('train fit', '--plots/--no-plots') in seen
