"""The node's worker thread: latest frame of every camera in, one engine call, the outputs that are read out.

The worker takes the latest frame of every camera from the mailbox, captures the current
:class:`~talk2dino_ros.ros.engine_host.LegendState` **once**, publishes that state's ClassInfo if it is
not the last one it published, runs the engine once for the frames whose outputs somebody reads (lazy:
the others are counted, not segmented) and publishes the outputs that have subscribers. All per-frame
outputs and the ClassInfo come from this one thread, in order, so the labels of a frame always belong to
the most recently published ClassInfo (same vocabulary_version).

A worker is stopped by its ``stop`` event, which the lifecycle node sets under :attr:`FrameWorker.gate`;
every publish happens under the same lock after checking the event, so a stopped worker never publishes
again even if its frame was still running (stopping waits for one publish at most, never for a frame).
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import rclpy

from talk2dino_ros.errors import Talk2DinoError
from talk2dino_ros.outputs.banner import RANDOM_WEIGHTS_BANNER
from talk2dino_ros.outputs.frame import build_frame_outputs
from talk2dino_ros.ros.cameras import Camera
from talk2dino_ros.ros.engine_host import EngineHost, LegendState
from talk2dino_ros.ros.frame_outputs import FrameOutputs
from talk2dino_ros.ros.image_conversion import MAX_INPUT_SIDE, ImageConversionError, decode_compressed, to_rgb8
from talk2dino_ros.ros.mailbox import LatestMailbox
from talk2dino_ros.ros.parameters import NodeSettings
from talk2dino_ros.ros.stats import FrameStats


@dataclass
class Frame:
    """One received camera message, waiting in the mailbox."""

    msg: Any
    received: float  # time.perf_counter() at the callback
    compressed: bool
    camera: str = ''  # output namespace of the camera ('' = the single camera)


class FrameWorker:
    """Segments and publishes frames on its own thread (:meth:`run`); :meth:`receive` is the image callback's part.

    ``outputs`` returns the publishers per camera (the lifecycle node makes and drops them), ``enabled``
    whether frames are segmented now (``~/enable`` / the active state), ``spatial`` the node's 3D side
    (:class:`~talk2dino_ros.ros.spatial_part.SpatialPart`, or None): every frame taken is paired with its
    depth and kept for ``~/locate``, and a camera whose 3D outputs are read is segmented.
    """

    def __init__(self, node: Any, host: EngineHost, mailbox: LatestMailbox, stats: FrameStats,
                 cameras: Sequence[Camera], settings: Callable[[], NodeSettings],
                 outputs: Callable[[], Dict[str, FrameOutputs]], enabled: Callable[[], bool],
                 spatial: Callable[[], Any] = lambda: None) -> None:
        self._node, self._host, self._mailbox, self._stats = node, host, mailbox, stats
        self._settings, self._outputs, self._enabled, self._spatial = settings, outputs, enabled, spatial
        self._logger = node.get_logger()
        #: per camera name: frames received and processed (for the diagnostics of several cameras)
        self.camera_frames: Dict[str, Dict[str, int]] = {
            c.name: {'received': 0, 'processed': 0} for c in cameras}
        self.idle = False  # the latest frames were skipped: nothing read any output
        #: camera name -> its latest sensor_msgs/CameraInfo (for the camera_info output)
        self.camera_infos: Dict[str, Any] = {}
        #: held while publishing and while a worker's stop event is set (see the module docstring)
        self.gate = threading.Lock()

    # ------------------------------------------------------------------ executor thread
    def receive(self, msg: Any, compressed: bool, camera: str = '') -> None:
        """Count a camera message and leave it in its camera's slot (replacing an untaken one)."""
        self._stats.received.add()
        self.camera_frames[camera]['received'] += 1
        self._mailbox.put(Frame(msg, time.perf_counter(), compressed, camera), key=camera)

    def receive_camera_info(self, msg: Any, camera: str = '') -> None:
        """Keep the camera's latest calibration (replaced as a whole, read by the worker)."""
        self.camera_infos[camera] = msg

    # ------------------------------------------------------------------ worker thread
    def run(self, stop: threading.Event) -> None:
        """The worker loop, until ``stop`` is set."""
        published: Optional[LegendState] = None
        next_start = 0.0
        while not stop.is_set():
            self._mailbox.wait(timeout=0.5)
            if stop.is_set():
                break
            rate = float(self._settings().max_rate)
            if rate > 0 and self._mailbox.has_item():
                delay = next_start - time.perf_counter()
                if delay > 0 and stop.wait(delay):
                    break
            try:
                frames = self._mailbox.take_all()  # the latest frame of each camera
                # captured once for the legend and the frames, after taking them: a vocabulary installed
                # (and acknowledged) before a frame arrived is the one that frame is computed with
                state = self._host.state
                if state is not published and state is not None:
                    with self.gate:
                        if stop.is_set():
                            break
                        self._publish_legend(state)
                    published = state
                self._sync_mask_publishers()
                if not frames:
                    continue
                next_start = time.perf_counter() + (1.0 / rate if rate > 0 else 0.0)
                if state is None:
                    self._stats.skipped_not_ready += len(frames)
                    continue
                if not self._enabled():
                    self._stats.skipped_paused += len(frames)
                    continue
                self._process(list(frames.values()), state, stop)
            except Exception as exc:  # never let the worker die
                if not rclpy.ok(context=self._node.context):
                    break
                self._failed(exc)

    def _failed(self, exc: Exception, frames: int = 1) -> None:
        self._stats.failed_frames += frames
        self._stats.last_error = f'{type(exc).__name__}: {exc}'
        self._logger.error(f'frame failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}',
                           throttle_duration_sec=5.0)

    def _publish_legend(self, state: LegendState) -> None:
        stamp = self._node.get_clock().now().to_msg()
        for out in self._outputs().values():
            out.publish_legend(state, stamp)

    def _sync_mask_publishers(self) -> None:
        """Make the ``mask/<class>`` publishers follow the current legend (on the executor thread)."""
        def wanted():
            return FrameOutputs.wanted_mask_tokens(self._host.state, self._settings())
        for out in self._outputs().values():
            out.sync_mask_publishers(wanted)

    def decode_message(self, msg: Any, compressed: bool) -> Optional[Any]:
        """A camera message as RGB uint8 under the node's limits, or None when it is rejected."""
        return self._decode(Frame(msg, 0.0, compressed))

    def _decode(self, frame: Frame) -> Optional[Any]:
        """The frame as RGB uint8, or None when it is rejected (counted and logged)."""
        # sizes are checked from width x height or the compressed header before anything is decoded
        limits = dict(max_pixels=int(self._settings().max_input_pixels), max_side=MAX_INPUT_SIDE)
        try:
            return (decode_compressed(frame.msg, **limits) if frame.compressed
                    else to_rgb8(frame.msg, **limits))
        except ImageConversionError as exc:  # rejected input, never an engine failure
            self._stats.reject(exc.reason, str(exc))
            self._logger.error(f'image rejected: {exc}', throttle_duration_sec=5.0)
            return None

    @staticmethod
    def _segment(images: List[Any], state: LegendState) -> List[Any]:
        """One engine call for the latest frame of every camera (a batch when there are several)."""
        segmenter = state.segmenter
        if len(images) > 1 and hasattr(segmenter, 'segment_batch'):
            return list(segmenter.segment_batch(images, vocabulary=state.vocabulary, options=state.options))
        return [segmenter.segment(image, vocabulary=state.vocabulary, options=state.options) for image in images]

    def _process(self, frames: List[Frame], state: LegendState, stop: threading.Event) -> None:
        """Segment the latest frame of each camera whose outputs somebody reads, publish what is read
        (nothing once ``stop`` is set: the worker was stopped while the frame ran)."""
        settings = self._settings()
        outputs = self._outputs()
        spatial = self._spatial()
        jobs = []
        unread = 0
        for frame in frames:
            out = outputs[frame.camera]
            # every frame is paired with its depth and kept for ~/locate, read or not (nothing is decoded)
            stored = spatial.remember(frame.camera, frame.msg, frame.compressed) if spatial is not None else None
            wanted = out.wanted(state, settings)
            if not wanted:  # lazy: nothing reads this camera's outputs, so nothing is computed
                unread += 1
                continue
            rgb = self._decode(frame)
            if rgb is not None:
                out.last_frame_id = frame.msg.header.frame_id
                jobs.append((frame, out, rgb, wanted, stored))
        self._stats.skipped_no_subscriber += unread
        self.idle = unread == len(frames)
        if not jobs:
            return
        started = time.perf_counter()
        try:
            results = self._segment([job[2] for job in jobs], state)
        except Talk2DinoError as exc:
            self._stats.failed_frames += len(jobs)
            self._stats.last_error = str(exc)
            self._logger.error(f'segmentation failed: {exc}', throttle_duration_sec=5.0)
            return
        self._stats.inference_ms.add((time.perf_counter() - started) * 1000.0)
        for (frame, out, rgb, wanted, stored), result in zip(jobs, results):
            try:
                images = build_frame_outputs(
                    result, wanted, rgb=rgb, colors=state.colors, names=state.names,
                    overlay_alpha=float(settings.overlay_alpha),
                    mask_ids=out.subscribed_mask_ids(state, settings), mask_type=settings.mask_type,
                    banner=RANDOM_WEIGHTS_BANNER if getattr(state.segmenter, 'random_weights', False) else '')
                # the 3D outputs somebody reads (None: none), built from the frame's labels and its depth partner
                spatial_out = (spatial.build(frame.camera, stored, out, rgb, images.labels, result, state.names)
                               if spatial is not None else None)
                with self.gate:
                    if stop.is_set():
                        return
                    out.publish(images, frame.msg.header, state, settings, image_size=(rgb.shape[1], rgb.shape[0]),
                                camera_info=self.camera_infos.get(frame.camera), spatial=spatial_out)
            except Exception as exc:  # one camera's failure must not cost the others their outputs
                if not rclpy.ok(context=self._node.context):
                    raise
                self._failed(exc)
                continue
            self._stats.latency_ms.add((time.perf_counter() - frame.received) * 1000.0)
            self._stats.processed.add()
            self.camera_frames[frame.camera]['processed'] += 1
