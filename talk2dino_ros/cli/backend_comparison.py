"""``benchmark --backends``: the backends and precisions side by side, timed interleaved in one run.

One row per backend and precision, whole frame, plain (no cleaning, background or PAMR): the median frame
time, its ratio to torch eager fp32, the backbone module alone (one call at the frame's input size), the
engine's stage times (where the rest of a frame goes), and the agreement with torch fp32 on the same frame
(max |Δ| of the scores, share of equal labels). Every segmenter is loaded and warmed up first (exports and
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
    backbone: List[float] = field(default_factory=list)
    stages: Dict[str, List[float]] = field(default_factory=lambda: {k: [] for k in STAGES})
    max_abs: float = 0.0
    label_agreement: float = 1.0

    @property
    def name(self) -> str:
        return f'{self.backend} {self.precision}'

    def as_dict(self) -> Dict:
        return dict(backend=self.backend, precision=self.precision, frame_s=self.frame, backbone_s=self.backbone,
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
                     repeats: int, warmup: int, log: Callable[[str], None]) -> List[BackendRow]:
    """Load one segmenter per (backend, precision), warm each up, then time them interleaved."""
    import torch

    from talk2dino_ros.model.segmenter import Segmenter
    from talk2dino_ros.model.types import InferenceOptions

    plain = InferenceOptions()
    segmenters, rows = [], []
    for backend, precision in choices:
        log(f'loading {backend} {precision} ...')
        config = dataclasses.replace(base_config, mode='whole', backend=backend, precision=precision,
                                     fast_path='off' if backend != 'torch' else base_config.fast_path)
        seg = Segmenter.from_config(config, on_event=log)
        seg.set_vocabulary(names)
        for _ in range(max(1, warmup)):  # compiles the runtime for this input size
            seg.segment(image, options=plain).labels
        segmenters.append(seg)
        rows.append(BackendRow(backend, precision))

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
        with torch.inference_mode(), torch.autocast(device_type='cpu', dtype=amp or torch.bfloat16,
                                                    enabled=amp is not None):
            module(x.to(seg.device))

    for seg in segmenters:
        backbone_call(seg)
    log(f'timing {len(rows)} rows interleaved, {repeats} repeats ...')
    for _ in range(repeats):
        for seg, row in zip(segmenters, rows):
            start = time.perf_counter()
            seg.segment(image, options=plain).labels
            row.frame.append(time.perf_counter() - start)
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
    ref_frame, ref_backbone = _median(ref.frame), _median(ref.backbone)
    header = ('backend', 'frame', 'vs torch', 'backbone alone', 'vs torch', *STAGES, 'max |Δ|', 'labels equal')
    body = []
    for r in rows:
        frame, backbone = _median(r.frame), _median(r.backbone)
        body.append((r.name, _ms(frame), f'{ref_frame / frame:.2f}x' if frame else '-', _ms(backbone),
                     f'{ref_backbone / backbone:.2f}x' if backbone else '-',
                     *(_ms(_median(r.stages[k])) for k in STAGES),
                     f'{r.max_abs:.1e}' if r is not ref else '0', f'{100 * r.label_agreement:.3f} %'))
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]
    line = lambda cells: '  '.join(str(c).ljust(wd) if i == 0 else str(c).rjust(wd)  # noqa: E731
                                   for i, (c, wd) in enumerate(zip(cells, widths)))
    return '\n'.join([line(header), line(['-' * wd for wd in widths])] + [line(b) for b in body])
