"""Per-stage wall times of one segmentation call, optionally synchronised with the device.

Every result carries ``preprocess``, ``model``, ``postprocess`` and ``total`` (host wall time; on CUDA
the device may still be working when a host-side stage ends). With ``enabled`` the timer synchronises
the device at each stage boundary, so the sub-stages (``backbone``: backbone + patch-grid scores and
cleaning; ``windows``: window maps, PAMR and merge; ``labels``: argmax at the output size) are real device
times. Synchronising costs a little throughput: the benchmark turns it on, the node does not.
"""
from __future__ import annotations

import time
from typing import Dict

import torch


class StageTimer:
    """Factory of per-call timers for one device; ``enabled`` switches device synchronisation on."""

    def __init__(self, device: torch.device, enabled: bool = False):
        self.device = device
        self.enabled = enabled

    def start(self) -> '_Run':
        return _Run(self.device if (self.enabled and self.device.type == 'cuda') else None)


class _Run:
    def __init__(self, sync_device):
        self._sync_device = sync_device
        self._start = self._last = self._now()
        self.stages: Dict[str, float] = {}

    def _now(self) -> float:
        if self._sync_device is not None:
            torch.cuda.synchronize(self._sync_device)
        return time.perf_counter()

    def mark(self, stage: str) -> None:
        """Charge the time since the previous mark to ``stage`` (summed when a stage repeats)."""
        now = self._now()
        self.stages[stage] = self.stages.get(stage, 0.0) + now - self._last
        self._last = now

    def finish(self) -> Dict[str, float]:
        out = dict(self.stages)
        out['model'] = out.get('backbone', 0.0) + out.get('windows', 0.0)
        out['postprocess'] = out.get('labels', 0.0)
        out.setdefault('preprocess', 0.0)
        out['total'] = self._now() - self._start
        return out
