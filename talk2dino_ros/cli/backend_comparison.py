"""``benchmark --backends``: the backends and precisions side by side, timed interleaved in one run.

One row per backend and precision, whole frame, plain (no cleaning, background or PAMR): the median frame
time and its ratio to the first row, torch fp32 (eager on the CPU, the CUDA graph on CUDA); optionally the
whole frame with cleaning, background and PAMR; the backbone module alone (one call at the frame's input
size); the engine's stage times of the plain frame (where the rest of a frame goes); and the agreement
with torch fp32 on the same frame (max |Δ| of the scores, share of equal labels). Every segmenter is loaded and warmed up first (exports and
compilations happen there, never in a timed frame); then each repeat times every row once in turn, so that
a busy machine slows all rows alike.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from talk2dino_ros.backend_names import BACKENDS, PRECISIONS
from talk2dino_ros.cli.common import CliError

STAGES = ('preprocess', 'backbone', 'windows', 'labels')
REFERENCE = ('torch', 'fp32')


@dataclass
class BackendRow:
    backend: str
    precision: str
    frame: List[float] = field(default_factory=list)
    full: List[float] = field(default_factory=list)  # whole + cleaning + background + PAMR, when asked for
    backbone: List[float] = field(default_factory=list)
    stages: Dict[str, List[float]] = field(default_factory=lambda: {k: [] for k in STAGES})
    max_abs: float = 0.0
    label_agreement: float = 1.0

    @property
    def name(self) -> str:
        return f'{self.backend} {self.precision}'

    def as_dict(self) -> Dict:
        return dict(backend=self.backend, precision=self.precision, frame_s=self.frame, full_s=self.full,
                    backbone_s=self.backbone,
                    stages_s=self.stages, max_abs=self.max_abs, label_agreement=self.label_agreement)


def parse_backends(text: str, available: Callable[[str, str], Optional[str]]) -> Tuple[List[Tuple[str, str]], List[str]]:
    """'torch,openvino:bf16,onnxruntime' -> [(backend, precision)], notes on skipped choices.

    A backend without ``:precision`` gets every precision this machine runs it at (``available`` returns
    why not, or None); torch fp32 is always first (it is the reference).
    """
    chosen: List[Tuple[str, str]] = [REFERENCE]
    notes: List[str] = []
    for item in (t.strip().lower() for t in text.split(',')):
        if not item:
            continue
        backend, _, precision = item.partition(':')
        if backend not in BACKENDS or (precision and precision not in PRECISIONS):
            raise CliError(f'--backends: unknown {item!r}; give backend[:precision] with backend in '
                           f'{", ".join(BACKENDS)} and precision in {", ".join(PRECISIONS)}')
        for p in ([precision] if precision else list(PRECISIONS)):
            why = available(backend, p)
            if why is None:
                if (backend, p) not in chosen:
                    chosen.append((backend, p))
            elif precision or p == 'fp32':  # asked for explicitly, or the backend itself is missing
                notes.append(f'{backend} {p} skipped: {why}')
    return chosen, notes


def _median(values: Sequence[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def compare_backends(base_config, choices: Sequence[Tuple[str, str]], image: np.ndarray, names: Sequence[str],
                     repeats: int, warmup: int, log: Callable[[str], None], full: bool = False) -> List[BackendRow]:
    """Load one segmenter per (backend, precision), warm each up, then time them interleaved.

    ``full``: also time the whole frame with cleaning, background and PAMR (column ``whole full``).
    """
    import torch

    from talk2dino_ros.model.segmenter import Segmenter
    from talk2dino_ros.model.types import InferenceOptions

    plain = InferenceOptions()
    complete = InferenceOptions(bg_clean=True, background=True, pamr=True,
                                background_threshold=base_config.options.background_threshold)
    segmenters, rows = [], []
    for backend, precision in choices:
        log(f'loading {backend} {precision} ...')
        config = dataclasses.replace(base_config, mode='whole', backend=backend, precision=precision,
                                     fast_path='off' if backend != 'torch' else base_config.fast_path)
        seg = Segmenter.from_config(config, on_event=log)
        seg.set_vocabulary(names)
        for _ in range(max(1, warmup)):  # compiles the runtime for this input size
            seg.segment(image, options=plain).labels
        seg.wait_fast_path()  # torch on CUDA: the captured graph, never a shape still being prepared
        segmenters.append(seg)
        rows.append(BackendRow(backend, precision))
    vocab_bg = [seg.build_vocabulary(names, background=True) for seg in segmenters]

    reference = segmenters[0].segment(image, options=plain)
    for seg, row in zip(segmenters, rows):
        result = seg.segment(image, options=plain)
        row.max_abs = float(np.abs(result.scores - reference.scores).max())
        row.label_agreement = float((result.labels == reference.labels).mean())

    # the backbone module alone, at the input size a whole frame gives it
    h, w = segmenters[0]._input_size(*image.shape[:2], segmenters[0].config)
    x = torch.zeros((1, 3, h, w)).normal_(generator=torch.Generator().manual_seed(0))

    def backbone_call(seg):
        module = getattr(seg.method, seg.method.fast_path_module)
        amp = seg.config.autocast_dtype(seg.device)
        off = torch.float16 if seg.device.type == 'cuda' else torch.bfloat16
        with torch.inference_mode(), torch.autocast(device_type=seg.device.type, dtype=amp or off,
                                                    enabled=amp is not None):
            module(x.to(seg.device))
        if seg.device.type == 'cuda':
            torch.cuda.synchronize(seg.device)

    for seg, vocab in zip(segmenters, vocab_bg):
        backbone_call(seg)
        seg.wait_fast_path()
        if full:
            seg.segment(image, vocabulary=vocab, options=complete).labels
    log(f'timing {len(rows)} rows interleaved, {repeats} repeats ...')
    for _ in range(repeats):
        for seg, row, vocab in zip(segmenters, rows, vocab_bg):
            start = time.perf_counter()
            seg.segment(image, options=plain).labels
            row.frame.append(time.perf_counter() - start)
            if full:
                start = time.perf_counter()
                seg.segment(image, vocabulary=vocab, options=complete).labels
                row.full.append(time.perf_counter() - start)
            start = time.perf_counter()
            backbone_call(seg)
            row.backbone.append(time.perf_counter() - start)
            seg.stage_timer.enabled = True
            try:
                timings = seg.segment(image, options=plain).timings
            finally:
                seg.stage_timer.enabled = False
            for k in STAGES:
                row.stages[k].append(timings.get(k, 0.0))
    return rows


def _ms(seconds: Optional[float]) -> str:
    return '-' if seconds is None else f'{seconds * 1e3:.0f} ms'


def format_backend_table(rows: Sequence[BackendRow]) -> str:
    """One table: frame time and ratio to torch eager fp32, the backbone alone, stages, agreement."""
    ref = rows[0]
    full = bool(ref.full)

    def timed(values: List[float], reference: List[float]) -> Tuple[str, str]:
        mine, theirs = _median(values), _median(reference)
        return _ms(mine), (f'{theirs / mine:.2f}x' if mine and theirs else '-')

    header = ('backend', 'whole plain', 'vs torch', *(('whole full', 'vs torch') if full else ()),
              'backbone alone', 'vs torch', *(f'stage {k}' for k in STAGES), 'max |Δ|', 'labels equal')
    body = []
    for r in rows:
        body.append((r.name, *timed(r.frame, ref.frame), *(timed(r.full, ref.full) if full else ()),
                     *timed(r.backbone, ref.backbone), *(_ms(_median(r.stages[k])) for k in STAGES),
                     f'{r.max_abs:.1e}' if r is not ref else '0', f'{100 * r.label_agreement:.3f} %'))
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]
    line = lambda cells: '  '.join(str(c).ljust(wd) if i == 0 else str(c).rjust(wd)  # noqa: E731
                                   for i, (c, wd) in enumerate(zip(cells, widths)))
    return '\n'.join([line(header), line(['-' * wd for wd in widths])] + [line(b) for b in body])
