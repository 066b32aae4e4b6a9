"""What the code and the docs cite exists in the repository: every ``*.md`` file named in sources, configs,
scripts and tests, and every ``§N`` section of docs/method.md they point to (issue 18)."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = [p for folder in ('talk2dino_ros', 'test', 'config', 'scripts', 'launch')
           for p in sorted((REPO / folder).rglob('*')) if p.is_file() and p.suffix in ('.py', '.yaml', '.sh', '.md')]
SOURCES += [REPO / 'README.md', REPO / 'setup.py'] + sorted((REPO / 'docs').glob('*.md'))
MD_REF = re.compile(r'(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.md)\b')
SECTION = re.compile(r'§\s?(\d+(?:\.\d+)?)')


def method_sections():
    text = (REPO / 'docs' / 'method.md').read_text(encoding='utf-8')
    return set(re.findall(r'^#{2,3} (\d+(?:\.\d+)?)[. ]', text, re.MULTILINE))


def test_every_cited_markdown_file_exists():
    missing = []
    for path in SOURCES:
        if path == Path(__file__).resolve():
            continue
        for ref in MD_REF.findall(path.read_text(encoding='utf-8', errors='replace')):
            candidates = [REPO / ref, path.parent / ref, REPO / 'docs' / ref]
            if not any(c.is_file() for c in candidates):
                missing.append(f'{path.relative_to(REPO)}: {ref}')
    assert not missing, '\n'.join(missing)


def test_every_cited_section_exists():
    sections = method_sections()
    assert {'4', '5.3', '6.2', '7.4', '8'} <= sections
    bad = []
    for path in SOURCES:
        if path == Path(__file__).resolve() or path.parent == REPO / 'docs':
            continue
        text = path.read_text(encoding='utf-8', errors='replace')
        cited = SECTION.findall(text)
        if not cited:
            continue
        if 'docs/method.md' not in text:
            bad.append(f'{path.relative_to(REPO)}: § without naming docs/method.md')
        bad += [f'{path.relative_to(REPO)}: §{n} is not a section of docs/method.md' for n in cited
                if n not in sections]
    assert not bad, '\n'.join(bad)
