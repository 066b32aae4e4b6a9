"""Tools that never mislead (issue 24): random weights written for every method, pictures that stay readable
and marked, variants without a published ψ that say how to get one."""
import numpy as np
import pytest

from talk2dino_ros.cli import fetch_weights, make_random_weights


def test_make_random_weights_clip_dinoiser(tmp_path, capsys):
    """The README's own command: it used to fail with "unexpected keyword argument 'variant'"."""
    assert make_random_weights.main([str(tmp_path), '--method', 'clip_dinoiser']) == 0
    out = capsys.readouterr().out
    assert 'open_clip_pytorch_model.bin' in out and 'last.pt' in out
    assert (tmp_path / 'last.pt').is_file() and (tmp_path / 'open_clip_pytorch_model.bin').is_file()


def test_fetch_weights_vits_says_to_train_a_psi(tmp_path, capsys):
    assert fetch_weights.main(['--variant', 'vits', '--dir', str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'train fit --variant vits' in err and 'invalid choice' not in err
    assert not list(tmp_path.iterdir())


def test_loaded_model_says_whether_its_weights_are_random(tiny_weights):
    """The loader knows test widths: a segmenter built without the flag's config still says 'random'."""
    import dataclasses

    from talk2dino_ros.model.random_weights import tiny_segmenter_config
    from talk2dino_ros.model.segmenter import Segmenter

    seg = Segmenter.from_config(tiny_segmenter_config(tiny_weights))
    assert seg.random_weights and seg.method.test_width
    seg.config = dataclasses.replace(seg.config, allow_random_weights=False)  # only what was loaded is left
    assert seg.random_weights


# ------------------------------------------------------------------------------------------ plots
def _result(k, present):
    """A result of ``k`` classes where only the ``present`` ones have ground-truth pixels."""
    cm = np.zeros((k, k), np.int64)
    for i in present:
        cm[i, i] = 100 + i
        cm[i, (i + 1) % k] = 7
    names = [f'class number {i}' for i in range(k)]
    iou = {n: (50.0 if i in present else None) for i, n in enumerate(names)}
    return {'IoU': iou, 'mIoU': 50.0, 'num_images': 3, 'accumulator': {'confusion_matrix': cm.tolist()}}


def test_150_classes_plots_show_the_present_classes_at_a_readable_size(tmp_path, monkeypatch):
    pytest.importorskip('matplotlib')
    from PIL import Image

    from talk2dino_ros.evaluation import plots

    titles = []
    real = plots.wrapped_title
    monkeypatch.setattr(plots, 'wrapped_title',
                        lambda ax, fig, text, **kw: titles.append(text) or real(ax, fig, text, **kw))
    iou_png, confusion_png = plots.write_evaluation_plots(_result(150, range(0, 150, 5)), tmp_path, 'ade20k',
                                                          'ade20k, talk2dino vitb', random_weights=True)
    for path in (iou_png, confusion_png):
        with Image.open(path) as im:
            assert max(im.size) <= 2000  # was 4120 px wide
    assert titles and all(t.startswith(plots.RANDOM_MARK) for t in titles)
    assert all(f'{plots.MAX_PLOT_CLASSES} of 150 classes shown' in t for t in titles)
    # more present classes than fit: the most frequent in the ground truth
    assert plots.shown_classes(np.diag(np.arange(1, 151))) == list(range(150 - plots.MAX_PLOT_CLASSES, 150))
    assert plots.shown_classes(np.eye(5)) == [0, 1, 2, 3, 4]


def test_titles_are_never_cut(tmp_path):
    pytest.importorskip('matplotlib')
    from talk2dino_ros.evaluation import plots

    plt = plots.require_matplotlib()
    long = 'Confusion matrix: bag a_rather_long_bag_name_2026_12_06, /camera/front/image_raw (120 images)'
    fig, ax = plt.subplots(figsize=(6.2, 5))
    try:
        plots.wrapped_title(ax, fig, long + '\n(rows normalised: share of each ground-truth class; grey = absent)')
        fig.tight_layout()
        fig.canvas.draw()
        box = ax.title.get_window_extent(fig.canvas.get_renderer())
        width = fig.get_figwidth() * fig.dpi
        assert box.x0 >= 0 and box.x1 <= width
    finally:
        plt.close(fig)


def test_node_names_switches_its_method_ignores():
    """pamr/bg_clean with clip_dinoiser: the node warns by name when it loads (it cannot refuse a default)."""
    from talk2dino_ros.ros.model_loader import ignored_switches_note
    from talk2dino_ros.ros.parameters import NodeSettings

    note = ignored_switches_note(NodeSettings({'method': 'clip_dinoiser', 'pamr': True, 'bg_clean': False}))
    assert note.startswith('pamr is on, but clip_dinoiser has no such step') and 'bg_clean' not in note
    assert 'bg_clean and pamr are on' in ignored_switches_note(NodeSettings({'method': 'clip_dinoiser', 'pamr': True}))
    assert ignored_switches_note(NodeSettings({'method': 'talk2dino', 'pamr': True})) == ''
