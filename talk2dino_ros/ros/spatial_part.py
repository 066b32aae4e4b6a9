"""The node's 3D side in one collaborator: depth inputs, the 3D outputs of a frame, ``~/locate``.

The 3D rows (``points``, ``detections``, ``detections_3d``) are rows of the output table, published by
each camera's :class:`~talk2dino_ros.ros.frame_outputs.FrameOutputs` like the others (lazy, by
subscription). The worker calls this part at two points: :meth:`SpatialPart.remember` for every frame it
takes (pairs it with depth, keeps it for ``~/locate``; nothing is decoded) and :meth:`build` after a frame
is segmented (the cloud and detections its readers want). Depth never holds up the colour path: pairing
looks into a small buffer and a frame without depth is published as usual.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from talk2dino_ros.ros.depth_inputs import DepthInputs
from talk2dino_ros.ros.locate import LocateAnswer, LocateMemory, StoredFrame, camera_of, fill_response, locate
from talk2dino_ros.ros.label_info import vision_msgs_available
from talk2dino_ros.ros.spatial_outputs import DETECTIONS, DETECTIONS_3D, POINTS, SPATIAL_ROWS, SpatialResult
from talk2dino_ros.spatial.scene import build_spatial

LOCATE_SERVICE = '~/locate'


class SpatialPart:
    """Depth inputs (with ``depth: true``), ``points`` / ``detections`` / ``detections_3d`` per camera and
    the ``~/locate`` service of a segmentation node."""

    def __init__(self, node: Any, cameras: Sequence[Any], settings: Any,
                 submit: Callable[[str, Callable[[], Any], Callable[[Any], None], bool], None],
                 decode_colour: Callable[[Any, bool], Optional[np.ndarray]],
                 parse_names: Callable[[Sequence[str]], Any], legend_state: Callable[[], Any]) -> None:
        from rclpy.callback_groups import ReentrantCallbackGroup

        from talk2dino_ros.srv import Locate

        self._node = node
        self._cameras = tuple(cameras)
        self._submit = submit
        self._decode_colour = decode_colour
        self._parse_names = parse_names
        self._legend_state = legend_state
        if not vision_msgs_available():
            node.get_logger().warning('vision_msgs is not installed: ~/detections and ~/detections_3d are off '
                                      '(install ros-$ROS_DISTRO-vision-msgs); ~/points and ~/locate work')
        self.depth: Optional[DepthInputs] = None
        self.memory = LocateMemory()
        self._settings = settings
        self.spatial_ms: Dict[str, float] = {}
        self._service = node.create_service(Locate, LOCATE_SERVICE, self._on_locate,
                                            callback_group=ReentrantCallbackGroup())

    def start_depth(self, input_qos: Any) -> None:
        """Subscribe to every camera's depth image and CameraInfo (with the parameter ``depth``)."""
        settings = self._settings
        if settings.depth and self.depth is None:
            self.depth = DepthInputs(self._node, self._cameras, [c.topic for c in self._cameras],
                                     list(settings.depth_topics or []), float(settings.depth_sync_tolerance),
                                     input_qos)

    def stop_depth(self) -> None:
        """Unsubscribe from depth (lifecycle deactivate); the 3D publishers and ~/locate stay."""
        depth, self.depth = self.depth, None
        if depth is not None:
            depth.destroy()

    def settings_changed(self, settings: Any) -> None:
        self._settings = settings
        if self.depth is not None:
            self.depth.set_tolerance(float(settings.depth_sync_tolerance))

    # ------------------------------------------------------------------ worker side
    def remember(self, camera: str, msg: Any, compressed: bool) -> StoredFrame:
        """Pair a frame the worker took with its depth frame (if any) and keep it for ``~/locate``."""
        depth = info = None
        inputs = self.depth
        if inputs is not None:
            depth = inputs.take(camera, msg.header)
            info = inputs.latest_info(camera) if depth is not None else None
        stored = StoredFrame(msg, compressed, depth, info)
        self.memory.remember(camera, stored)
        return stored

    def build(self, camera: str, stored: StoredFrame, outputs: Any, rgb: np.ndarray, labels: np.ndarray,
              result: Any, names: Sequence[str]) -> Optional[SpatialResult]:
        """The 3D outputs of one segmented frame that ``outputs`` (its camera's FrameOutputs) has readers
        for; None when nobody reads any (points and 3D boxes only where depth comes in)."""
        settings = self._settings
        wanted = {name for name in SPATIAL_ROWS if outputs.is_read(name, settings)}
        if self.depth is None:
            wanted -= {POINTS, DETECTIONS_3D}
        if not wanted:
            return None
        started = time.perf_counter()
        confidence = result.confidence()
        options = settings.spatial_options()
        depth = None
        inputs = self.depth
        if inputs is not None and stored.depth is not None and wanted & {POINTS, DETECTIONS_3D}:
            depth = inputs.decode(camera, stored.depth, options.depth_max_m, stored.info)
        frame = build_spatial(labels, confidence, names, depth.metres if depth else None,
                              depth.intrinsics if depth else None, options, rgb=rgb if options.rgb else None,
                              cloud=depth is not None and POINTS in wanted,
                              detections=bool(wanted & {DETECTIONS, DETECTIONS_3D}))
        self.spatial_ms[camera] = (time.perf_counter() - started) * 1000.0
        return SpatialResult(frame, depth.header if depth else None)

    # ------------------------------------------------------------------ ~/locate
    async def _on_locate(self, request: Any, response: Any) -> Any:
        from rclpy.task import Future

        parsed = self._parse_names(list(request.names))
        camera, why = camera_of(request.camera, self._cameras)
        if camera is None:
            response.success, response.message = False, why
            response.rejected = [r.name for r in parsed.rejected]
            return response
        frame = self.memory.frame_for(camera)
        options = self._settings.spatial_options()

        def decode_depth(stored: StoredFrame) -> Optional[Tuple[Any, Any]]:
            inputs = self.depth
            decoded = None if inputs is None else inputs.decode(camera, stored.depth, options.depth_max_m,
                                                               stored.info)
            return None if decoded is None else (decoded.metres, decoded.intrinsics)

        def decode_colour(stored: StoredFrame) -> np.ndarray:
            rgb = self._decode_colour(stored.colour, stored.compressed)
            if rgb is None:
                raise ValueError('the latest camera frame could not be decoded')
            return rgb

        def run() -> Any:
            try:
                return locate(parsed, self._legend_state(), frame, options, decode_colour, decode_depth)
            except Exception as exc:  # answered, never raised into the executor
                return LocateAnswer(False, f'locate failed: {type(exc).__name__}: {exc}',
                                    tuple(r.name for r in parsed.rejected))

        future = Future(executor=self._node.executor)
        self._submit('locate', run, future.set_result, False)
        answer = await future
        if isinstance(answer, tuple):  # the control thread skipped the job: (False, why)
            answer = LocateAnswer(False, str(answer[1]), tuple(r.name for r in parsed.rejected))
        return fill_response(response, answer)

    # ------------------------------------------------------------------ diagnostics / teardown
    def diagnostics(self) -> Dict[str, str]:
        several = len(self._cameras) > 1 or bool(self._cameras[0].name)
        out: Dict[str, str] = {}
        if self.depth is not None:
            out.update(self.depth.diagnostics(several))
        for camera, ms in self.spatial_ms.items():
            out[f'{camera}.spatial_ms' if several else 'spatial_ms'] = f'{ms:.1f}'
        return out

    def destroy(self) -> None:
        self.stop_depth()
        self._node.destroy_service(self._service)
        self.memory.clear()
