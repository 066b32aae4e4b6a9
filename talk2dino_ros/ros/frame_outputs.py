"""The publishers of one output namespace (``~`` or ``~/<camera>``) and the lazy fan-out of a frame.

The publishers are made from the output table (:mod:`talk2dino_ros.contract.outputs`): one per row the node
publishes, with the row's topic, message type and QoS; :data:`BUILDERS` turns a built frame into each row's
message. Only what somebody reads is built and serialised: :meth:`FrameOutputs.wanted` lists what the
subscribed rows need, the node asks :func:`talk2dino_ros.outputs.frame.build_frame_outputs` for exactly
that, and :meth:`FrameOutputs.publish` sends them. Latched rows (``class_info``, ``label_info``) are
published whenever the legend changes, subscribers or not.

The per-class ``mask/<class>`` publishers follow the legend. They are created and destroyed on the
executor thread only (a guard condition the worker triggers): destroying a publisher while the executor
builds its wait set invalidates its handle.
"""
from __future__ import annotations

import copy
import importlib
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Set, Tuple

from rclpy.event_handler import PublisherEventCallbacks
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from talk2dino_ros.contract import outputs as contract
from talk2dino_ros.outputs import frame
from talk2dino_ros.outputs.frame import FrameImages
from talk2dino_ros.ros import outputs
from talk2dino_ros.ros.camera_info import output_camera_info
from talk2dino_ros.ros.label_info import make_label_info
from talk2dino_ros.ros import spatial_outputs
from talk2dino_ros.ros.qos import create_overridable, profile


@dataclass
class FrameContext:
    """What a builder may use: the built images, the camera header, the legend, the settings, the frame's
    size and the camera's latest CameraInfo (None until it published one)."""

    images: Optional[FrameImages]
    header: Any
    state: Any
    settings: Any = None
    image_size: Tuple[int, int] = (0, 0)   # (width, height) of the camera image
    camera_info: Any = None
    spatial: Any = None                     # the frame's 3D outputs (spatial_outputs.SpatialResult) or None


def _image(field: str, encoding: Optional[str] = None) -> Callable[[FrameContext], Any]:
    """Builder of an image row from a FrameImages field (None when it was not built)."""
    def build(ctx: FrameContext) -> Any:
        array = getattr(ctx.images, field)
        if array is None:
            return None
        return outputs.numpy_to_image(array, encoding or ctx.images.label_encoding, header=ctx.header)
    return build


def _masks(ctx: FrameContext) -> Any:
    images, state = ctx.images, ctx.state
    if not images.masks or len(images.masks) != len(state.names):
        return None  # only the per-class topics asked for masks: ~/masks carries every class or nothing
    return outputs.masks_msg(ctx.header, state.version, state.names, images.masks, images.mask_type)


def _camera_info(ctx: FrameContext) -> Any:
    if ctx.camera_info is None or ctx.images is None:
        return None
    height, width = ctx.images.labels.shape[:2]
    return output_camera_info(ctx.camera_info, ctx.header, ctx.image_size, (width, height))


def _class_info(ctx: FrameContext) -> Any:
    s = ctx.state
    return outputs.class_info_msg(ctx.header, s.version, s.method, s.names, s.colors, s.background_threshold)


def _label_info(ctx: FrameContext) -> Any:
    return make_label_info(ctx.header, ctx.state.names, ctx.state.background_threshold)


#: output name -> message builder, for every row the node publishes (``class_mask`` is built per class below)
BUILDERS: Dict[str, Callable[[FrameContext], Any]] = {
    'labels': _image('labels'),
    'camera_info': _camera_info,
    'class_info': _class_info,
    'label_info': _label_info,
    'masks': _masks,
    'confidence': _image('confidence', '32FC1'),
    'confidence_mono8': _image('confidence_mono8', 'mono8'),
    'background': _image('background', '32FC1'),
    'overlay': _image('overlay', 'rgb8'),
    'points': spatial_outputs.build_points,
    'detections': spatial_outputs.build_detections,
    'detections_3d': spatial_outputs.build_detections_3d,
}


def message_class(msg_type: str) -> Any:
    """The Python class of a ROS interface name such as ``sensor_msgs/msg/Image``."""
    package, kind, name = msg_type.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), name)


def _available(spec: contract.OutputSpec) -> bool:
    """A row needing an optional package (vision_msgs) is published only where that package imports."""
    if not spec.requires:
        return True
    try:
        message_class(spec.msg_type)
    except Exception:  # ImportError, or rosidl's UnsupportedTypeSupport when its libraries are missing
        return False
    return True


def _switched_on(spec: contract.OutputSpec, settings: Any) -> bool:
    return not spec.switch or bool(getattr(settings, spec.switch))


class FrameOutputs:
    """Publishers of one camera's outputs under ``prefix`` (``'~'`` for a single camera)."""

    def __init__(self, node: Any, prefix: str = '~') -> None:
        self._node = node
        self.prefix = prefix.rstrip('/') or '~'
        self.last_frame_id = ''  # frame_id of the latest frame, stamped on the next legend
        self.legend_version: Optional[int] = None  # the legend these publishers latched last
        #: output name -> publisher, for every fixed-topic row of the table the node publishes here
        #: (their QoS follows the qos_overrides.<topic>.publisher.* start parameters)
        self.pubs: Dict[str, Any] = {
            spec.name: create_overridable(node, 'publisher', message_class(spec.msg_type), self.topic(spec.topic),
                                          profile(spec.qos))
            for spec in contract.camera_outputs() if not spec.family and _available(spec)}
        self.mask_pubs: Dict[str, Any] = {}
        self._mask_pubs_lock = threading.Lock()
        self._wanted_tokens: Callable[[], Set[str]] = set
        self._mask_guard = node.create_guard_condition(self._on_mask_topics_changed)

    def topic(self, name: str) -> str:
        """The topic of output ``name`` in this namespace, e.g. ``~/front/labels``."""
        return f'{self.prefix}/{name}'

    def is_read(self, name: str, settings: Any) -> bool:
        """Somebody subscribes to row ``name`` and its switch is on (False for a row not published here)."""
        return self._read(name, settings)

    def _read(self, name: str, settings: Any) -> bool:
        """Somebody subscribes to row ``name`` and its switch is on."""
        pub = self.pubs.get(name)
        return (pub is not None and _switched_on(contract.BY_NAME[name], settings)
                and pub.get_subscription_count() > 0)

    # ------------------------------------------------------------------ what to build
    def subscribed_mask_ids(self, state, settings) -> Optional[Set[int]]:
        """Class ids whose masks somebody reads: None = every class (``masks`` is subscribed)."""
        if not settings.publish_masks:
            return set()
        if self._read('masks', settings):
            return None
        with self._mask_pubs_lock:
            return {state.mask_topics[token] for token, pub in self.mask_pubs.items()
                    if token in state.mask_topics and pub.get_subscription_count() > 0}

    def wanted(self, state, settings) -> Set[str]:
        """What the frame builder must compute (names of :data:`talk2dino_ros.outputs.frame.OUTPUT_NAMES`)
        for the per-frame rows somebody reads; empty when nobody reads any."""
        out = {spec.needs for spec in contract.camera_outputs()
               if spec.cadence == 'per_frame' and spec.needs and spec.needs != frame.MASKS
               and self._read(spec.name, settings)}
        mask_ids = self.subscribed_mask_ids(state, settings)
        if mask_ids is None or mask_ids:
            out.add(frame.MASKS)
        return out

    # ------------------------------------------------------------------ publishing
    def publish_legend(self, state, stamp) -> bool:
        """Latch the legend of ``state`` on every latched row (ClassInfo, LabelInfo where installed), once
        per legend version (a new worker after a re-activation does not repeat it); True when published."""
        if state.version == self.legend_version:
            return False
        self.legend_version = state.version
        ctx = FrameContext(None, Header(stamp=stamp, frame_id=self.last_frame_id), state)
        for spec in contract.camera_outputs():
            if spec.cadence == 'latched' and spec.name in self.pubs:
                self.pubs[spec.name].publish(BUILDERS[spec.name](ctx))
        return True

    def publish(self, images: FrameImages, header: Any, state, settings, image_size: Tuple[int, int] = (0, 0),
                camera_info: Any = None, spatial: Any = None) -> None:
        """Send the built outputs of one frame, each with the camera image's exact header (the cloud and the
        3D boxes with the depth image's, see :mod:`talk2dino_ros.ros.spatial_outputs`)."""
        self.last_frame_id = header.frame_id
        ctx = FrameContext(images, header, state, settings, image_size, camera_info, spatial)
        for spec in contract.camera_outputs():
            if spec.cadence != 'per_frame' or spec.family or not self._read(spec.name, settings):
                continue
            msg = BUILDERS[spec.name](ctx)
            if msg is not None:
                self.pubs[spec.name].publish(msg)
        if images.masks:
            self._publish_class_masks(images, header, state)

    def _publish_class_masks(self, images: FrameImages, header: Any, state) -> None:
        with self._mask_pubs_lock:
            for token, class_id in state.mask_topics.items():
                pub = self.mask_pubs.get(token)
                if pub is not None and class_id in images.masks and pub.get_subscription_count() > 0:
                    mask = images.masks[class_id]
                    if images.mask_type != frame.MASK_BINARY:  # per-class topics are always mono8 0/255
                        mask = frame.binary_mask(images.labels, class_id)
                    pub.publish(outputs.numpy_to_image(mask, 'mono8', header=header))

    # ------------------------------------------------------------------ per-class mask topics
    @staticmethod
    def wanted_mask_tokens(state, settings) -> Set[str]:
        """The ``mask/<class>`` topics the legend of ``state`` should have (first mask_topics_limit)."""
        if state is None:
            return set()
        limit = int(settings.mask_topics_limit) if settings.publish_masks else 0
        return set(list(state.mask_topics)[:limit])

    def sync_mask_publishers(self, wanted_tokens: Callable[[], Set[str]]) -> None:
        """Ask the executor thread to make the ``mask/<class>`` publishers match ``wanted_tokens()``."""
        self._wanted_tokens = wanted_tokens
        with self._mask_pubs_lock:
            current = set(self.mask_pubs)
        if wanted_tokens() != current:
            self._mask_guard.trigger()

    def _on_mask_topics_changed(self) -> None:
        """Executor thread: create/destroy the per-class mask publishers."""
        spec = contract.BY_NAME['class_mask']
        wanted = self._wanted_tokens()
        with self._mask_pubs_lock:
            for token in list(self.mask_pubs):
                if token not in wanted:
                    self._node.destroy_publisher(self.mask_pubs.pop(token))
            for token in wanted:
                if token not in self.mask_pubs:
                    # no QoS event handlers: rclpy keeps a reference per handler in the callback group after
                    # the publisher is destroyed, and these publishers come and go with every vocabulary
                    self.mask_pubs[token] = self._node.create_publisher(
                        Image, self.topic(spec.topic.replace('<class>', token)), self._class_mask_qos(spec),
                        event_callbacks=PublisherEventCallbacks(use_default_callbacks=False))

    def _class_mask_qos(self, spec: contract.OutputSpec) -> Any:
        """The QoS of a per-class mask topic: that of ``masks``, its qos_overrides included (no parameters
        per class topic, which come and go with the vocabulary)."""
        masks = self.pubs.get('masks')
        return copy.copy(masks.qos_profile) if masks is not None else profile(spec.qos)

    def destroy(self) -> None:
        """Destroy every publisher of this namespace (lifecycle cleanup)."""
        node = self._node
        with self._mask_pubs_lock:
            pubs = list(self.mask_pubs.values())
            self.mask_pubs.clear()
        pubs += list(self.pubs.values())
        self.pubs = {}
        for pub in pubs:
            node.destroy_publisher(pub)
        node.destroy_guard_condition(self._mask_guard)
