"""Pictures of evaluation and training results (the optional ``plots`` extra: matplotlib).

* :func:`write_evaluation_plots`: per-class IoU bar chart and row-normalised confusion matrix of one
  ``evaluate`` result (a benchmark or a bag), as PNG;
* :func:`write_training_plots`: loss and retrieval-recall curves of a ``train fit`` history, as PNG.

matplotlib is imported lazily with the non-interactive Agg backend (no display needed); without it,
:class:`PlotsUnavailable` says in one line how to install it.
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from talk2dino_ros.atomic_files import atomic_path
from talk2dino_ros.errors import Talk2DinoError
from talk2dino_ros.evaluation.metrics import normalize_confusion

INSTALL_HINT = "pip install 'talk2dino_ros[plots]' (or: pip install matplotlib)"


class PlotsUnavailable(Talk2DinoError):
    """matplotlib (the ``plots`` extra) is not installed."""


def require_matplotlib():
    """``matplotlib.pyplot`` on the Agg backend; :class:`PlotsUnavailable` when it is not installed."""
    try:
        import matplotlib
    except ImportError:
        raise PlotsUnavailable(f'pictures need matplotlib, which is not installed: {INSTALL_HINT}') from None
    matplotlib.use('Agg', force=True)  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def saved_figure(path: Path, figsize: Tuple[float, float]) -> Iterator[Tuple[Any, Any, Any]]:
    """``(plt, fig, ax)`` of a new figure; on leaving the block it is laid out, saved atomically as a 100 dpi
    image (the format follows the suffix, which the temporary keeps) and closed, also on errors (closed only)."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=figsize)
    try:
        yield plt, fig, ax
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)


def _visible_names(names: Sequence[str]) -> List[str]:
    """Class names as drawn: names with outer spaces (ADE20K's 'bed ') quoted so they stay visible."""
    return [repr(n) if n != n.strip() else n for n in names]


def safe_stem(text: str) -> str:
    """A file-name-safe version of a benchmark name or bag path."""
    stem = re.sub(r'[^A-Za-z0-9._-]+', '_', str(text)).strip('._')
    return stem or 'result'


# ------------------------------------------------------------------------------------------ evaluation
#: most classes one picture shows; above it, the classes with the most ground-truth pixels (150-class
#: ADE20K otherwise gives 4000-pixel pictures whose labels nobody can read)
MAX_PLOT_CLASSES = 40
#: the mark every picture of a random-weights run carries in its title
RANDOM_MARK = 'RANDOM WEIGHTS (meaningless): '


def wrapped_title(ax, fig, text: str, fontsize: float = 12.0) -> None:
    """Set ``text`` as the axes title, wrapped to the figure's width so that no line is cut off."""
    import textwrap

    # an average character of the default font is about 0.55 em wide
    chars = max(20, int(fig.get_figwidth() * 72 / (0.6 * fontsize)))
    lines = [textwrap.fill(part, chars) for part in text.split('\n')]
    ax.set_title('\n'.join(lines), fontsize=fontsize)


def shown_classes(confusion: np.ndarray, limit: int = MAX_PLOT_CLASSES) -> List[int]:
    """Indices of the classes a picture shows, in class order: every class when there are at most ``limit``,
    else the ones present (in the ground truth or the predictions), the ``limit`` with most ground-truth
    pixels (then most predicted pixels) when still too many."""
    confusion = np.asarray(confusion)
    k = confusion.shape[0]
    if k <= limit:
        return list(range(k))
    truth, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    present = [i for i in range(k) if truth[i] > 0 or predicted[i] > 0]
    if len(present) > limit:
        present = sorted(sorted(present, key=lambda i: (-int(truth[i]), -int(predicted[i]), i))[:limit])
    return present


def plot_class_iou(iou: Mapping[str, Optional[float]], path: Path, title: str,
                   miou: Optional[float] = None) -> Path:
    """Horizontal bars of per-class IoU (percent) in class order; classes without pixels show 'n/a'."""
    names = _visible_names(list(iou))
    values = [_finite(v) for v in iou.values()]
    height = max(2.5, 0.22 * len(names) + 1.2)
    with saved_figure(path, (8, height)) as (_, fig, ax):
        pos = np.arange(len(names))
        ax.barh(pos, [0.0 if v is None else v for v in values], color='#4C72B0')
        for y, v in zip(pos, values):
            ax.text(1 if v is None else v + 1, y, 'n/a' if v is None else f'{v:.1f}', va='center',
                    fontsize=_tick_size(len(names)))
        ax.set_yticks(pos, names, fontsize=_tick_size(len(names)))
        ax.invert_yaxis()  # first class at the top, as in the printed table
        ax.set_xlim(0, 105)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_xlabel('IoU (%)')
        ax.set_ylabel('class')
        if miou is not None and not math.isnan(miou):
            ax.axvline(miou, color='#C44E52', linestyle='--', label=f'mIoU {miou:.2f}')
            ax.legend(loc='lower right')
        wrapped_title(ax, fig, title)
    return path


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix (each ground-truth row sums to 1) with class names on both axes."""
    confusion = np.asarray(confusion)
    k = len(class_names)
    if confusion.shape != (k, k):
        raise ValueError(f'confusion matrix of shape {confusion.shape} for {k} classes')
    return _draw_confusion(normalize_confusion(confusion), class_names, path, title)


def _draw_confusion(norm: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> Path:
    k = len(class_names)
    side = min(40.0, max(5.0, 0.28 * k + 3.0))
    with saved_figure(path, (side + 1.2, side)) as (plt, fig, ax):
        cmap = plt.get_cmap('Blues').with_extremes(bad='#DDDDDD')  # grey: classes absent from the ground truth
        image = ax.imshow(np.ma.masked_invalid(norm), cmap=cmap, vmin=0.0, vmax=1.0, interpolation='nearest')
        names = _visible_names(class_names)
        size = _tick_size(k)
        ax.set_xticks(np.arange(k), names, rotation=90, fontsize=size)
        ax.set_yticks(np.arange(k), names, fontsize=size)
        if k <= MAX_PLOT_CLASSES:  # the numbers stay legible up to the largest picture drawn
            for g in range(k):
                for p in range(k):
                    if np.isfinite(norm[g, p]) and norm[g, p] >= 0.005:
                        ax.text(p, g, f'{norm[g, p]:.2f}', ha='center', va='center', fontsize=size,
                                color='white' if norm[g, p] > 0.5 else 'black')
        ax.set_xlabel('predicted class')
        ax.set_ylabel('ground-truth class')
        wrapped_title(ax, fig, title + '\n(rows normalised: share of each ground-truth class; grey = absent)')
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label='fraction of the row')
    return path


def write_evaluation_plots(result: Mapping[str, Any], out_dir: Path, name: str, title: str,
                           random_weights: bool = False) -> List[Path]:
    """``<name>_iou.png`` and ``<name>_confusion.png`` of one evaluate result (benchmark or bag) in ``out_dir``.

    ``result`` needs ``IoU`` (class -> percent or None), ``mIoU`` and ``accumulator.confusion_matrix``.
    Above :data:`MAX_PLOT_CLASSES` classes only those present are drawn (at most that many, the most
    frequent in the ground truth), and the title says so. ``random_weights`` marks every title.
    """
    require_matplotlib()  # fail before creating the folder
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = safe_stem(name)
    names = list(result['IoU'])
    confusion = np.asarray(result['accumulator']['confusion_matrix'])
    images = result.get('num_images', result.get('scored'))
    detail = f'{title} ({images} images)' if images is not None else title
    shown = shown_classes(confusion)
    if len(shown) < len(names):
        detail += f'; {len(shown)} of {len(names)} classes shown (those present, most ground-truth pixels first)'
    mark = RANDOM_MARK if random_weights else ''
    iou = {names[i]: result['IoU'][names[i]] for i in shown}
    norm = normalize_confusion(confusion)[np.ix_(shown, shown)]
    return [
        plot_class_iou(iou, out_dir / f'{stem}_iou.png', f'{mark}Per-class IoU: {detail}',
                       miou=_finite(result.get('mIoU'))),
        _draw_confusion(norm, [names[i] for i in shown], out_dir / f'{stem}_confusion.png',
                        f'{mark}Confusion matrix: {detail}'),
    ]


# ------------------------------------------------------------------------------------------ training
def write_training_plots(history: Sequence[Mapping[str, float]], out_dir: Path,
                         random_weights: bool = False) -> List[Path]:
    """``loss.png`` (training loss per epoch) and, when validation ran, ``recall.png`` (recall@k in both
    retrieval directions per epoch) in ``out_dir``; returns the files written. ``random_weights`` (features
    of random test weights) marks both titles."""
    mark = RANDOM_MARK if random_weights else ''
    require_matplotlib()  # a missing matplotlib is reported even when there is nothing to draw yet
    if not history:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    epochs = [int(r['epoch']) for r in history]
    written = []
    with saved_figure(out_dir / 'loss.png', (7, 4.5)) as (_, fig, ax):
        ax.plot(epochs, [float(r['loss']) for r in history], marker='o', markersize=3, color='#4C72B0')
        ax.set_xlabel('epoch')
        ax.set_ylabel('training loss (InfoNCE / B²)')
        wrapped_title(ax, fig, f'{mark}Training loss of the projection, {len(epochs)} epochs')
        ax.grid(True, alpha=0.3)
        _integer_epochs(ax)
    written.append(out_dir / 'loss.png')
    keys = sorted({k for r in history for k in r if k.startswith(('t2i_r', 'i2t_r'))}, key=_recall_order)
    if keys:
        with saved_figure(out_dir / 'recall.png', (7, 4.5)) as (_, fig, ax):
            for key in keys:
                points = [(int(r['epoch']), float(r[key])) for r in history if key in r]
                ax.plot([p[0] for p in points], [p[1] for p in points], marker='o', markersize=3,
                        label=_recall_label(key))
            ax.set_xlabel('epoch')
            ax.set_ylabel('recall (%)')
            ax.set_ylim(0, 100)
            wrapped_title(ax, fig, f'{mark}Validation retrieval recall')
            ax.grid(True, alpha=0.3)
            ax.legend()
            _integer_epochs(ax)
        written.append(out_dir / 'recall.png')
    return written


# ------------------------------------------------------------------------------------------ helpers
def _finite(value: Any) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _tick_size(count: int) -> float:
    return 9.0 if count <= 30 else max(5.0, 9.0 - (count - 30) / 30)


def _integer_epochs(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _recall_order(key: str) -> tuple:
    direction, k = key.split('_r')
    return (direction, int(k) if k.isdigit() else 0)


def _recall_label(key: str) -> str:
    direction, k = key.split('_r')
    return f"{'caption → image' if direction == 't2i' else 'image → caption'} R@{k}"


def plots_summary(paths: Sequence[Path]) -> str:
    """One line naming the pictures written."""
    return 'pictures: ' + ', '.join(str(p) for p in paths)


__all__ = ['INSTALL_HINT', 'MAX_PLOT_CLASSES', 'PlotsUnavailable', 'RANDOM_MARK', 'plot_class_iou', 'plot_confusion',
           'plots_summary', 'require_matplotlib', 'safe_stem', 'shown_classes', 'wrapped_title',
           'write_evaluation_plots', 'write_training_plots']
