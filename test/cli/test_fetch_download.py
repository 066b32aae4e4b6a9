"""fetch_weights' download: the file appears only whole and verified; a failed download or check leaves nothing."""
import hashlib
import io

import pytest

from talk2dino_ros.catalog import PublishedFile
from talk2dino_ros.cli import fetch_weights


class _Response(io.BytesIO):
    def __init__(self, data, fail_after=None):
        super().__init__(data)
        self.headers = {'Content-Length': str(len(data))}
        self.fail_after = fail_after

    def read(self, n=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise OSError('connection reset by peer')
        return super().read(min(n, 4) if n and n > 0 else 4)  # small blocks: several writes


@pytest.fixture
def serve(monkeypatch):
    def install(data, fail_after=None):
        monkeypatch.setattr(fetch_weights, 'check_network', lambda url, timeout: None)
        monkeypatch.setattr(fetch_weights.urllib.request, 'urlopen',
                            lambda req, timeout: _Response(data, fail_after))
    return install


def _spec(data):
    return PublishedFile(name='t', filename='w.pth', role='proj', url='https://example.invalid/w.pth',
                         size=len(data), sha256=hashlib.sha256(data).hexdigest())


def test_download_writes_the_verified_file(tmp_path, serve):
    data = b'0123456789abcdef' * 3
    serve(data)
    assert fetch_weights.download(_spec(data), tmp_path, progress=False) == tmp_path / 'w.pth'
    assert (tmp_path / 'w.pth').read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ['w.pth']


def test_failed_check_keeps_the_old_file_and_names_the_destination(tmp_path, serve):
    (tmp_path / 'w.pth').write_bytes(b'old')
    serve(b'tampered content')
    with pytest.raises(fetch_weights.FetchError) as info:
        fetch_weights.download(_spec(b'the real content'), tmp_path, force=True, progress=False)
    assert str(info.value).startswith(f'{tmp_path / "w.pth"}: SHA256 does not match')
    assert (tmp_path / 'w.pth').read_bytes() == b'old'
    assert [p.name for p in tmp_path.iterdir()] == ['w.pth']


def test_broken_connection_leaves_no_partial_file(tmp_path, serve):
    data = b'x' * 64
    serve(data, fail_after=8)
    with pytest.raises(fetch_weights.FetchError, match='download of .* failed'):
        fetch_weights.download(_spec(data), tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_is_one_line(tmp_path, serve, monkeypatch, capsys):
    data = b'abc'
    serve(data)
    monkeypatch.setattr(fetch_weights, '_selected', lambda args: [_spec(data)])
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    assert fetch_weights.main(['--dir', str(blocker / 'weights')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: cannot write to ') and err.count('\n') == 1 and 'Traceback' not in err
