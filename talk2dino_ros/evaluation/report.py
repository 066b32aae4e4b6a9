"""Evaluation reports: JSON-safe values and the printed per-benchmark and summary tables."""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Dict, Optional, Sequence

import numpy as np

from talk2dino_ros import catalog


def finite_or_none(value: float) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) else value


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    return str(obj)


def format_number(value: Optional[float]) -> str:
    return '   -  ' if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f'{value:6.2f}'


#: the first line of every table made from random weights
RANDOM_WEIGHTS_HEADER = '!!! RANDOM WEIGHTS: these numbers mean nothing (tests and smoke runs only) !!!'


def partial_line(result: Dict[str, Any]) -> str:
    """'PARTIAL: ...' when the result covers only some images (Ctrl-C), else ''."""
    if not result.get('partial'):
        return ''
    return (f"PARTIAL ({result['benchmark']}): interrupted after {result['images_done']} of "
            f"{result['images_total']} images; the numbers cover those only")


def format_result(result: Dict[str, Any], random_weights: bool = False) -> str:
    """Per-class table and summary row (beside the published number) of one benchmark.

    ``random_weights`` puts :data:`RANDOM_WEIGHTS_HEADER` first and leaves out the comparison with the paper;
    a partial result (Ctrl-C) says so in its first lines.
    """
    proto = result['protocol']
    width = max(12, max(len(repr(n)) for n in result['IoU']))
    lines = [RANDOM_WEIGHTS_HEADER] if random_weights else []
    if result.get('partial'):
        lines.append(partial_line(result))
    lines += [f"{result['benchmark']}: {result['title']}",
             f"  method {proto['method']} {proto['variant']}, pamr {'on' if proto['pamr'] else 'off'}"
             + (f", background {proto['background_threshold']}" if proto['background']
                and catalog.background_is_threshold(proto['method']) else '')
             + f", {result['num_images']} images"
             + (f" ({len(result['skipped'])} skipped)" if result['skipped'] else ''),
             f"  {'class':<{width}}    IoU    Acc"]
    for name in result['IoU']:
        # repr shows names with odd whitespace exactly (ADE20K's 'bed ')
        shown = repr(name) if name != name.strip() else name
        lines.append(f"  {shown:<{width}} {format_number(result['IoU'][name])} {format_number(result['Acc'][name])}")
    paper = result['paper_mIoU']
    delta = '' if paper is None else f" ({result['mIoU'] - paper:+.2f})"
    if random_weights and paper is not None:
        delta = ' (no comparison: random weights)'
    elif result.get('partial') and paper is not None:
        delta = ' (no comparison: partial run)'
    lines.append(f"  {'summary':<{width}} mIoU {format_number(result['mIoU'])}  mAcc {format_number(result['mAcc'])}"
                 f"  aAcc {format_number(result['aAcc'])}  paper mIoU {format_number(paper)}{delta}")
    return '\n'.join(lines)


def format_summary(results: Sequence[Dict[str, Any]], random_weights: bool = False) -> str:
    lines = [RANDOM_WEIGHTS_HEADER] if random_weights else []
    lines += [f"{'benchmark':<12} {'mIoU':>6} {'paper':>6} {'images':>7} {'img/s':>7}"]
    for r in results:
        ips = r['timings']['images_per_s']
        lines.append(f"{r['benchmark']:<12} {format_number(r['mIoU'])} {format_number(r['paper_mIoU'])} "
                     f"{r['num_images']:>7} {ips if ips is None else round(ips, 2):>7}")
    return '\n'.join(lines)
