"""make_demo_bag builds the bag aside and moves it to --out only when complete."""
import pytest

from talk2dino_ros.cli import make_demo_bag


def test_complete_bag_appears_under_its_name_with_nothing_left_aside(tmp_path):
    info = make_demo_bag.write_demo_bag(tmp_path / 'demo', frames=2, height=8, width=10)
    assert info['path'] == str(tmp_path / 'demo')
    assert [p.name for p in tmp_path.iterdir()] == ['demo']
    names = sorted(p.name for p in (tmp_path / 'demo').iterdir())
    assert names == ['demo.db3', 'metadata.yaml']  # storage named after the final folder, not hidden


def test_interrupted_bag_leaves_nothing_and_can_be_rerun(tmp_path, monkeypatch):
    real = make_demo_bag.render_frame

    def render(index, *args, **kwargs):
        if index == 1:
            raise KeyboardInterrupt
        return real(index, *args, **kwargs)

    monkeypatch.setattr(make_demo_bag, 'render_frame', render)
    with pytest.raises(KeyboardInterrupt):
        make_demo_bag.write_demo_bag(tmp_path / 'demo', frames=3, height=8, width=10)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(make_demo_bag, 'render_frame', real)
    make_demo_bag.write_demo_bag(tmp_path / 'demo', frames=3, height=8, width=10)
    assert [p.name for p in tmp_path.iterdir()] == ['demo']
