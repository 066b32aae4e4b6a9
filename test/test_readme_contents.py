"""The README's table of contents lists every section, and every entry leads to one."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r'[^\w\- ]', '', title.strip().lower()).replace(' ', '-')


def test_contents_match_the_headings():
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    outside_code = re.sub(r'```.*?```', '', text, flags=re.S)
    headings = [m.group(2) for m in re.finditer(r'^(##+) (.+)$', outside_code, re.M) if m.group(2) != 'Contents']
    contents = text.split('## Contents', 1)[1].split('\n## ', 1)[0]
    entries = re.findall(r'^\s*\* \[(.+)\]\(#(.+)\)$', contents, re.M)
    assert [title for title, _ in entries] == headings, "add the new section to the README's Contents"
    assert all(anchor == _anchor(title) for title, anchor in entries)


def test_architecture_doc_names_every_room():
    doc = (ROOT / 'docs' / 'architecture.md').read_text(encoding='utf-8')
    rooms = [p.name for p in (ROOT / 'talk2dino_ros').iterdir() if p.is_dir() and (p / '__init__.py').is_file()]
    for room in rooms:
        assert f'`{room}/`' in doc, room
