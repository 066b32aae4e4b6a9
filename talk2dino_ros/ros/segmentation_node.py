"""The ROS 2 segmentation node: camera images + a dynamic vocabulary -> labels, legend, masks, maps.

:class:`SegmentationCore` wires the node's collaborators together and owns its parameters, threads and
diagnostics; it is the shared base of the plain node below and of the lifecycle node
(:mod:`talk2dino_ros.ros.lifecycle_node`). Each collaborator has one job and gets what it needs passed
in (it never reaches into the node):

* :class:`~talk2dino_ros.ros.engine_host.EngineHost`: the model and the legend state;
* :class:`~talk2dino_ros.ros.vocabulary_control.VocabularyControl`: the vocabulary topic, service and
  parameter, and the one path every vocabulary change takes;
* :class:`~talk2dino_ros.ros.model_loader.ModelLoader`: the loader thread;
* :class:`~talk2dino_ros.ros.frame_worker.FrameWorker`: the worker thread (segment, publish);
* :class:`~talk2dino_ros.ros.frame_outputs.FrameOutputs`: one camera's publishers and lazy fan-out;
* :class:`~talk2dino_ros.ros.spatial_part.SpatialPart`: depth inputs, the 3D publishers and ``~/locate``;
* :class:`~talk2dino_ros.ros.control_worker.ControlJobs`: slow control work off the executor;
* :class:`~talk2dino_ros.ros.input_watch.CameraWatches`: "no images" help.

Threads and who owns what:
* executor thread(s): callbacks only store things. The image callback puts the message into its camera's
  slot of the mailbox (a newer frame replaces an untaken one, counted as dropped); vocabulary / parameter /
  service callbacks validate and hand the encoding to the control thread, which swaps in a new immutable
  :class:`LegendState` (the segmenter's ``set_vocabulary`` is atomic and only encodes uncached names).
* worker thread: see :mod:`talk2dino_ros.ros.frame_worker`; per-frame outputs and the ClassInfo come from
  this one thread, in order.
* loader thread: see :mod:`talk2dino_ros.ros.model_loader`.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from talk2dino_ros.ros.cameras import Camera, CameraConfigError, camera_info_topic, configure_cameras
from talk2dino_ros.ros.control_worker import ControlJobs
from talk2dino_ros.ros.engine_host import (  # noqa: F401  (re-exported: the node's public names)
    EngineHost, LegendState, SegmenterFactory, default_segmenter_factory, inference_options)
from talk2dino_ros.ros.frame_outputs import FrameOutputs
from talk2dino_ros.ros.frame_worker import FrameWorker
from talk2dino_ros.ros.input_watch import CameraWatches
from talk2dino_ros.ros.mailbox import LatestMailbox
from talk2dino_ros.ros.model_loader import ModelLoader
from talk2dino_ros.ros.parameters import NodeSettings, current_values, group_of, validate_changes
from talk2dino_ros.ros.qos import create_overridable, diagnostics_qos, image_input_qos
from talk2dino_ros.ros.spatial_part import SpatialPart
from talk2dino_ros.ros.start_values import declare_parameters
from talk2dino_ros.ros.stats import FrameStats
from talk2dino_ros.ros.vocabulary_control import VocabularyControl


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


class SegmentationCore:
    """Parameters, threads and diagnostics of the segmentation node, and the wiring of its collaborators.

    The base of the two rclpy node classes (it uses only their public rclpy ``Node`` API). They decide
    when the parts are made: the plain node makes them all at start, the lifecycle node in its transitions.
    """

    # ------------------------------------------------------------------ setup
    def _init_core(self, segmenter_factory: Optional[SegmenterFactory]) -> None:
        """Parameters, collaborators and counters; no topics yet."""
        responsive_gil()
        declare_parameters(self)  # bad start values: one WARN line each, the default is declared instead
        self._settings = self._read_settings()
        self._host = EngineHost(segmenter_factory)
        self._mailbox = LatestMailbox()
        self.stats = FrameStats()
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self._outputs: Dict[str, FrameOutputs] = {}
        self._spatial: Optional[SpatialPart] = None
        self._image_inputs: List[Any] = []
        self._cameras: Tuple[Camera, ...] = self._configure_cameras()
        self._enabled = True           # ~/enable (plain node) / active (lifecycle node)
        settings = self.current_settings
        self._control = ControlJobs(self)
        self._vocabulary = VocabularyControl(self, self._host, self._control, settings, self._mailbox.poke)
        self._model_loader = ModelLoader(self, self._host, settings, self._vocabulary.legend_installed,
                                         lambda: self._vocabulary.topic, self.weight_paths_settable)
        self._frame_worker = FrameWorker(self, self._host, self._mailbox, self.stats, self._cameras, settings,
                                         lambda: self._outputs, lambda: self._enabled, lambda: self._spatial)
        self._watches = CameraWatches(self)
        self._vocabulary.use_start_value()
        self.add_on_set_parameters_callback(self._on_validate_parameters)
        self.add_post_set_parameters_callback(self._on_parameters_set)
        self._diag_pub = create_overridable(self, 'publisher', DiagnosticArray, '/diagnostics', diagnostics_qos())
        # a steady clock: with use_sim_time and nothing on /clock the ROS clock stands still, and a timer on
        # it would silence /diagnostics exactly when they should say why
        self._diag_timer = self.create_timer(float(self._settings.diagnostics_period), self._publish_diagnostics,
                                             clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _configure_cameras(self) -> Tuple[Camera, ...]:
        """The cameras, their topics resolved as ROS subscribes to them. The start values were checked when
        they were declared (start_values), so this only guards against a list that slipped through."""
        s = self._settings
        try:
            return configure_cameras(s.image_topics, s.camera_names, resolve=self.resolve_topic_name)
        except CameraConfigError as exc:
            self.get_logger().error(f'{exc}; using the single image topic')
            return configure_cameras(None, None, resolve=self.resolve_topic_name)

    def _read_settings(self) -> NodeSettings:
        return NodeSettings(current_values(self))

    def current_settings(self) -> NodeSettings:
        """The settings in force now (replaced as a whole on every parameter change)."""
        return self._settings

    def _create_outputs(self) -> None:
        """The output publishers (one namespace per camera), the 3D publishers and ``~/locate``."""
        self._outputs = {c.name: FrameOutputs(self, c.prefix) for c in self._cameras}
        self._spatial = SpatialPart(self, self._cameras, self._settings, self._control.submit,
                                    self._frame_worker.decode_message, self._vocabulary.parse,
                                    lambda: self._host.state)

    def _create_inputs(self) -> None:
        """The camera and vocabulary subscriptions and the vocabulary service."""
        self._image_inputs = self._create_image_inputs()
        self._vocabulary.create_inputs()

    def _create_image_inputs(self) -> List[Any]:
        """One image and one CameraInfo subscription per camera."""
        s = self._settings
        qos = image_input_qos(s.image_reliability, int(s.image_depth))
        subs = []
        if self._spatial is not None:  # the depth of every camera, with the parameter depth
            self._spatial.start_depth(qos)
        for camera in self._cameras:
            # image_transport's convention: <topic>/compressed
            topic = f'{camera.topic}/compressed' if s.compressed_input else camera.topic
            # qos_overrides.<topic>.subscription.* apply (they win over image_reliability / image_depth)
            subs.append(create_overridable(
                self, 'subscription', CompressedImage if s.compressed_input else Image, topic, qos,
                lambda m, c=camera.name, z=bool(s.compressed_input): self._on_image(m, z, c)))
            self._watches.watch(camera.name, subs[-1], subs[-1].qos_profile, topic)
            # image_transport's convention: the calibration is the sibling camera_info topic
            subs.append(self.create_subscription(
                CameraInfo, camera_info_topic(camera.resolved or self.resolve_topic_name(camera.topic)),
                lambda m, c=camera.name: self._frame_worker.receive_camera_info(m, c), qos))
        return subs

    def _start_threads(self, loader: bool = True) -> None:
        """Start the worker (and the model loader, which loads at once) and the control thread."""
        self._stop.clear()
        self._threads = [threading.Thread(target=self._frame_worker.run, args=(self._stop,), name='t2d_worker',
                                          daemon=True)]
        if loader:
            self._threads.append(threading.Thread(target=self._model_loader.run, args=(self._stop,),
                                                  name='t2d_loader', daemon=True))
            self._model_loader.reload.set()
        for thread in self._threads:
            thread.start()
        self._control.start()

    def _stop_threads(self, timeout: float = 3.0) -> None:
        """Stop the worker, loader and control threads, waiting at most ``timeout`` s in all: a frame, load
        or encoding in progress is not waited for beyond that (launch escalates to SIGTERM after 5 s;
        segment_node's entry point then leaves without tearing down the busy thread)."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._model_loader.reload.set()
        self._mailbox.close()
        self._control.stop(timeout)
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
    def vocabulary_topic(self) -> str:
        """The resolved vocabulary topic (``/t2d/vocab`` at the root, ``/<ns>/t2d/vocab`` in a namespace)."""
        return self._vocabulary.topic

    @property
    def enabled(self) -> bool:
        """False while paused (``~/enable``): frames are counted, not segmented."""
        return self._enabled

    def set_enabled(self, enabled: bool) -> None:
        """Pause (False) or resume (True) the segmentation; legends and diagnostics keep going."""
        self._enabled = bool(enabled)
        self._mailbox.poke()

    def weight_paths_settable(self) -> bool:
        """Whether ``weights_dir`` and the ``*_weights`` paths may be set now (``ros2 param set``)."""
        return bool(self._settings.allow_runtime_weight_changes)

    def outputs_for(self, camera: Optional[str] = None) -> FrameOutputs:
        """The publishers of one camera (default: the first, i.e. the single camera of the default setup)."""
        return self._outputs[self._cameras[0].name if camera is None else camera]

    def apply_vocabulary(self, names: Optional[Sequence[str]] = None,
                         sync_parameter: bool = True) -> Tuple[bool, str]:
        """Use these (already validated) names now, or rebuild the legend (blocking); (success, message)."""
        return self._vocabulary.apply(names, sync_parameter)

    # ------------------------------------------------------------------ inputs
    def _on_image(self, msg: Any, compressed: bool, camera: str = '') -> None:
        stamp = msg.header.stamp
        self._watches.seen(camera, stamp.sec + stamp.nanosec * 1e-9)
        self._frame_worker.receive(msg, compressed, camera)

    # ------------------------------------------------------------------ parameters
    def _on_validate_parameters(self, params: List[Parameter]) -> SetParametersResult:
        if self._vocabulary.syncing_parameter:
            return SetParametersResult(successful=True)
        reasons = validate_changes(params, current_values(self), self.weight_paths_settable())
        if reasons:
            return SetParametersResult(successful=False, reason='; '.join(reasons))
        return SetParametersResult(successful=True)

    def _on_parameters_set(self, params: List[Parameter]) -> None:
        self._settings = self._read_settings()
        if self._spatial is not None:
            self._spatial.settings_changed(self._settings)
        if self._vocabulary.syncing_parameter:
            return
        names = {p.name for p in params}
        groups = group_of(names)
        if 'model' in groups:
            self._model_loader.reload.set()
        if 'engine' in groups:
            self._submit_engine_settings()  # on the control thread: the executor never waits for the model
        if 'legend' in groups:
            self._vocabulary.parameters_changed(names)

    def _submit_engine_settings(self) -> None:
        """Give the running model the current mode/resolution, on the control thread."""
        def run() -> Tuple[bool, str]:
            why = self._host.apply_engine_settings(self._settings)
            return (why is None, why or '')

        def finished(outcome: Tuple[bool, str]) -> None:
            if not outcome[0]:
                self.get_logger().error(outcome[1])
        self._control.submit('engine', run, finished, coalesce=True)

    # ------------------------------------------------------------------ diagnostics
    def _diagnostic_level(self, input_message: str = '') -> Tuple[int, str]:
        """Level and message; ``input_message`` explains a silent input (see input_watch)."""
        state = self._host.state
        if self._host.model_error:
            return DiagnosticStatus.ERROR, self._host.model_error
        if self._host.load_error:
            return DiagnosticStatus.WARN, f'running the previous model; {self._host.load_error}'
        clock = self._clock_problem()
        if clock:
            return DiagnosticStatus.WARN, clock
        if state is None:
            return DiagnosticStatus.WARN, f'no vocabulary: publish one on {self.vocabulary_topic}'
        if self.stats.received.rate() == 0.0:
            return DiagnosticStatus.WARN, input_message or 'no images received'
        loss_message, _ = self._watches.loss_message()
        if loss_message:
            return DiagnosticStatus.WARN, loss_message
        if not self._enabled:
            return DiagnosticStatus.OK, 'paused: frames are not segmented'
        if self._frame_worker.idle and self.stats.processed.rate() == 0.0:
            return DiagnosticStatus.OK, 'idle: nothing subscribes to an output, frames are not segmented'
        return DiagnosticStatus.OK, 'segmenting'

    def _clock_problem(self) -> str:
        """Why the node's clock stands still ('' while it runs): use_sim_time without a /clock publisher."""
        if not self.get_parameter('use_sim_time').value or self.get_clock().now().nanoseconds != 0:
            return ''
        return ('use_sim_time is true but no /clock has arrived: legend and diagnostics stamps are 0 (play the '
                'bag with --clock, start the simulator, or set use_sim_time false); frames keep their own stamps')

    def _publish_diagnostics(self) -> None:
        s = self._settings
        host = self._host
        state = host.state
        # the fully qualified name keeps two instances (namespace:=front / rear) apart in /diagnostics
        status = DiagnosticStatus(name=f'{self.get_fully_qualified_name()}: segmentation',
                                  hardware_id=host.device or s.device)
        input_message, input_values = self._watches.diagnostics()
        input_values.update(self._watches.loss_message()[1])
        input_values.update(self._vocabulary.diagnostics())
        input_values['control_jobs_pending'] = str(self._control.pending)
        if self._spatial is not None:
            input_values.update(self._spatial.diagnostics())
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
                counts = self._frame_worker.camera_frames[camera.name]
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
