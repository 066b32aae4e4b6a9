"""The ROS 2 segmentation node: camera images + a dynamic vocabulary -> labels, legend, masks, maps.

The jobs live in three places: :mod:`talk2dino_ros.ros.engine_host` holds the model and the legend state,
:mod:`talk2dino_ros.ros.frame_outputs` the publishers and the lazy fan-out, and this module the
callbacks, the worker loop and the diagnostics (:class:`SegmentationCore`, shared by the plain node
below and the lifecycle node).

Threads and who owns what:
* executor thread(s): callbacks only store things. The image callback puts the message into its camera's
  slot of the mailbox (a newer frame replaces an untaken one, counted as dropped); vocabulary / parameter / service
  callbacks validate, encode the new class names with the current model and swap in a new immutable
  :class:`LegendState` (the segmenter's ``set_vocabulary`` is atomic and only encodes uncached names).
* worker thread: takes the latest frame of every camera, captures the current LegendState **once**,
  publishes that state's ClassInfo if it is not the last one it published, runs the engine once for the
  frames whose outputs somebody reads (lazy: the others are counted, not segmented) and publishes the
  outputs that have subscribers. All per-frame outputs and the ClassInfo come from this one thread, in order, so the
  labels of a frame always belong to the most recently published ClassInfo (same vocabulary_version).
* loader thread: builds a model whenever the model parameters change (also at start), then swaps it in
  atomically; a failed load keeps the previous model and logs why. The node never exits because of
  missing or bad weights: it keeps publishing diagnostics and accepts a corrected path at runtime.
"""
from __future__ import annotations

import sys
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

from talk2dino_ros.errors import Talk2DinoError
from talk2dino_ros.outputs.banner import RANDOM_WEIGHTS_BANNER
from talk2dino_ros.outputs.frame import build_frame_outputs
from talk2dino_ros.ros.engine_host import (  # noqa: F401  (re-exported: the node's public names)
    EngineHost, LegendState, SegmenterFactory, default_segmenter_factory, inference_options)
from talk2dino_ros.ros.cameras import Camera, CameraConfigError, configure_cameras
from talk2dino_ros.ros.frame_outputs import FrameOutputs
from talk2dino_ros.ros.image_conversion import MAX_INPUT_SIDE, ImageConversionError, decode_compressed, to_rgb8
from talk2dino_ros.ros.mailbox import LatestMailbox
from talk2dino_ros.ros.node_control import ControlMixin
from talk2dino_ros.ros.parameters import (
    SPECS, WEIGHT_PARAM_NAMES, NodeSettings, current_values, declare_parameters, group_of, validate,
    validate_changes)
from talk2dino_ros.ros.qos import diagnostics_qos, image_input_qos
from talk2dino_ros.ros.stats import FrameStats
from talk2dino_ros.ros.vocabulary import ParsedVocabulary


#: the interpreter's thread switch interval the node runs with (Python's default is 5 ms)
GIL_SWITCH_INTERVAL_S = 0.0005


def responsive_gil() -> None:
    """Let callbacks get the GIL quickly while other threads run Python-heavy work.

    Vocabulary encoding (tokenising thousands of prompts) and the frame worker are long Python loops on
    their own threads; with the default 5 ms switch interval a parameter or service answer that needs the
    GIL several times waits behind them for 100 ms and more (measured on 2 cores). A shorter interval is
    process-wide, so it is only ever lowered, never raised.
    """
    if sys.getswitchinterval() > GIL_SWITCH_INTERVAL_S:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


@dataclass
class _Frame:
    msg: Any
    received: float  # time.perf_counter() at the callback
    compressed: bool
    camera: str = ''  # output namespace of the camera ('' = the single camera)


class SegmentationCore(ControlMixin):
    """Callbacks, worker loop and diagnostics of the segmentation node, mixed into an rclpy node class.

    The concrete classes decide when the parts are made: the plain node makes them all at start, the
    lifecycle node in its transitions.
    """

    # ------------------------------------------------------------------ setup
    def _init_core(self, segmenter_factory: Optional[SegmenterFactory]) -> None:
        """Parameters, engine host and counters; no topics yet."""
        responsive_gil()
        declare_parameters(self)
        self._start_fixes: Dict[str, Any] = {}   # read-only parameters whose start value was invalid
        self._fix_invalid_start_values()
        self._settings = self._read_settings()
        self._host = EngineHost(segmenter_factory)
        # thread id while the node itself sets 'vocabulary' (other threads' changes are still validated)
        self._syncing_param: Optional[int] = None
        self._sync_lock = threading.Lock()
        self._mailbox = LatestMailbox()
        self.stats = FrameStats()
        self._stop = threading.Event()
        self._reload = threading.Event()
        # held while a worker publishes and while a worker's stop event is set: a stopped worker (a
        # deactivated lifecycle node) never publishes again, and stopping it waits one publish at most
        self._publish_gate = threading.Lock()
        self._threads: List[threading.Thread] = []
        self._outputs: Dict[str, FrameOutputs] = {}
        self._inputs: List[Any] = []
        self._cameras: Tuple[Camera, ...] = self._configure_cameras()
        self._camera_frames: Dict[str, Dict[str, int]] = {
            c.name: {'received': 0, 'processed': 0} for c in self._cameras}
        self._enabled = True           # ~/enable (plain node) / active (lifecycle node)
        self._init_control()
        self._idle = False             # the latest frames were skipped: nothing read any output
        initial = self._settings.vocabulary_names
        if initial:
            parsed = self.parse_names(list(initial))
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

    def _configure_cameras(self) -> Tuple[Camera, ...]:
        """The cameras, their topics resolved as ROS subscribes to them; an unusable list (an invalid name,
        one topic written twice) is one error line and the single image topic."""
        s = self._settings
        try:
            return configure_cameras(s.image_topics, s.camera_names, resolve=self.resolve_topic_name)
        except CameraConfigError as exc:
            self.get_logger().error(f'{exc}; using the single image topic')
            return configure_cameras(None, None, resolve=self.resolve_topic_name)

    def _read_settings(self) -> NodeSettings:
        return NodeSettings({**current_values(self), **self._start_fixes})

    def _create_outputs(self) -> None:
        """The output publishers (one namespace per camera)."""
        self._outputs = {c.name: FrameOutputs(self, c.prefix) for c in self._cameras}

    def _create_inputs(self) -> None:
        """The camera and vocabulary subscriptions and the vocabulary service."""
        self._inputs = [*self._create_image_inputs(), *self._create_vocabulary_inputs()]

    def _create_image_inputs(self) -> List[Any]:
        """One image subscription per camera."""
        s = self._settings
        qos = image_input_qos(s.image_reliability, int(s.image_depth))
        subs = []
        for camera in self._cameras:
            if s.compressed_input:  # image_transport's convention: <topic>/compressed
                subs.append(self.create_subscription(
                    CompressedImage, f'{camera.topic}/compressed',
                    lambda m, c=camera.name: self._on_image(m, True, c), qos))
                self._watch_input(camera.name, subs[-1], qos, f'{camera.topic}/compressed')
            else:
                subs.append(self.create_subscription(
                    Image, camera.topic, lambda m, c=camera.name: self._on_image(m, False, c), qos))
                self._watch_input(camera.name, subs[-1], qos, camera.topic)
        return subs

    def _start_threads(self, loader: bool = True) -> None:
        """Start the worker (and the model loader, which loads at once)."""
        self._stop.clear()
        self._threads = [threading.Thread(target=self._work, name='t2d_worker', daemon=True)]
        if loader:
            self._threads.append(threading.Thread(target=self._load_loop, name='t2d_loader', daemon=True))
            self._reload.set()
        for thread in self._threads:
            thread.start()
        self._start_control()

    def _stop_threads(self, timeout: float = 3.0) -> None:
        """Stop the worker, loader and control threads, waiting at most ``timeout`` s in all: a frame, load
        or encoding in progress is not waited for beyond that (launch escalates to SIGTERM after 5 s;
        segment_node's entry point then leaves without tearing down the busy thread)."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._reload.set()
        self._mailbox.close()
        self._stop_control(timeout)
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
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

    @property
    def cameras(self) -> Tuple[Camera, ...]:
        """The inputs: one camera named '' by default, else one per entry of ``image_topics``."""
        return self._cameras

    @property
    def enabled(self) -> bool:
        """False while paused (``~/enable``): frames are counted, not segmented."""
        return self._enabled

    def set_enabled(self, enabled: bool) -> None:
        """Pause (False) or resume (True) the segmentation; legends and diagnostics keep going."""
        self._enabled = bool(enabled)
        self._mailbox.poke()

    def outputs_for(self, camera: Optional[str] = None) -> FrameOutputs:
        """The publishers of one camera (default: the first, i.e. the single camera of the default setup)."""
        return self._outputs[self._cameras[0].name if camera is None else camera]

    # ------------------------------------------------------------------ inputs
    def _on_image(self, msg: Any, compressed: bool, camera: str = '') -> None:
        self.stats.received.add()
        self._camera_frames[camera]['received'] += 1
        self._input_seen(camera)
        self._mailbox.put(_Frame(msg, time.perf_counter(), compressed, camera), key=camera)

    def _log_parse(self, source: str, parsed: ParsedVocabulary) -> None:
        if parsed.rejected or not parsed.accepted:
            self.get_logger().warning(f'{source}: {parsed.summary()}')
        if not parsed.accepted:
            self.get_logger().error(f'{source}: no usable class name; keeping the current vocabulary')

    # ------------------------------------------------------------------ parameters
    def _on_validate_parameters(self, params: List[Parameter]) -> SetParametersResult:
        if self._syncing_param == threading.get_ident():
            return SetParametersResult(successful=True)
        reasons = validate_changes(params, current_values(self))
        if reasons:
            return SetParametersResult(successful=False, reason='; '.join(reasons))
        return SetParametersResult(successful=True)

    def _on_parameters_set(self, params: List[Parameter]) -> None:
        self._settings = self._read_settings()
        if self._syncing_param == threading.get_ident():
            return
        names = {p.name for p in params}
        groups = group_of(names)
        if 'model' in groups:
            self._reload.set()
        if 'engine' in groups:
            self.submit_engine_settings()  # on the control thread: the executor never waits for the model
        if 'legend' in groups and ('vocabulary' in names or self._host.names):
            new_names = None
            if 'vocabulary' in names:
                parsed = self.parse_names(list(self._settings.vocabulary_names))
                self._log_parse('vocabulary parameter', parsed)
                new_names = parsed.accepted
                self._order.local_change()  # newer than a transient-local sample still held

            def done(outcome: Tuple[bool, str]) -> None:
                if not outcome[0]:
                    self.get_logger().error(f'parameter change not applied: {outcome[1]}')
            self.submit_vocabulary(new_names, sync_parameter=new_names is not None, done=done, coalesce=True)

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
        with self._sync_lock:
            self._syncing_param = threading.get_ident()
            try:
                self.set_parameters([Parameter('vocabulary', Parameter.Type.STRING_ARRAY, list(names))])
            finally:
                self._syncing_param = None

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
            elif self._host.forget_failed_load():
                # the parameters are back to the running model's: its failed successor no longer matters
                self.get_logger().info('model parameters match the running model again; last load error cleared')

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
                                               '; waiting for a vocabulary on ' + self.vocabulary_topic))
        return True

    # ------------------------------------------------------------------ worker
    def _work(self, stop: Optional[threading.Event] = None) -> None:
        """The worker loop, until ``stop`` (default: the node's stop event) is set."""
        stop = stop or self._stop
        published: Optional[LegendState] = None
        next_start = 0.0
        while not stop.is_set():
            self._mailbox.wait(timeout=0.5)
            if stop.is_set():
                break
            rate = float(self._settings.max_rate)
            if rate > 0 and self._mailbox.has_item():
                delay = next_start - time.perf_counter()
                if delay > 0 and stop.wait(delay):
                    break
            state = self._host.state  # captured once for the legend and the frame
            try:
                if state is not published and state is not None:
                    with self._publish_gate:
                        if stop.is_set():
                            break
                        self._publish_legend(state)
                    published = state
                self._sync_mask_publishers()
                frames = self._mailbox.take_all()  # the latest frame of each camera
                if not frames:
                    continue
                next_start = time.perf_counter() + (1.0 / rate if rate > 0 else 0.0)
                if state is None:
                    self.stats.skipped_not_ready += len(frames)
                    continue
                if not self._enabled:
                    self.stats.skipped_paused += len(frames)
                    continue
                self._process(list(frames.values()), state, stop)
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

    def _decode(self, frame: _Frame) -> Optional[Any]:
        """The frame as RGB uint8, or None when it is rejected (counted and logged)."""
        # sizes are checked from width x height or the compressed header before anything is decoded
        limits = dict(max_pixels=int(self._settings.max_input_pixels), max_side=MAX_INPUT_SIDE)
        try:
            return (decode_compressed(frame.msg, **limits) if frame.compressed
                    else to_rgb8(frame.msg, **limits))
        except ImageConversionError as exc:  # rejected input, never an engine failure
            self.stats.reject(exc.reason, str(exc))
            self.get_logger().error(f'image rejected: {exc}', throttle_duration_sec=5.0)
            return None

    @staticmethod
    def _segment(images: List[Any], state: LegendState) -> List[Any]:
        """One engine call for the latest frame of every camera (a batch when there are several)."""
        segmenter = state.segmenter
        if len(images) > 1 and hasattr(segmenter, 'segment_batch'):
            return list(segmenter.segment_batch(images, vocabulary=state.vocabulary, options=state.options))
        return [segmenter.segment(image, vocabulary=state.vocabulary, options=state.options) for image in images]

    def _process(self, frames: List[_Frame], state: LegendState, stop: Optional[threading.Event] = None) -> None:
        """Segment the latest frame of each camera whose outputs somebody reads, publish what is read
        (nothing once ``stop`` is set: the worker was stopped while the frame ran)."""
        stop = stop or self._stop
        settings = self._settings
        jobs = []
        unread = 0
        for frame in frames:
            out = self._outputs[frame.camera]
            wanted = out.wanted(state, settings)
            if not wanted:  # lazy: nothing reads this camera's outputs, so nothing is computed
                unread += 1
                continue
            rgb = self._decode(frame)
            if rgb is not None:
                out.last_frame_id = frame.msg.header.frame_id
                jobs.append((frame, out, rgb, wanted))
        self.stats.skipped_no_subscriber += unread
        self._idle = unread == len(frames)
        if not jobs:
            return
        started = time.perf_counter()
        try:
            results = self._segment([rgb for _, _, rgb, _ in jobs], state)
        except Talk2DinoError as exc:
            self.stats.failed_frames += len(jobs)
            self.stats.last_error = str(exc)
            self.get_logger().error(f'segmentation failed: {exc}', throttle_duration_sec=5.0)
            return
        self.stats.inference_ms.add((time.perf_counter() - started) * 1000.0)
        for (frame, out, rgb, wanted), result in zip(jobs, results):
            try:
                images = build_frame_outputs(
                    result, wanted, rgb=rgb, colors=state.colors, names=state.names,
                    overlay_alpha=float(settings.overlay_alpha),
                    mask_ids=out.subscribed_mask_ids(state, settings), mask_type=settings.mask_type,
                    banner=RANDOM_WEIGHTS_BANNER if getattr(state.segmenter, 'random_weights', False) else '')
                with self._publish_gate:
                    if stop.is_set():
                        return
                    out.publish(images, frame.msg.header, state, settings)
            except Exception as exc:  # one camera's failure must not cost the others their outputs
                if not rclpy.ok(context=self.context):
                    raise
                self.stats.failed_frames += 1
                self.stats.last_error = f'{type(exc).__name__}: {exc}'
                self.get_logger().error(f'frame failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}',
                                        throttle_duration_sec=5.0)
                continue
            self.stats.latency_ms.add((time.perf_counter() - frame.received) * 1000.0)
            self.stats.processed.add()
            self._camera_frames[frame.camera]['processed'] += 1

    # ------------------------------------------------------------------ diagnostics
    def _diagnostic_level(self, input_message: str = '') -> Tuple[int, str]:
        """Level and message; ``input_message`` explains a silent input (see node_control)."""
        state = self._host.state
        if self._host.model_error:
            return DiagnosticStatus.ERROR, self._host.model_error
        if self._host.load_error:
            return DiagnosticStatus.WARN, f'running the previous model; {self._host.load_error}'
        if state is None:
            return DiagnosticStatus.WARN, f'no vocabulary: publish one on {self.vocabulary_topic}'
        if self.stats.received.rate() == 0.0:
            return DiagnosticStatus.WARN, input_message or 'no images received'
        if not self._enabled:
            return DiagnosticStatus.OK, 'paused: frames are not segmented'
        if self._idle and self.stats.processed.rate() == 0.0:
            return DiagnosticStatus.OK, 'idle: nothing subscribes to an output, frames are not segmented'
        return DiagnosticStatus.OK, 'segmenting'

    def _publish_diagnostics(self) -> None:
        s = self._settings
        host = self._host
        state = host.state
        # the fully qualified name keeps two instances (namespace:=front / rear) apart in /diagnostics
        status = DiagnosticStatus(name=f'{self.get_fully_qualified_name()}: segmentation',
                                  hardware_id=host.device or s.device)
        input_message, input_values = self._input_diagnostics()
        status.level, status.message = self._diagnostic_level(input_message)
        values = dict(self.stats.summary(self._mailbox.dropped))
        values.update(input_values)
        values.update({
            'device': host.device or s.device,
            'model': host.label or 'none',
            'mode': f'{s.mode}@{s.resolution}',
            'vocabulary_version': str(state.version if state else 0),
            'classes': str(len(state.names) if state else 0),
            'model_error': host.model_error or host.load_error,
            'last_frame_error': self.stats.last_error,
            'enabled': str(self._enabled).lower(),
        })
        if len(self._cameras) > 1 or self._cameras[0].name:
            for camera in self._cameras:
                counts = self._camera_frames[camera.name]
                values.update({f'{camera.name}.topic': camera.resolved,
                               f'{camera.name}.frames_received': str(counts['received']),
                               f'{camera.name}.frames_processed': str(counts['processed']),
                               f'{camera.name}.frames_dropped': str(self._mailbox.dropped_by.get(camera.name, 0))})
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
        from std_srvs.srv import SetBool
        self._enable_srv = self.create_service(SetBool, '~/enable', self._on_enable)
        self._start_threads()

    def _on_enable(self, request, response):
        """``~/enable`` (std_srvs/SetBool): false pauses the segmentation, true resumes it."""
        was = self.enabled
        self.set_enabled(request.data)
        response.success = True
        response.message = ('resumed' if request.data else 'paused') if was != bool(request.data) else (
            'already ' + ('running' if request.data else 'paused'))
        self.get_logger().info(f'~/enable: segmentation {response.message}')
        return response

    def destroy_node(self) -> None:
        self._stop_threads()
        super().destroy_node()
