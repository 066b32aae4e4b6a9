"""The node's engine host: the loaded model and the vocabulary/legend state it labels frames with.

It never logs, publishes or calls back into the node: every method returns what happened (or raises) and
the node decides what to log and publish. Thread safety: model and vocabulary changes are serialised by
one lock; the current :class:`LegendState` is swapped in with one attribute store, so a reader (the
worker) sees the old or the new state, never a mix.
"""
from __future__ import annotations

import gc
import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from talk2dino_ros import catalog
from talk2dino_ros.errors import Talk2DinoError
from talk2dino_ros.outputs.colors import class_colors
from talk2dino_ros.ros.outputs import mask_topic_names
from talk2dino_ros.ros.parameters import NodeSettings, fetch_hint

#: builds a ready segmenter (see talk2dino_ros.model.segmenter) from the node's parameters
SegmenterFactory = Callable[[NodeSettings], Any]


def inference_options(settings: NodeSettings):
    """The engine's InferenceOptions for the node's parameters (threshold <= 0: no background class)."""
    from talk2dino_ros.model.types import InferenceOptions

    threshold = float(settings.background_threshold)
    return InferenceOptions(background=threshold > 0.0,
                            background_threshold=threshold if threshold > 0.0 else 0.0,
                            bg_clean=bool(settings.bg_clean), pamr=bool(settings.pamr))


def default_segmenter_factory(settings: NodeSettings):
    """``Segmenter.from_config`` with a config built from the node's parameters."""
    from talk2dino_ros.model.segmenter import Segmenter, SegmenterConfig

    config = SegmenterConfig(
        method=settings.method, variant=settings.variant, weights=settings.weights(),
        device=settings.device, fp16=bool(settings.fp16), backend=settings.backend, precision=settings.precision,
        exported_model=os.path.expanduser(settings.exported_model or ''), mode=settings.mode,
        resolution=int(settings.resolution), options=inference_options(settings),
        allow_random_weights=bool(settings.allow_random_weights))
    return Segmenter.from_config(config)


@dataclass(frozen=True)
class LegendState:
    """Everything a frame needs, captured once per frame: model, encoded vocabulary, options, colours."""

    version: int
    names: Tuple[str, ...]
    vocabulary: Any              # talk2dino_ros.model.types.Vocabulary encoded by `segmenter`
    segmenter: Any
    options: Any                 # InferenceOptions
    colors: np.ndarray           # uint8 [N + 1, 3], row 0 = background
    method: str
    background_threshold: float
    mask_topics: Dict[str, int] = field(default_factory=dict)  # topic token -> class id

    @property
    def class_names(self) -> Tuple[str, ...]:
        return ('background',) + self.names


@dataclass(frozen=True)
class LoadOutcome:
    """What a model load did. ``error`` is one line ('' on success); ``detail`` adds the how-to-fix
    (missing files) or the traceback (an unexpected exception); ``state`` is the legend installed with
    the new model (None without a vocabulary)."""

    ok: bool
    error: str = ''
    detail: str = ''
    missing: bool = False
    state: Optional[LegendState] = None
    seconds: float = 0.0


@dataclass(frozen=True)
class VocabularyOutcome:
    """What a vocabulary change did: ``state`` is the new legend (None when only stored or refused)."""

    ok: bool
    message: str = ''
    state: Optional[LegendState] = None


class EngineHost:
    """Owns the segmenter, the vocabulary in use and the current :class:`LegendState`."""

    def __init__(self, factory: Optional[SegmenterFactory] = None) -> None:
        self._factory = factory or default_segmenter_factory
        self._lock = threading.RLock()           # serialises vocabulary / model changes
        self._segmenter: Any = None
        self._model_method = ''
        self._model_key: Optional[tuple] = None
        self._model_error = 'loading'            # why no model runs ('' once one does)
        self._load_error = ''                    # why the last load failed ('' after a success)
        self._model_device = ''
        self._model_label = ''
        self._failed_missing: List[str] = []
        self._names: Tuple[str, ...] = ()
        self._state: Optional[LegendState] = None
        self._version = 0
        self._generation = 0                     # bumped by release(): a load started before is dropped

    # ------------------------------------------------------------------ read-only views
    @property
    def segmenter(self) -> Any:
        """The model in use (None before the first successful load and after :meth:`release`)."""
        return self._segmenter

    @property
    def state(self) -> Optional[LegendState]:
        """The legend frames are labelled with now (None before model and vocabulary exist)."""
        return self._state

    @property
    def names(self) -> Tuple[str, ...]:
        """The vocabulary in use, or the one waiting for a model."""
        return self._names

    @property
    def model_error(self) -> str:
        """Why no model is running ('' when one is)."""
        return self._model_error

    @property
    def load_error(self) -> str:
        """Why the last model load failed ('' when it succeeded)."""
        return self._load_error

    @property
    def device(self) -> str:
        return self._model_device

    @property
    def label(self) -> str:
        """method/variant of the running model ('' without one)."""
        return self._model_label

    # ------------------------------------------------------------------ model
    def needs_load(self, settings: NodeSettings) -> bool:
        """True when ``settings`` ask for another model than the one running (or none runs)."""
        return self._segmenter is None or settings.model_key() != self._model_key

    def missing_files_appeared(self) -> bool:
        """After a load failed for missing files: have they all appeared since (worth a retry)?"""
        paths = self._failed_missing
        return bool(paths) and all(os.path.isfile(os.path.expanduser(p)) for p in paths)

    def forget_failed_load(self) -> bool:
        """Clear the error of a failed load while a model runs (its parameters were set back); True if one
        was cleared."""
        with self._lock:
            if self._segmenter is None or not self._load_error:
                return False
            self._load_error = ''
            self._failed_missing = []
            return True

    def load(self, settings: NodeSettings, node_name: str = 'talk2dino', paths_settable: bool = False,
             ) -> LoadOutcome:
        """Build the model ``settings`` ask for and swap it in with the current vocabulary.

        A failed load keeps the previous model; the outcome says why. For missing files it also says how to
        give the path: ``ros2 param set <node_name> ...`` only where the node accepts that now
        (``paths_settable``), a start parameter otherwise.
        """
        missing = settings.missing_weight_files()
        if missing:
            files = ', '.join(f'{param}={path!r}' if path else f'{param} (empty; no published file for '
                              f'{settings.method}/{settings.variant})' for param, path in missing)
            # poll for the files (fetch_weights may run after the node started) when they have a path
            self._failed_missing = [path for _, path in missing] if all(p for _, p in missing) else []
            error = f'weight file not found: {files}'
            self._set_load_error(error)
            how = (catalog.unpublished_hint(settings.method, settings.variant) if not all(p for _, p in missing)
                   else fetch_hint(settings.method, settings.variant))  # nothing to download: say how to make it
            param = missing[0][0]
            where = (f'e.g. ros2 param set {node_name} {param} /path/to/file' if paths_settable else
                     f'e.g. start the node with -p {param}:=/path/to/file; paths are fixed while it runs '
                     'unless it starts with allow_runtime_weight_changes:=true')
            return LoadOutcome(False, error, missing=True, detail=f'{how} ({where})')
        self._failed_missing = []
        started = time.perf_counter()
        generation = self._generation
        try:
            segmenter = self._factory(settings)
            with self._lock:
                if generation != self._generation:  # released while loading (lifecycle cleanup)
                    return LoadOutcome(False, 'model load dropped: the model was released while it loaded')
                self._apply_engine_settings(segmenter, settings)
                state = (self._build_state(segmenter, settings.method, self._names, settings)
                         if self._names else None)
                self._segmenter = segmenter
                self._model_method = settings.method
                self._model_key = settings.model_key()
                self._model_error = self._load_error = ''
                self._model_device = str(getattr(segmenter, 'device', settings.device))
                self._model_label = catalog.describe(settings.method, settings.variant)
                self._install(state)
        except Talk2DinoError as exc:
            error = f'model load failed: {exc}'
            self._set_load_error(error)
            return LoadOutcome(False, error)
        except Exception as exc:  # a bug or an odd file must not take the node down
            error = f'model load failed: {type(exc).__name__}: {exc}'
            self._set_load_error(error)
            return LoadOutcome(False, error, detail=traceback.format_exc())
        return LoadOutcome(True, state=state, seconds=time.perf_counter() - started)

    def _set_load_error(self, why: str) -> None:
        self._load_error = why
        if self._segmenter is None:
            self._model_error = why

    def apply_engine_settings(self, settings: NodeSettings) -> Optional[str]:
        """Give the running model the mode/resolution of ``settings``; why not, or None when done."""
        with self._lock:
            if self._segmenter is None:
                return None
            return self._apply_engine_settings(self._segmenter, settings)

    @staticmethod
    def _apply_engine_settings(segmenter: Any, settings: NodeSettings) -> Optional[str]:
        try:
            segmenter.with_options(mode=settings.mode, resolution=int(settings.resolution))
        except (Talk2DinoError, TypeError, ValueError) as exc:
            return f'could not change mode/resolution: {exc}'
        return None

    def release(self, why: str = 'model released') -> bool:
        """Drop the model and its legend, freeing their memory (GPU memory too); True if one was loaded.

        The vocabulary names are kept, so the next :meth:`load` labels with them again.
        """
        with self._lock:
            self._generation += 1
            segmenter, self._segmenter = self._segmenter, None
            self._state = None
            self._model_key = None
            self._model_error, self._load_error = why, ''
            self._model_device = self._model_label = ''
        if segmenter is None:
            return False
        device = getattr(segmenter, 'device', None)
        del segmenter
        gc.collect()  # the model may sit in reference cycles; free it before asking CUDA for the memory
        if getattr(device, 'type', str(device)) == 'cuda':
            import torch
            torch.cuda.empty_cache()
        return True

    # ------------------------------------------------------------------ vocabulary / legend
    def set_names(self, names: Sequence[str]) -> None:
        """Store names to label with once a model is loaded (no encoding now)."""
        with self._lock:
            self._names = tuple(names)

    def apply_vocabulary(self, names: Optional[Sequence[str]], settings: NodeSettings) -> VocabularyOutcome:
        """Use these (already validated) names, or rebuild the legend from the current ones (``None``).

        Without a model the names are kept for when it is loaded (``ok`` with a message saying so).
        """
        with self._lock:
            target = tuple(names) if names is not None else self._names
            if not target:
                return VocabularyOutcome(False, 'no vocabulary set yet')
            state = self._state
            if (names is not None and state is not None and state.names == target
                    and state.segmenter is self._segmenter):
                # the same names again (a re-published latched topic, a repeated service call): no new
                # legend version, no re-published ClassInfo, nothing encoded
                return VocabularyOutcome(True, 'vocabulary unchanged')
            if self._segmenter is None:
                self._names = target
                return VocabularyOutcome(
                    True, f'model not loaded ({self._model_error}); the vocabulary is used once it is')
            try:
                state = self._build_state(self._segmenter, self._model_method, target, settings)
            except Exception as exc:  # InputError, or an engine bug: keep the current legend
                return VocabularyOutcome(False, f'vocabulary not applied: {type(exc).__name__}: {exc}')
            self._names = target
            self._install(state)
            return VocabularyOutcome(True, state=state)

    def _build_state(self, segmenter: Any, method: str, names: Tuple[str, ...],
                     settings: NodeSettings) -> LegendState:
        """Encode ``names`` with ``segmenter`` under the options of ``settings`` (raises Talk2DinoError)."""
        options = inference_options(settings)
        # one call: a flipped background option encodes the new names once (not the old ones first)
        segmenter.with_options(background=options.background,
                               background_threshold=options.background_threshold,
                               bg_clean=options.bg_clean, pamr=options.pamr, vocabulary_names=list(names))
        vocabulary = segmenter.vocabulary
        try:
            colors = class_colors(names, settings.color_overrides)
        except ValueError:
            colors = class_colors(names)
        return LegendState(
            version=self._version + 1, names=tuple(names), vocabulary=vocabulary, segmenter=segmenter,
            options=options, colors=colors, method=method,
            background_threshold=float(settings.background_threshold),
            mask_topics=mask_topic_names(names))

    def _install(self, state: Optional[LegendState]) -> None:
        if state is not None:
            self._version = state.version
        self._state = state  # one attribute store: the worker sees the old or the new state, never a mix
