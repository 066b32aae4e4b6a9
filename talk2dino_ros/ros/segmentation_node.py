"""The ROS 2 segmentation node: camera images + a dynamic vocabulary -> labels, legend, masks, maps.

Threads and who owns what:
* executor thread(s): callbacks only store things. The image callback puts the message into a one-slot
  mailbox (a newer frame replaces an untaken one, counted as dropped); vocabulary / parameter / service
  callbacks validate, encode the new class names with the current model and swap in a new immutable
  :class:`LegendState` (the segmenter's ``set_vocabulary`` is atomic and only encodes uncached names).
* worker thread: takes the latest frame, captures the current LegendState **once**, publishes that
  state's ClassInfo if it is not the last one it published, runs the engine and publishes every output
  of the frame. All per-frame outputs and the ClassInfo come from this one thread, in order, so the
  labels of a frame always belong to the most recently published ClassInfo (same vocabulary_version).
* loader thread: builds a model whenever the model parameters change (also at start), then swaps it in
  atomically; a failed load keeps the previous model and logs why. The node never exits because of
  missing or bad weights: it keeps publishing diagnostics and accepts a corrected path at runtime.
"""
from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String

from talk2dino_ros.errors import Talk2DinoError
from talk2dino_ros.ros import outputs
from talk2dino_ros.outputs.colors import class_colors
from talk2dino_ros.ros.image_conversion import ImageConversionError, decode_compressed, to_rgb8
from talk2dino_ros.ros.label_info import make_label_info, vision_msgs_available
from talk2dino_ros.ros.mailbox import LatestMailbox
from talk2dino_ros.outputs.overlay import make_overlay
from talk2dino_ros.ros.parameters import (
    SPECS, WEIGHT_PARAM_NAMES, NodeSettings, fetch_hint, current_values, declare_parameters, group_of, validate,
    validate_changes)
from talk2dino_ros.model.types import confidence_mono8
from talk2dino_ros.ros.qos import diagnostics_qos, image_input_qos, latched_qos, legend_qos, output_qos
from talk2dino_ros.ros.stats import FrameStats
from talk2dino_ros.ros.vocabulary import ParsedVocabulary, parse_vocabulary

VOCAB_TOPIC = '/t2d/vocab'
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
        device=settings.device, fp16=bool(settings.fp16), mode=settings.mode,
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


@dataclass
class _Frame:
    msg: Any
    received: float  # time.perf_counter() at the callback
    compressed: bool


class SegmentationNode(Node):
    """Open-vocabulary segmentation of a camera stream (see docs/node_interfaces.md)."""

    def __init__(self, node_name: str = 'talk2dino', *, segmenter_factory: Optional[SegmenterFactory] = None,
                 **node_kwargs) -> None:
        super().__init__(node_name, **node_kwargs)
        self._factory = segmenter_factory or default_segmenter_factory
        declare_parameters(self)
        self._start_fixes: Dict[str, Any] = {}   # read-only parameters whose start value was invalid
        self._fix_invalid_start_values()
        self._settings = self._read_settings()

        self._lock = threading.RLock()           # serialises vocabulary / model changes
        self._segmenter: Any = None
        self._model_method = ''
        self._model_key: Optional[tuple] = None
        self._model_error = 'loading'          # why no model runs ('' once one does)
        self._load_error = ''                  # why the last load failed ('' after a success)
        self._model_device = ''
        self._model_label = ''
        self._failed_missing: List[str] = []
        self._names: Tuple[str, ...] = ()
        self._state: Optional[LegendState] = None
        self._version = 0
        self._syncing_param = False
        self._last_frame_id = ''
        self._mailbox = LatestMailbox()
        self.stats = FrameStats()
        self._stop = threading.Event()
        self._reload = threading.Event()

        self._make_interfaces()
        initial = self._settings.vocabulary_names
        if initial:
            parsed = parse_vocabulary(list(initial))
            self._names = parsed.accepted
            self._log_parse('vocabulary parameter', parsed)

        self._worker = threading.Thread(target=self._work, name='t2d_worker', daemon=True)
        self._loader = threading.Thread(target=self._load_loop, name='t2d_loader', daemon=True)
        self._worker.start()
        self._loader.start()
        self._reload.set()

    # ------------------------------------------------------------------ setup
    def _fix_invalid_start_values(self) -> None:
        """Invalid values from a params file or the command line: log why and use the default."""
        values = current_values(self)
        for name, value in values.items():
            if name in WEIGHT_PARAM_NAMES:
                continue  # the loader reports missing files with the fetch hint
            reason = validate(name, value, values) if value is not None else None
            if reason is None:
                continue
            spec = SPECS[name]
            if spec.read_only:  # cannot be set any more: use the default behind the parameter's back
                self.get_logger().error(f'{reason}; using the default {spec.default!r}')
                self._start_fixes[name] = spec.default
            elif spec.default is None:
                self.get_logger().error(f'{reason}; starting without it')
                self.set_parameters([Parameter(name, Parameter.Type.STRING_ARRAY, [])])
            else:
                self.get_logger().error(f'{reason}; using the default {spec.default!r}')
                self.set_parameters([Parameter(name, value=spec.default)])

    def _read_settings(self) -> NodeSettings:
        return NodeSettings({**current_values(self), **self._start_fixes})

    def _make_interfaces(self) -> None:
        s = self._settings
        self._labels_pub = self.create_publisher(Image, '~/labels', output_qos())
        self._confidence_pub = self.create_publisher(Image, '~/confidence', output_qos())
        self._confidence8_pub = self.create_publisher(Image, '~/confidence_mono8', output_qos())
        self._background_pub = self.create_publisher(Image, '~/background', output_qos())
        self._overlay_pub = self.create_publisher(Image, '~/overlay', output_qos())
        from talk2dino_ros.msg import ClassInfo, ClassMasks
        from talk2dino_ros.srv import SetVocabulary
        self._info_pub = self.create_publisher(ClassInfo, '~/class_info', legend_qos())
        self._masks_pub = self.create_publisher(ClassMasks, '~/masks', output_qos())
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', diagnostics_qos())
        # Nav2 semantic-segmentation contract: vision_msgs/LabelInfo beside the legend, where installed
        self._label_info_pub = None
        if vision_msgs_available():
            from vision_msgs.msg import LabelInfo
            self._label_info_pub = self.create_publisher(LabelInfo, '~/label_info', legend_qos())
        # ~/mask/<class> publishers are created/destroyed on the executor thread only (a guard condition the
        # worker triggers): destroying them while the executor builds its wait set invalidates handles
        self._mask_pubs: Dict[str, Any] = {}
        self._mask_pubs_lock = threading.Lock()
        self._mask_guard = self.create_guard_condition(self._on_mask_topics_changed)

        qos = image_input_qos(s.image_reliability, int(s.image_depth))
        if s.compressed_input:
            self._image_sub = self.create_subscription(
                CompressedImage, 'image/compressed', lambda m: self._on_image(m, True), qos)
        else:
            self._image_sub = self.create_subscription(Image, 'image', lambda m: self._on_image(m, False), qos)
        self._vocab_sub = self.create_subscription(String, VOCAB_TOPIC, self._on_vocab_topic, latched_qos())
        self._vocab_srv = self.create_service(SetVocabulary, '~/set_vocabulary', self._on_set_vocabulary)
        self.add_on_set_parameters_callback(self._on_validate_parameters)
        self.add_post_set_parameters_callback(self._on_parameters_set)
        self._diag_timer = self.create_timer(float(s.diagnostics_period), self._publish_diagnostics)

    # ------------------------------------------------------------------ public helpers
    @property
    def legend_state(self) -> Optional[LegendState]:
        """The legend frames are labelled with now (None before model and vocabulary exist)."""
        return self._state

    @property
    def model_error(self) -> str:
        """Why no model is running ('' when one is)."""
        return self._model_error

    @property
    def load_error(self) -> str:
        """Why the last model load failed ('' when it succeeded)."""
        return self._load_error

    @property
    def frames_dropped(self) -> int:
        return self._mailbox.dropped

    def destroy_node(self) -> None:
        self._stop.set()
        self._reload.set()
        self._mailbox.close()
        for thread in (self._worker, self._loader):
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=10.0)
        super().destroy_node()

    # ------------------------------------------------------------------ inputs
    def _on_image(self, msg: Any, compressed: bool) -> None:
        self.stats.received.add()
        self._mailbox.put(_Frame(msg, time.perf_counter(), compressed))

    def _on_vocab_topic(self, msg: String) -> None:
        parsed = parse_vocabulary(msg.data)
        self._log_parse(VOCAB_TOPIC, parsed)
        if parsed.accepted:
            ok, why = self.apply_vocabulary(parsed.accepted)
            if not ok:
                self.get_logger().error(f'{VOCAB_TOPIC}: {why}')

    def _on_set_vocabulary(self, request, response):
        parsed = parse_vocabulary(list(request.names))
        self._log_parse('~/set_vocabulary', parsed)
        response.rejected = [r.name for r in parsed.rejected]
        if not parsed.accepted:
            response.success = False
            response.message = f'vocabulary unchanged: no usable class name ({parsed.summary()})'
            response.accepted = list(self._names)
            return response
        ok, why = self.apply_vocabulary(parsed.accepted)
        response.success = ok
        response.accepted = list(self._names)
        response.message = parsed.summary() + (f'; {why}' if why else '')
        return response

    def _log_parse(self, source: str, parsed: ParsedVocabulary) -> None:
        if parsed.rejected or not parsed.accepted:
            self.get_logger().warning(f'{source}: {parsed.summary()}')
        if not parsed.accepted:
            self.get_logger().error(f'{source}: no usable class name; keeping the current vocabulary')

    # ------------------------------------------------------------------ parameters
    def _on_validate_parameters(self, params: List[Parameter]) -> SetParametersResult:
        if self._syncing_param:
            return SetParametersResult(successful=True)
        reasons = validate_changes(params, current_values(self))
        if reasons:
            return SetParametersResult(successful=False, reason='; '.join(reasons))
        return SetParametersResult(successful=True)

    def _on_parameters_set(self, params: List[Parameter]) -> None:
        self._settings = self._read_settings()
        if self._syncing_param:
            return
        names = {p.name for p in params}
        groups = group_of(names)
        if 'model' in groups:
            self._reload.set()
        if 'engine' in groups:
            with self._lock:
                if self._segmenter is not None:
                    self._apply_engine_settings(self._segmenter)
        if 'legend' in groups and ('vocabulary' in names or self._names):
            new_names = None
            if 'vocabulary' in names:
                parsed = parse_vocabulary(list(self._settings.vocabulary_names))
                self._log_parse('vocabulary parameter', parsed)
                new_names = parsed.accepted
            ok, why = self.apply_vocabulary(new_names, sync_parameter=False)
            if not ok:
                self.get_logger().error(f'parameter change not applied: {why}')

    def _apply_engine_settings(self, segmenter: Any) -> None:
        s = self._settings
        try:
            segmenter.with_options(mode=s.mode, resolution=int(s.resolution))
        except (Talk2DinoError, TypeError, ValueError) as exc:
            self.get_logger().error(f'could not change mode/resolution: {exc}')

    # ------------------------------------------------------------------ vocabulary / legend
    def apply_vocabulary(self, names: Optional[Sequence[str]] = None,
                         sync_parameter: bool = True) -> Tuple[bool, str]:
        """Use these (already validated) names, or rebuild the legend from the current ones.

        Returns (success, message). Without a model the names are kept for when it is loaded.
        """
        with self._lock:
            target = tuple(names) if names is not None else self._names
            if not target:
                return False, 'no vocabulary set yet'
            if self._segmenter is None:
                self._names = target
                why = f'model not loaded ({self._model_error}); the vocabulary is used once it is'
                result: Tuple[bool, str] = (True, why)
            else:
                try:
                    state = self._build_state(self._segmenter, self._model_method, target)
                except Exception as exc:  # InputError, or an engine bug: keep the current legend
                    return False, f'vocabulary not applied: {type(exc).__name__}: {exc}'
                self._names = target
                self._install_state(state)
                result = (True, '')
        if names is not None and sync_parameter:
            self._sync_vocabulary_parameter(target)
        return result

    def _build_state(self, segmenter: Any, method: str, names: Tuple[str, ...]) -> LegendState:
        """Encode ``names`` with ``segmenter`` under the current options (raises Talk2DinoError)."""
        s = self._settings
        options = inference_options(s)
        segmenter.with_options(background=options.background,
                               background_threshold=options.background_threshold,
                               bg_clean=options.bg_clean, pamr=options.pamr)
        vocabulary = segmenter.set_vocabulary(list(names))
        try:
            colors = class_colors(names, s.color_overrides)
        except ValueError:
            colors = class_colors(names)
        return LegendState(
            version=self._version + 1, names=tuple(names), vocabulary=vocabulary, segmenter=segmenter,
            options=options, colors=colors, method=method,
            background_threshold=float(s.background_threshold),
            mask_topics=outputs.mask_topic_names(names))

    def _install_state(self, state: LegendState) -> None:
        self._version = state.version
        self._state = state  # one attribute store: the worker sees the old or the new state, never a mix
        self._mailbox.poke()
        self.get_logger().info(
            f'vocabulary v{state.version} ({state.method}): {len(state.names)} classes: '
            + ', '.join(state.names[:20]) + (' ...' if len(state.names) > 20 else ''))

    def _sync_vocabulary_parameter(self, names: Sequence[str]) -> None:
        """Keep the 'vocabulary' parameter equal to the vocabulary in use (after a topic/service change)."""
        self._syncing_param = True
        try:
            self.set_parameters([Parameter('vocabulary', Parameter.Type.STRING_ARRAY, list(names))])
        finally:
            self._syncing_param = False

    # ------------------------------------------------------------------ model loading
    def _load_loop(self) -> None:
        last_poll = 0.0
        while not self._stop.is_set():
            requested = self._reload.wait(timeout=0.5)
            if self._stop.is_set():
                break
            if not requested:
                # a missing file may appear later (fetch_weights run after the node started)
                now = time.monotonic()
                if not self._failed_missing or now - last_poll < 2.0:
                    continue
                last_poll = now
                if not all(os.path.isfile(os.path.expanduser(p)) for p in self._failed_missing):
                    continue
            self._reload.clear()
            settings = self._settings
            if settings.model_key() == self._model_key and self._segmenter is not None:
                continue
            self._load(settings)

    def _load(self, settings: NodeSettings) -> None:
        log = self.get_logger()
        keep = ('keeping the previous model' if self._segmenter is not None else
                'the node stays up and publishes only diagnostics until a loadable weight path is set')
        missing = settings.missing_weight_files()
        if missing:
            files = ', '.join(f'{param}={path!r}' if path else f'{param} (empty; no published file for '
                              f'{settings.method}/{settings.variant})' for param, path in missing)
            # poll for the files (fetch_weights may run after the node started) when they have a path
            self._failed_missing = [path for _, path in missing] if all(p for _, p in missing) else []
            self._set_load_error(f'weight file not found: {files}')
            log.error(f'weight file not found: {files}; {fetch_hint(settings.method, settings.variant)} '
                      f'(e.g. ros2 param set {self.get_fully_qualified_name()} {missing[0][0]} /path/to/file); '
                      f'{keep}')
            return
        self._failed_missing = []
        if settings.allow_random_weights:
            log.warning('!!! allow_random_weights is true: checkpoints of test widths are accepted; with '
                        'random weights the output is meaningless. Use this only for tests and smoke runs. !!!')
        started = time.perf_counter()
        log.info(f'loading the {settings.method} model ({settings.variant}, device {settings.device}) ...')
        try:
            segmenter = self._factory(settings)
            with self._lock:
                self._apply_engine_settings(segmenter)
                state = self._build_state(segmenter, settings.method, self._names) if self._names else None
                self._segmenter = segmenter
                self._model_method = settings.method
                self._model_key = settings.model_key()
                self._model_error = self._load_error = ''
                self._model_device = str(getattr(segmenter, 'device', settings.device))
                self._model_label = (f'{settings.method}/{settings.variant}' if settings.method == 'talk2dino'
                                     else settings.method)
                if state is not None:
                    self._install_state(state)
                else:
                    self._state = None
        except Talk2DinoError as exc:
            self._set_load_error(f'model load failed: {exc}')
            log.error(f'could not load the {settings.method} model: {exc}; {keep}')
            return
        except Exception as exc:  # a bug or an odd file must not take the node down
            self._set_load_error(f'model load failed: {type(exc).__name__}: {exc}')
            log.error(f'could not load the {settings.method} model: {type(exc).__name__}: {exc}; {keep}\n'
                      + traceback.format_exc())
            return
        log.info(f'model ready: {settings.method}/{settings.variant} on {self._model_device} in '
                 f'{time.perf_counter() - started:.1f} s' + ('' if self._names else
                                                            '; waiting for a vocabulary on ' + VOCAB_TOPIC))

    def _set_load_error(self, why: str) -> None:
        self._load_error = why
        if self._segmenter is None:
            self._model_error = why

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        published: Optional[LegendState] = None
        next_start = 0.0
        while not self._stop.is_set():
            self._mailbox.wait(timeout=0.5)
            if self._stop.is_set():
                break
            rate = float(self._settings.max_rate)
            if rate > 0 and self._mailbox.has_item():
                delay = next_start - time.perf_counter()
                if delay > 0 and self._stop.wait(delay):
                    break
            state = self._state  # captured once for the legend and the frame
            try:
                if state is not published and state is not None:
                    self._publish_legend(state)
                    published = state
                if state is not None:
                    self._sync_mask_publishers(state)
                frame = self._mailbox.take()
                if frame is None:
                    continue
                next_start = time.perf_counter() + (1.0 / rate if rate > 0 else 0.0)
                if state is None:
                    self.stats.skipped_not_ready += 1
                    continue
                self._process(frame, state)
            except Exception as exc:  # never let the worker die
                if not rclpy.ok(context=self.context):
                    break
                self.stats.failed_frames += 1
                self.stats.last_error = f'{type(exc).__name__}: {exc}'
                self.get_logger().error(f'frame failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}',
                                        throttle_duration_sec=5.0)

    def _publish_legend(self, state: LegendState) -> None:
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self._last_frame_id)
        self._info_pub.publish(outputs.class_info_msg(
            header, state.version, state.method, state.names, state.colors, state.background_threshold))
        if self._label_info_pub is not None:
            self._label_info_pub.publish(make_label_info(header, state.names, state.background_threshold))

    def _wanted_mask_topics(self, state: LegendState) -> set:
        limit = int(self._settings.mask_topics_limit) if self._settings.publish_masks else 0
        return set(list(state.mask_topics)[:limit])

    def _sync_mask_publishers(self, state: LegendState) -> None:
        """Ask the executor thread to create/destroy ~/mask/<class> publishers when the legend changed."""
        with self._mask_pubs_lock:
            current = set(self._mask_pubs)
        if self._wanted_mask_topics(state) != current:
            self._mask_guard.trigger()

    def _on_mask_topics_changed(self) -> None:
        """Executor thread: make the per-class mask publishers match the current legend."""
        state = self._state
        if state is None:
            return
        wanted = self._wanted_mask_topics(state)
        with self._mask_pubs_lock:
            for token in list(self._mask_pubs):
                if token not in wanted:
                    self.destroy_publisher(self._mask_pubs.pop(token))
            for token in wanted:
                if token not in self._mask_pubs:
                    self._mask_pubs[token] = self.create_publisher(Image, f'~/mask/{token}', output_qos())

    def _process(self, frame: _Frame, state: LegendState) -> None:
        msg = frame.msg
        try:
            rgb = decode_compressed(msg) if frame.compressed else to_rgb8(msg)
        except ImageConversionError as exc:
            self.stats.bad_frames += 1
            self.stats.last_error = str(exc)
            self.get_logger().error(f'image rejected: {exc}', throttle_duration_sec=5.0)
            return
        header = msg.header
        self._last_frame_id = header.frame_id
        started = time.perf_counter()
        try:
            result = state.segmenter.segment(rgb, vocabulary=state.vocabulary, options=state.options)
        except Talk2DinoError as exc:
            self.stats.failed_frames += 1
            self.stats.last_error = str(exc)
            self.get_logger().error(f'segmentation failed: {exc}', throttle_duration_sec=5.0)
            return
        inference_ms = (time.perf_counter() - started) * 1000.0
        labels = result.labels_with_background_zero()
        if labels.shape != rgb.shape[:2]:
            raise RuntimeError(f'engine returned labels {labels.shape} for an image {rgb.shape[:2]}')
        n = len(state.names)
        self._labels_pub.publish(outputs.label_image(labels, n, header))
        self.stats.latency_ms.add((time.perf_counter() - frame.received) * 1000.0)
        self.stats.inference_ms.add(inference_ms)
        self.stats.processed.add()

        if self._confidence_pub.get_subscription_count() > 0:
            self._confidence_pub.publish(outputs.float_image(result.confidence(), header))
        if self._confidence8_pub.get_subscription_count() > 0:
            self._confidence8_pub.publish(outputs.numpy_to_image(
                confidence_mono8(result.confidence()), 'mono8', header=header))
        if self._background_pub.get_subscription_count() > 0:
            self._background_pub.publish(outputs.float_image(result.background_probability(), header))
        settings = self._settings
        if settings.publish_masks:
            if self._masks_pub.get_subscription_count() > 0:
                self._masks_pub.publish(outputs.class_masks_msg(
                    header, state.version, state.names, labels, result.class_scores(), settings.mask_type))
            with self._mask_pubs_lock:
                for token, class_id in state.mask_topics.items():
                    pub = self._mask_pubs.get(token)
                    if pub is not None and pub.get_subscription_count() > 0:
                        pub.publish(outputs.numpy_to_image(outputs.binary_mask(labels, class_id), 'mono8',
                                                           header=header))
        if settings.publish_overlay and self._overlay_pub.get_subscription_count() > 0:
            overlay = make_overlay(rgb, labels, state.colors, state.class_names,
                                   alpha=float(settings.overlay_alpha))
            self._overlay_pub.publish(outputs.numpy_to_image(overlay, 'rgb8', header=header))

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        s = self._settings
        state = self._state
        status = DiagnosticStatus(name=f'{self.get_name()}: segmentation',
                                  hardware_id=self._model_device or s.device)
        if self._model_error:
            status.level, status.message = DiagnosticStatus.ERROR, self._model_error
        elif self._load_error:
            status.level, status.message = DiagnosticStatus.WARN, (
                f'running the previous model; {self._load_error}')
        elif state is None:
            status.level, status.message = DiagnosticStatus.WARN, f'no vocabulary: publish one on {VOCAB_TOPIC}'
        elif self.stats.received.rate() == 0.0:
            status.level, status.message = DiagnosticStatus.WARN, 'no images received'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'segmenting'
        values = dict(self.stats.summary(self._mailbox.dropped))
        values.update({
            'device': self._model_device or s.device,
            'model': self._model_label or 'none',
            'mode': f'{s.mode}@{s.resolution}',
            'vocabulary_version': str(state.version if state else 0),
            'classes': str(len(state.names) if state else 0),
            'model_error': self._model_error or self._load_error,
            'last_frame_error': self.stats.last_error,
        })
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)
