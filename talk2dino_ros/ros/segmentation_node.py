"""The ROS 2 segmentation node: camera images + a dynamic vocabulary -> labels, legend, masks, maps.

The jobs live in three places: :mod:`talk2dino_ros.ros.engine_host` holds the model and the legend state,
:mod:`talk2dino_ros.ros.frame_outputs` the publishers and the lazy fan-out, and this module the
callbacks, the worker loop and the diagnostics (:class:`SegmentationCore`, shared by the plain node
below and the lifecycle node).

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

import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from talk2dino_ros.errors import Talk2DinoError
from talk2dino_ros.outputs.frame import build_frame_outputs
from talk2dino_ros.ros.engine_host import (  # noqa: F401  (re-exported: the node's public names)
    EngineHost, LegendState, SegmenterFactory, default_segmenter_factory, inference_options)
from talk2dino_ros.ros.frame_outputs import FrameOutputs
from talk2dino_ros.ros.image_conversion import ImageConversionError, decode_compressed, to_rgb8
from talk2dino_ros.ros.mailbox import LatestMailbox
from talk2dino_ros.ros.parameters import (
    SPECS, WEIGHT_PARAM_NAMES, NodeSettings, current_values, declare_parameters, group_of, validate,
    validate_changes)
from talk2dino_ros.ros.qos import diagnostics_qos, image_input_qos, latched_qos
from talk2dino_ros.ros.stats import FrameStats
from talk2dino_ros.ros.vocabulary import ParsedVocabulary, parse_vocabulary

VOCAB_TOPIC = '/t2d/vocab'


@dataclass
class _Frame:
    msg: Any
    received: float  # time.perf_counter() at the callback
    compressed: bool


class SegmentationCore:
    """Callbacks, worker loop and diagnostics of the segmentation node, mixed into an rclpy node class.

    The concrete classes decide when the parts are made: the plain node makes them all at start, the
    lifecycle node in its transitions.
    """

    # ------------------------------------------------------------------ setup
    def _init_core(self, segmenter_factory: Optional[SegmenterFactory]) -> None:
        """Parameters, engine host and counters; no topics yet."""
        declare_parameters(self)
        self._start_fixes: Dict[str, Any] = {}   # read-only parameters whose start value was invalid
        self._fix_invalid_start_values()
        self._settings = self._read_settings()
        self._host = EngineHost(segmenter_factory)
        self._syncing_param = False
        self._mailbox = LatestMailbox()
        self.stats = FrameStats()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._threads: List[threading.Thread] = []
        self._outputs: Dict[str, FrameOutputs] = {}
        self._inputs: List[Any] = []
        initial = self._settings.vocabulary_names
        if initial:
            parsed = parse_vocabulary(list(initial))
            self._host.set_names(parsed.accepted)
            self._log_parse('vocabulary parameter', parsed)
        self.add_on_set_parameters_callback(self._on_validate_parameters)
        self.add_post_set_parameters_callback(self._on_parameters_set)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', diagnostics_qos())
        self._diag_timer = self.create_timer(float(self._settings.diagnostics_period), self._publish_diagnostics)

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

    def _create_outputs(self) -> None:
        """The output publishers (one namespace per camera)."""
        self._outputs = {'': FrameOutputs(self, '~')}

    def _create_inputs(self) -> None:
        """The camera and vocabulary subscriptions and the vocabulary service."""
        from talk2dino_ros.srv import SetVocabulary

        s = self._settings
        qos = image_input_qos(s.image_reliability, int(s.image_depth))
        if s.compressed_input:
            sub = self.create_subscription(CompressedImage, 'image/compressed',
                                           lambda m: self._on_image(m, True), qos)
        else:
            sub = self.create_subscription(Image, 'image', lambda m: self._on_image(m, False), qos)
        self._inputs = [
            sub,
            self.create_subscription(String, VOCAB_TOPIC, self._on_vocab_topic, latched_qos()),
            self.create_service(SetVocabulary, '~/set_vocabulary', self._on_set_vocabulary),
        ]

    def _start_threads(self, loader: bool = True) -> None:
        """Start the worker (and the model loader, which loads at once)."""
        self._stop.clear()
        self._threads = [threading.Thread(target=self._work, name='t2d_worker', daemon=True)]
        if loader:
            self._threads.append(threading.Thread(target=self._load_loop, name='t2d_loader', daemon=True))
            self._reload.set()
        for thread in self._threads:
            thread.start()

    def _stop_threads(self) -> None:
        self._stop.set()
        self._reload.set()
        self._mailbox.close()
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=10.0)
        self._threads = []

    # ------------------------------------------------------------------ public helpers
    @property
    def legend_state(self) -> Optional[LegendState]:
        """The legend frames are labelled with now (None before model and vocabulary exist)."""
        return self._host.state

    @property
    def segmenter(self) -> Any:
        """The model in use (None before one is loaded)."""
        return self._host.segmenter

    @property
    def model_error(self) -> str:
        """Why no model is running ('' when one is)."""
        return self._host.model_error

    @property
    def load_error(self) -> str:
        """Why the last model load failed ('' when it succeeded)."""
        return self._host.load_error

    @property
    def frames_dropped(self) -> int:
        return self._mailbox.dropped

    def outputs_for(self, camera: str = '') -> FrameOutputs:
        """The publishers of one camera ('' = the single camera of the default setup)."""
        return self._outputs[camera]

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
            response.accepted = list(self._host.names)
            return response
        ok, why = self.apply_vocabulary(parsed.accepted)
        response.success = ok
        response.accepted = list(self._host.names)
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
            why = self._host.apply_engine_settings(self._settings)
            if why:
                self.get_logger().error(why)
        if 'legend' in groups and ('vocabulary' in names or self._host.names):
            new_names = None
            if 'vocabulary' in names:
                parsed = parse_vocabulary(list(self._settings.vocabulary_names))
                self._log_parse('vocabulary parameter', parsed)
                new_names = parsed.accepted
            ok, why = self.apply_vocabulary(new_names, sync_parameter=False)
            if not ok:
                self.get_logger().error(f'parameter change not applied: {why}')

    # ------------------------------------------------------------------ vocabulary / legend
    def apply_vocabulary(self, names: Optional[Sequence[str]] = None,
                         sync_parameter: bool = True) -> Tuple[bool, str]:
        """Use these (already validated) names, or rebuild the legend from the current ones.

        Returns (success, message). Without a model the names are kept for when it is loaded.
        """
        outcome = self._host.apply_vocabulary(names, self._settings)
        if outcome.state is not None:
            self._legend_installed(outcome.state)
        if names is not None and sync_parameter and outcome.ok:
            self._sync_vocabulary_parameter(self._host.names)
        return outcome.ok, outcome.message

    def _legend_installed(self, state: LegendState) -> None:
        self._mailbox.poke()  # the worker publishes the new legend now, not with the next frame
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
                if now - last_poll < 2.0:
                    continue
                last_poll = now
                if not self._host.missing_files_appeared():
                    continue
            self._reload.clear()
            settings = self._settings
            if self._host.needs_load(settings):
                self.load_model(settings)

    def load_model(self, settings: NodeSettings) -> bool:
        """Load the model of ``settings`` now (blocking) and log what happened; True on success."""
        log = self.get_logger()
        keep = ('keeping the previous model' if self._host.segmenter is not None else
                'the node stays up and publishes only diagnostics until a loadable weight path is set')
        if settings.allow_random_weights and not settings.missing_weight_files():
            log.warning('!!! allow_random_weights is true: checkpoints of test widths are accepted; with '
                        'random weights the output is meaningless. Use this only for tests and smoke runs. !!!')
        if not settings.missing_weight_files():
            log.info(f'loading the {settings.method} model ({settings.variant}, device {settings.device}) ...')
        outcome = self._host.load(settings, self.get_fully_qualified_name())
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
        log.info(f'model ready: {settings.method}/{settings.variant} on {self._host.device} in '
                 f'{outcome.seconds:.1f} s' + ('' if self._host.names else
                                               '; waiting for a vocabulary on ' + VOCAB_TOPIC))
        return True

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
            state = self._host.state  # captured once for the legend and the frame
            try:
                if state is not published and state is not None:
                    self._publish_legend(state)
                    published = state
                self._sync_mask_publishers()
                frame = self._mailbox.take()
                if frame is None:
                    continue
                next_start = time.perf_counter() + (1.0 / rate if rate > 0 else 0.0)
                if state is None:
                    self.stats.skipped_not_ready += 1
                    continue
                self._process(frame, state, self._outputs[''])
            except Exception as exc:  # never let the worker die
                if not rclpy.ok(context=self.context):
                    break
                self.stats.failed_frames += 1
                self.stats.last_error = f'{type(exc).__name__}: {exc}'
                self.get_logger().error(f'frame failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}',
                                        throttle_duration_sec=5.0)

    def _publish_legend(self, state: LegendState) -> None:
        stamp = self.get_clock().now().to_msg()
        for out in self._outputs.values():
            out.publish_legend(state, stamp)

    def _sync_mask_publishers(self) -> None:
        """Make the ``mask/<class>`` publishers follow the current legend (on the executor thread)."""
        def wanted():
            return FrameOutputs.wanted_mask_tokens(self._host.state, self._settings)
        for out in self._outputs.values():
            out.sync_mask_publishers(wanted)

    def _process(self, frame: _Frame, state: LegendState, out: FrameOutputs) -> None:
        msg = frame.msg
        try:
            rgb = decode_compressed(msg) if frame.compressed else to_rgb8(msg)
        except ImageConversionError as exc:
            self.stats.bad_frames += 1
            self.stats.last_error = str(exc)
            self.get_logger().error(f'image rejected: {exc}', throttle_duration_sec=5.0)
            return
        header = msg.header
        out.last_frame_id = header.frame_id
        settings = self._settings
        wanted = out.wanted(state, settings)
        started = time.perf_counter()
        try:
            result = state.segmenter.segment(rgb, vocabulary=state.vocabulary, options=state.options)
        except Talk2DinoError as exc:
            self.stats.failed_frames += 1
            self.stats.last_error = str(exc)
            self.get_logger().error(f'segmentation failed: {exc}', throttle_duration_sec=5.0)
            return
        inference_ms = (time.perf_counter() - started) * 1000.0
        images = build_frame_outputs(
            result, wanted, rgb=rgb, colors=state.colors, names=state.names,
            overlay_alpha=float(settings.overlay_alpha), mask_ids=out.subscribed_mask_ids(state, settings),
            mask_type=settings.mask_type)
        out.publish(images, header, state, settings)
        self.stats.latency_ms.add((time.perf_counter() - frame.received) * 1000.0)
        self.stats.inference_ms.add(inference_ms)
        self.stats.processed.add()

    # ------------------------------------------------------------------ diagnostics
    def _diagnostic_level(self) -> Tuple[int, str]:
        state = self._host.state
        if self._host.model_error:
            return DiagnosticStatus.ERROR, self._host.model_error
        if self._host.load_error:
            return DiagnosticStatus.WARN, f'running the previous model; {self._host.load_error}'
        if state is None:
            return DiagnosticStatus.WARN, f'no vocabulary: publish one on {VOCAB_TOPIC}'
        if self.stats.received.rate() == 0.0:
            return DiagnosticStatus.WARN, 'no images received'
        return DiagnosticStatus.OK, 'segmenting'

    def _publish_diagnostics(self) -> None:
        s = self._settings
        host = self._host
        state = host.state
        status = DiagnosticStatus(name=f'{self.get_name()}: segmentation', hardware_id=host.device or s.device)
        status.level, status.message = self._diagnostic_level()
        values = dict(self.stats.summary(self._mailbox.dropped))
        values.update({
            'device': host.device or s.device,
            'model': host.label or 'none',
            'mode': f'{s.mode}@{s.resolution}',
            'vocabulary_version': str(state.version if state else 0),
            'classes': str(len(state.names) if state else 0),
            'model_error': host.model_error or host.load_error,
            'last_frame_error': self.stats.last_error,
        })
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


class SegmentationNode(SegmentationCore, Node):
    """Open-vocabulary segmentation of a camera stream; every part is made at start."""

    def __init__(self, node_name: str = 'talk2dino', *, segmenter_factory: Optional[SegmenterFactory] = None,
                 **node_kwargs) -> None:
        Node.__init__(self, node_name, **node_kwargs)
        self._init_core(segmenter_factory)
        self._create_outputs()
        self._create_inputs()
        self._start_threads()

    def destroy_node(self) -> None:
        self._stop_threads()
        super().destroy_node()
