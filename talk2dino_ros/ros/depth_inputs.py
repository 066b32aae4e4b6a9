"""Registered depth per camera: subscriptions, pairing with the colour frames by stamp, decoding.

With the parameter ``depth`` each camera gets two more subscriptions, by default in the camera's namespace:
the colour topic ``/cam/image_raw`` (or ``/cam/color/image_raw``) gives ``/cam/depth/image_raw`` and its
``/cam/depth/camera_info``. Both can be remapped by that name (``-r /cam/depth/image_raw:=/cam/aligned_depth_to
_color/image_raw``) or set with ``depth_topics`` (one per camera; the CameraInfo is always the ``camera_info``
next to it, the image_transport convention).

The callbacks only store: a depth image goes into its camera's :class:`StampPairer` (a small bounded
buffer), a CameraInfo replaces the camera's last one. The worker asks :meth:`DepthInputs.take` for the depth
frame whose stamp is nearest its colour frame's within ``depth_sync_tolerance``; nothing ever waits, and a
colour frame without a partner is labelled as usual (counted as unpaired).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

from talk2dino_ros.ros.image_conversion import ImageConversionError, image_to_numpy
from talk2dino_ros.spatial.depth import DepthError, depth_to_metres
from talk2dino_ros.spatial.intrinsics import Intrinsics, intrinsics_from_camera_info
from talk2dino_ros.spatial.pairing import StampPairer

#: tokens of a colour topic that name the stream, not the camera (dropped to find the camera namespace)
_STREAM_TOKENS = ('image_raw', 'image_rect', 'image_rect_color', 'image_color', 'image', 'compressed')
_COLOUR_TOKENS = ('color', 'rgb')


def depth_topic_for(colour_topic: str) -> str:
    """``/cam/image_raw`` or ``/cam/color/image_raw`` -> ``/cam/depth/image_raw`` (relative stays relative)."""
    parts = [p for p in colour_topic.split('/') if p]
    while parts and parts[-1] in _STREAM_TOKENS:
        parts.pop()
    if parts and parts[-1] in _COLOUR_TOKENS:
        parts.pop()
    prefix = '/' if colour_topic.startswith('/') else ''
    return prefix + '/'.join(parts + ['depth', 'image_raw'])


def camera_info_topic_for(depth_topic: str) -> str:
    """The CameraInfo beside an image topic: ``/cam/depth/image_raw`` -> ``/cam/depth/camera_info``."""
    head, _, _ = depth_topic.rstrip('/').rpartition('/')
    return f'{head}/camera_info' if head else 'camera_info'


@dataclass
class DepthFrame:
    """A decoded depth frame: metres (NaN = none), the intrinsics of its size, its header."""

    metres: Any
    intrinsics: Intrinsics
    header: Any


class DepthInputs:
    """The depth side of every camera (made only when the parameter ``depth`` is true)."""

    def __init__(self, node: Any, cameras: Sequence[Any], colour_topics: Sequence[str],
                 depth_topics: Sequence[str], tolerance_s: float, qos: Any) -> None:
        from sensor_msgs.msg import CameraInfo, Image

        self._node = node
        self._lock = threading.Lock()
        self.topics: Dict[str, str] = {}
        self.info_topics: Dict[str, str] = {}
        self._pairers: Dict[str, StampPairer] = {}
        self._infos: Dict[str, Any] = {}
        self.rejected: Dict[str, int] = {}
        self.last_error = ''
        self._subs = []
        explicit = list(depth_topics or [])
        for index, camera in enumerate(cameras):
            topic = explicit[index] if index < len(explicit) and explicit[index] else depth_topic_for(
                colour_topics[index])
            info = camera_info_topic_for(topic)
            self.topics[camera.name] = topic
            self.info_topics[camera.name] = info
            self._pairers[camera.name] = StampPairer(self._tolerance_ns(tolerance_s))
            self.rejected[camera.name] = 0
            self._subs.append(node.create_subscription(Image, topic, lambda m, c=camera.name: self._on_depth(c, m),
                                                       qos))
            self._subs.append(node.create_subscription(CameraInfo, info,
                                                       lambda m, c=camera.name: self._on_info(c, m), qos))

    @staticmethod
    def _tolerance_ns(seconds: float) -> int:
        return int(round(max(0.0, float(seconds)) * 1e9))

    def set_tolerance(self, seconds: float) -> None:
        for pairer in self._pairers.values():
            pairer.tolerance_ns = self._tolerance_ns(seconds)

    # ------------------------------------------------------------------ callbacks (store only)
    def _on_depth(self, camera: str, msg: Any) -> None:
        self._pairers[camera].add(_stamp_ns(msg.header), msg)

    def _on_info(self, camera: str, msg: Any) -> None:
        with self._lock:
            self._infos[camera] = msg

    # ------------------------------------------------------------------ worker side
    def take(self, camera: str, colour_header: Any) -> Optional[Any]:
        """The raw depth Image paired with a colour frame (and removed from the buffer), or None."""
        pairer = self._pairers.get(camera)
        return None if pairer is None else pairer.take(_stamp_ns(colour_header))

    def latest_info(self, camera: str) -> Optional[Any]:
        """The camera's last CameraInfo (None before one arrived)."""
        with self._lock:
            return self._infos.get(camera)

    def decode(self, camera: str, image: Any, depth_max_m: float, info: Optional[Any] = None) -> Optional[DepthFrame]:
        """Metres and intrinsics of a paired depth Image (``info``: its CameraInfo, default the latest); None
        (counted, logged) when it cannot be used."""
        if info is None:
            info = self.latest_info(camera)
        try:
            if info is None:
                raise DepthError(f'no CameraInfo received on {self._resolved(self.info_topics[camera])} yet')
            metres = depth_to_metres(image_to_numpy(image), str(image.encoding), depth_max_m)
            intrinsics = intrinsics_from_camera_info(info)
        except (DepthError, ImageConversionError) as exc:
            self.rejected[camera] += 1
            self.last_error = f'{self._resolved(self.topics[camera])}: {exc}'
            self._node.get_logger().error(f'depth frame not used: {self.last_error}', throttle_duration_sec=5.0)
            return None
        return DepthFrame(metres, intrinsics, image.header)

    def _resolved(self, topic: str) -> str:
        try:
            return self._node.resolve_topic_name(topic)
        except Exception:
            return topic

    def diagnostics(self, several: bool) -> Dict[str, str]:
        """Key/values for /diagnostics: per camera the depth topic and the pairing counters."""
        out: Dict[str, str] = {}
        for camera, pairer in self._pairers.items():
            prefix = f'{camera}.' if several else ''
            counts = pairer.counters()
            out.update({f'{prefix}depth_topic': self._resolved(self.topics[camera]),
                        f'{prefix}depth_frames_received': str(counts['depth_received']),
                        f'{prefix}depth_frames_paired': str(counts['depth_paired']),
                        f'{prefix}frames_without_depth': str(counts['colour_unpaired']),
                        f'{prefix}depth_frames_unpaired': str(counts['depth_unpaired']),
                        f'{prefix}depth_frames_rejected': str(self.rejected[camera])})
        if self.last_error:
            out['last_depth_error'] = self.last_error
        return out

    def destroy(self) -> None:
        for sub in self._subs:
            self._node.destroy_subscription(sub)
        self._subs = []
        for pairer in self._pairers.values():
            pairer.clear()


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
