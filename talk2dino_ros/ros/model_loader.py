"""The node's model loader: builds a model whenever the model parameters change (also at start).

A load runs on its own thread and the new model is swapped in atomically; a failed load keeps the
previous model and logs why. The node never exits because of missing or bad weights: it keeps
publishing diagnostics and accepts a corrected path at runtime, and a missing file that appears later
(``fetch_weights`` run after the node started) is noticed by polling.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from talk2dino_ros import catalog
from talk2dino_ros.ros.engine_host import EngineHost, LegendState
from talk2dino_ros.ros.parameters import NodeSettings

#: how often a missing weight file is looked for again (s)
MISSING_FILE_POLL_S = 2.0


def ignored_switches_note(settings: NodeSettings) -> str:
    """A warning naming the on/off parameters that are on but mean nothing to the method (clip_dinoiser has
    no cleaning and no PAMR), or '' when there are none."""
    spec = catalog.METHODS.get(settings.method)
    if spec is None:
        return ''
    on = [name for name in spec.ignored_options if name in ('bg_clean', 'pamr') and bool(getattr(settings, name))]
    if not on:
        return ''
    return (f'{" and ".join(on)} {"is" if len(on) == 1 else "are"} on, but {settings.method} has no such step '
            f'({spec.ignored_why}): ignored')


class ModelLoader:
    """Loads models for a node. ``legend_installed`` is told when a load brought a new legend;
    ``vocabulary_topic`` names where a vocabulary is awaited (for the log); ``paths_settable`` says whether
    the node takes a corrected weight path by ``ros2 param set`` now (the log recommends only what works)."""

    def __init__(self, node: Any, host: EngineHost, settings: Callable[[], NodeSettings],
                 legend_installed: Callable[[LegendState], None], vocabulary_topic: Callable[[], str],
                 paths_settable: Callable[[], bool] = lambda: False) -> None:
        self._node, self._host, self._settings = node, host, settings
        self._legend_installed, self._vocabulary_topic = legend_installed, vocabulary_topic
        self._paths_settable = paths_settable
        self._logger = node.get_logger()
        #: set to ask the loop for a (re)load; also set to wake it for stopping
        self.reload = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """The loader loop, until ``stop`` is set (set :attr:`reload` too, to wake it)."""
        last_poll = 0.0
        while not stop.is_set():
            requested = self.reload.wait(timeout=0.5)
            if stop.is_set():
                break
            if not requested:
                now = time.monotonic()
                if now - last_poll < MISSING_FILE_POLL_S:
                    continue
                last_poll = now
                if not self._host.missing_files_appeared():
                    continue
            self.reload.clear()
            settings = self._settings()
            if self._host.needs_load(settings):
                self.load(settings)
            elif self._host.forget_failed_load():
                # the parameters are back to the running model's: its failed successor no longer matters
                self._logger.info('model parameters match the running model again; last load error cleared')

    def load(self, settings: NodeSettings) -> bool:
        """Load the model of ``settings`` now (blocking) and log what happened; True on success."""
        log = self._logger
        keep = ('keeping the previous model' if self._host.segmenter is not None else
                'the node stays up and publishes only diagnostics until a loadable weight path is set')
        if settings.allow_random_weights and not settings.missing_weight_files():
            log.warning('!!! allow_random_weights is true: checkpoints of test widths are accepted; with '
                        'random weights the output is meaningless. Use this only for tests and smoke runs. !!!')
        if not settings.missing_weight_files():
            log.info(f'loading the {settings.method} model ({settings.variant}, device {settings.device}) ...')
        outcome = self._host.load(settings, self._node.get_fully_qualified_name(), self._paths_settable())
        if not outcome.ok:
            if outcome.missing:
                log.error(f'{outcome.error}; {outcome.detail}; {keep}')
            else:
                log.error(f'could not load the {settings.method} model: '
                          f'{outcome.error.removeprefix("model load failed: ")}; {keep}'
                          + (f'\n{outcome.detail}' if outcome.detail else ''))
            return False
        if outcome.state is not None:
            self._legend_installed(outcome.state)
        note = ignored_switches_note(settings)
        if note:
            log.warning(note)
        log.info(f'model ready: {settings.method}/{settings.variant} on {self._host.device} in '
                 f'{outcome.seconds:.1f} s' + ('' if self._host.names else
                                               '; waiting for a vocabulary on ' + self._vocabulary_topic()))
        return True
