"""The publishers of one output namespace (``~`` or ``~/<camera>``) and the lazy fan-out of a frame.

Only what somebody reads is built and serialised: :meth:`FrameOutputs.wanted` lists the per-frame outputs
with subscribers, the node asks :func:`talk2dino_ros.outputs.frame.build_frame_outputs` for exactly
those, and :meth:`FrameOutputs.publish` sends them. The legend topics (``class_info``, ``label_info``) are
latched and published whenever the legend changes, subscribers or not.

The per-class ``mask/<class>`` publishers follow the legend. They are created and destroyed on the
executor thread only (a guard condition the worker triggers): destroying a publisher while the executor
builds its wait set invalidates its handle.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Optional, Set

from sensor_msgs.msg import Image
from std_msgs.msg import Header

from talk2dino_ros.outputs import frame
from talk2dino_ros.outputs.frame import FrameImages
from talk2dino_ros.ros import outputs
from talk2dino_ros.ros.label_info import make_label_info, vision_msgs_available
from talk2dino_ros.ros.qos import legend_qos, output_qos


class FrameOutputs:
    """Publishers of one camera's outputs under ``prefix`` (``'~'`` for a single camera)."""

    def __init__(self, node: Any, prefix: str = '~') -> None:
        from talk2dino_ros.msg import ClassInfo, ClassMasks

        self._node = node
        self.prefix = prefix.rstrip('/') or '~'
        self.last_frame_id = ''  # frame_id of the latest frame, stamped on the next legend
        self.legend_version: Optional[int] = None  # the legend these publishers latched last
        self.labels_pub = node.create_publisher(Image, self.topic('labels'), output_qos())
        self.confidence_pub = node.create_publisher(Image, self.topic('confidence'), output_qos())
        self.confidence8_pub = node.create_publisher(Image, self.topic('confidence_mono8'), output_qos())
        self.background_pub = node.create_publisher(Image, self.topic('background'), output_qos())
        self.overlay_pub = node.create_publisher(Image, self.topic('overlay'), output_qos())
        self.info_pub = node.create_publisher(ClassInfo, self.topic('class_info'), legend_qos())
        self.masks_pub = node.create_publisher(ClassMasks, self.topic('masks'), output_qos())
        # Nav2 semantic-segmentation contract: vision_msgs/LabelInfo beside the legend, where installed
        self.label_info_pub = None
        if vision_msgs_available():
            from vision_msgs.msg import LabelInfo
            self.label_info_pub = node.create_publisher(LabelInfo, self.topic('label_info'), legend_qos())
        self.mask_pubs: Dict[str, Any] = {}
        self._mask_pubs_lock = threading.Lock()
        self._wanted_tokens: Callable[[], Set[str]] = set
        self._mask_guard = node.create_guard_condition(self._on_mask_topics_changed)

    def topic(self, name: str) -> str:
        """The topic of output ``name`` in this namespace, e.g. ``~/front/labels``."""
        return f'{self.prefix}/{name}'

    # ------------------------------------------------------------------ what to build
    def _frame_publishers(self, settings) -> Dict[str, Any]:
        pubs = {frame.LABELS: self.labels_pub, frame.CONFIDENCE: self.confidence_pub,
                frame.CONFIDENCE_MONO8: self.confidence8_pub, frame.BACKGROUND_MAP: self.background_pub}
        if settings.publish_overlay:
            pubs[frame.OVERLAY] = self.overlay_pub
        return pubs

    def subscribed_mask_ids(self, state, settings) -> Optional[Set[int]]:
        """Class ids whose masks somebody reads: None = every class (``masks`` is subscribed)."""
        if not settings.publish_masks:
            return set()
        if self.masks_pub.get_subscription_count() > 0:
            return None
        with self._mask_pubs_lock:
            return {state.mask_topics[token] for token, pub in self.mask_pubs.items()
                    if token in state.mask_topics and pub.get_subscription_count() > 0}

    def wanted(self, state, settings) -> Set[str]:
        """The per-frame outputs (names of :data:`talk2dino_ros.outputs.frame.OUTPUT_NAMES`) with readers."""
        out = {name for name, pub in self._frame_publishers(settings).items() if pub.get_subscription_count() > 0}
        mask_ids = self.subscribed_mask_ids(state, settings)
        if mask_ids is None or mask_ids:
            out.add(frame.MASKS)
        return out

    # ------------------------------------------------------------------ publishing
    def publish_legend(self, state, stamp) -> bool:
        """Latch the legend of ``state`` (ClassInfo, and LabelInfo where vision_msgs is installed), once per
        legend version (a new worker after a re-activation does not repeat it); True when published."""
        if state.version == self.legend_version:
            return False
        self.legend_version = state.version
        header = Header(stamp=stamp, frame_id=self.last_frame_id)
        self.info_pub.publish(outputs.class_info_msg(
            header, state.version, state.method, state.names, state.colors, state.background_threshold))
        if self.label_info_pub is not None:
            self.label_info_pub.publish(make_label_info(header, state.names, state.background_threshold))
        return True

    def publish(self, images: FrameImages, header: Any, state, settings) -> None:
        """Send the built outputs of one frame, each with the camera image's exact header."""
        self.last_frame_id = header.frame_id
        if self.labels_pub.get_subscription_count() > 0:
            self.labels_pub.publish(outputs.numpy_to_image(images.labels, images.label_encoding, header=header))
        if images.confidence is not None:
            self.confidence_pub.publish(outputs.float_image(images.confidence, header))
        if images.confidence_mono8 is not None:
            self.confidence8_pub.publish(outputs.numpy_to_image(images.confidence_mono8, 'mono8', header=header))
        if images.background is not None:
            self.background_pub.publish(outputs.float_image(images.background, header))
        if images.masks:
            if self.masks_pub.get_subscription_count() > 0 and len(images.masks) == len(state.names):
                self.masks_pub.publish(outputs.masks_msg(header, state.version, state.names, images.masks,
                                                         images.mask_type))
            with self._mask_pubs_lock:
                for token, class_id in state.mask_topics.items():
                    pub = self.mask_pubs.get(token)
                    if pub is not None and class_id in images.masks and pub.get_subscription_count() > 0:
                        mask = images.masks[class_id]
                        if images.mask_type != frame.MASK_BINARY:  # per-class topics are always mono8 0/255
                            mask = frame.binary_mask(images.labels, class_id)
                        pub.publish(outputs.numpy_to_image(mask, 'mono8', header=header))
        if images.overlay is not None:
            self.overlay_pub.publish(outputs.numpy_to_image(images.overlay, 'rgb8', header=header))

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
        wanted = self._wanted_tokens()
        with self._mask_pubs_lock:
            for token in list(self.mask_pubs):
                if token not in wanted:
                    self._node.destroy_publisher(self.mask_pubs.pop(token))
            for token in wanted:
                if token not in self.mask_pubs:
                    self.mask_pubs[token] = self._node.create_publisher(
                        Image, self.topic(f'mask/{token}'), output_qos())

    def destroy(self) -> None:
        """Destroy every publisher of this namespace (lifecycle cleanup)."""
        node = self._node
        with self._mask_pubs_lock:
            pubs = list(self.mask_pubs.values())
            self.mask_pubs.clear()
        pubs += [self.labels_pub, self.confidence_pub, self.confidence8_pub, self.background_pub,
                 self.overlay_pub, self.info_pub, self.masks_pub]
        if self.label_info_pub is not None:
            pubs.append(self.label_info_pub)
        for pub in pubs:
            node.destroy_publisher(pub)
        node.destroy_guard_condition(self._mask_guard)
