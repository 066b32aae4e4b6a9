"""Every output of the segmentation node, ROS-free: topic, message type, encoding, QoS, switch, cadence, bag.

One table (:data:`OUTPUTS`) drives the node's publishers (:mod:`talk2dino_ros.ros.frame_outputs`), the topics
``segment_bag`` writes, ``segment_node --help``, the README topic table, the RViz layout and the launch file's
RViz config, so they cannot drift apart (``test/contract`` fails when one does).

Adding an output: one :class:`OutputSpec` row here, plus its builder where it is published (a function in
``talk2dino_ros.ros.frame_outputs.BUILDERS`` for the node; for ``bag=True`` one in ``segment_bag``), then
``python -m talk2dino_ros.contract.docs --write`` to refresh the README table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

#: cadences: ``per_frame`` outputs are lazy (built only while somebody subscribes), ``latched`` ones are
#: published on every legend change and kept for late subscribers, ``periodic`` ones on a timer
CADENCES = ('per_frame', 'latched', 'periodic')


@dataclass(frozen=True)
class QosSpec:
    """A QoS profile in words (``talk2dino_ros.ros.qos`` builds the rclpy profile from it)."""

    reliability: str  # 'reliable' | 'best_effort'
    durability: str   # 'volatile' | 'transient_local'
    depth: int
    text: str         # how the README says it


#: the QoS kinds the outputs use
QOS: Dict[str, QosSpec] = {
    'frame': QosSpec('reliable', 'volatile', 5, 'reliable, depth 5'),
    # ~/masks grows with the vocabulary (classes x pixels: 19 MB for 1,000 classes at 160x120). Fast DDS's
    # writer (rmw_fastrtps forces a PREALLOCATED_WITH_REALLOC payload pool) keeps one buffer per sample in
    # flight, up to depth + 1, each grown to the largest sample it ever held and never shrunk: at depth 5 a
    # burst of large vocabularies pins 6 such buffers for the rest of the process, reached step by step
    # whenever a reader lags. Depth 1 caps it at 2 (reached with the first two large frames); a reader that
    # falls behind gets the newest masks, as with the latest-frame-wins camera input.
    'masks': QosSpec('reliable', 'volatile', 1, 'reliable, depth 1'),
    'legend': QosSpec('reliable', 'transient_local', 10,
                      'reliable, **transient-local**, history 10 (a depth-1 reader gets the newest)'),
    'diagnostics': QosSpec('reliable', 'volatile', 10, 'reliable, depth 10'),
}


@dataclass(frozen=True)
class OutputSpec:
    """One output. ``topic`` is relative to the camera's namespace (``~/`` or ``~/<camera>/``) unless it
    starts with ``/``; ``<class>`` in it makes a family of topics that follows the vocabulary."""

    name: str
    topic: str
    msg_type: str            # ROS interface name, e.g. 'sensor_msgs/msg/Image'
    encoding: str            # image encoding(s), '' for other messages
    qos: str                 # a key of QOS
    cadence: str             # one of CADENCES
    description: str
    switch: str = ''         # a bool parameter that turns it off ('' = always on)
    bag: bool = False        # segment_bag writes it
    node: bool = True        # the node publishes it (False: only the offline tools do, so far)
    needs: str = ''          # what the frame builder must compute for it (talk2dino_ros.outputs.frame names)
    requires: str = ''       # an optional ROS package it needs ('' = none)
    rviz: str = ''           # name of the RViz display that shows it ('' = none)

    @property
    def per_camera(self) -> bool:
        """Under each camera's namespace (False: one topic for the node, e.g. /diagnostics)."""
        return not self.topic.startswith('/')

    @property
    def family(self) -> bool:
        """One topic per vocabulary class (``mask/<class>``)."""
        return '<class>' in self.topic

    def readme_topic(self) -> str:
        return f'~/{self.topic}' if self.per_camera else self.topic


_IMAGE = 'sensor_msgs/msg/Image'
OUTPUTS: Tuple[OutputSpec, ...] = (
    OutputSpec('labels', 'labels', _IMAGE, 'mono8/mono16', 'frame', 'per_frame',
               'every processed frame, while subscribed (a frame nobody reads any output of is not segmented): '
               '0 = background, class i = i + 1; mono16 above 255 classes', bag=True, needs='labels',
               rviz='Labels'),
    OutputSpec('camera_info', 'camera_info', 'sensor_msgs/msg/CameraInfo', '', 'frame', 'per_frame',
               'the camera\'s CameraInfo with the outputs\' header (scaled when their size differs), with every '
               'frame whose outputs are published, once the camera has published one; for RViz\'s Camera display '
               'and depth_image_proc'),
    OutputSpec('class_info', 'class_info', 'talk2dino_ros/msg/ClassInfo', '', 'legend', 'latched',
               'on every legend change (a late subscriber gets the current one): ids, names, colours, '
               'vocabulary_version', bag=True),
    OutputSpec('label_info', 'label_info', 'vision_msgs/msg/LabelInfo', '', 'legend', 'latched',
               'only where vision_msgs is installed: the same legend for Nav2\'s semantic segmentation layer '
               '(class_map ids as in labels, threshold = background threshold clamped to 0..1)', bag=True,
               requires='vision_msgs'),
    OutputSpec('masks', 'masks', 'talk2dino_ros/msg/ClassMasks', '', 'masks', 'per_frame',
               'one mask per class (binary: mono8 0/255, score: 32FC1, see mask_type); only while subscribed',
               switch='publish_masks', needs='masks'),
    OutputSpec('class_mask', 'mask/<class>', _IMAGE, 'mono8', 'masks', 'per_frame',
               'per-class 0/255 mask for RViz, for the first mask_topics_limit classes; topics follow the '
               'vocabulary; computed only while subscribed', switch='publish_masks', needs='masks'),
    OutputSpec('confidence', 'confidence', _IMAGE, '32FC1', 'frame', 'per_frame',
               'max class score per pixel; only while subscribed', bag=True, needs='confidence'),
    OutputSpec('confidence_mono8', 'confidence_mono8', _IMAGE, 'mono8', 'frame', 'per_frame',
               'the same clipped to 0..1 and scaled to 0..255 (what Nav2\'s semantic segmentation layer reads); '
               'only while subscribed', bag=True, needs='confidence_mono8'),
    OutputSpec('background', 'background', _IMAGE, '32FC1', 'frame', 'per_frame',
               'background score (the background channel, or 1 - max class score without one); only while '
               'subscribed', needs='background'),
    OutputSpec('overlay', 'overlay', _IMAGE, 'rgb8', 'frame', 'per_frame',
               'class colours over the image with a legend of the classes in view; only while subscribed',
               switch='publish_overlay', bag=True, needs='overlay', rviz='Overlay'),
    OutputSpec('points', 'points', 'sensor_msgs/msg/PointCloud2', '', 'frame', 'per_frame',
               'with depth (parameter depth): the labelled point cloud of each processed frame that has a depth '
               'partner (x y z, confidence, label, optionally rgb; see 3D), with the depth image\'s header; only '
               'while subscribed', bag=True, needs='labels'),
    OutputSpec('detections', 'detections', 'vision_msgs/msg/Detection2DArray', '', 'frame', 'per_frame',
               'one detection per connected region of a class (2D box in pixels, legend id as class_id, mean '
               'confidence as score), with the camera image\'s header; no depth needed; only while subscribed',
               bag=True, needs='labels', requires='vision_msgs'),
    OutputSpec('detections_3d', 'detections_3d', 'vision_msgs/msg/Detection3DArray', '', 'frame', 'per_frame',
               'with depth: the same regions as robust 3D boxes (centre and size in metres), with the depth '
               'image\'s header; only while subscribed', bag=True, needs='labels', requires='vision_msgs'),
    OutputSpec('diagnostics', '/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray', '', 'diagnostics',
               'periodic', 'every diagnostics_period s, status "<node\'s full name>: segmentation" (e.g. '
               '"/front/talk2dino: segmentation"): input/processed rate, frames received/processed/dropped/rejected '
               '(and frames_rejected_<reason>: too_large, unsupported_encoding, malformed, undecodable), latency '
               'p50/p95, inference time, device, model, vocabulary version, last error; while no frame arrives, '
               'the input topic, its publishers, incompatible QoS and the image topics that exist'),
)
BY_NAME: Dict[str, OutputSpec] = {spec.name: spec for spec in OUTPUTS}


def node_outputs() -> Tuple[OutputSpec, ...]:
    """The rows the node publishes."""
    return tuple(spec for spec in OUTPUTS if spec.node)


def camera_outputs() -> Tuple[OutputSpec, ...]:
    """The rows the node publishes under each camera's namespace."""
    return tuple(spec for spec in OUTPUTS if spec.node and spec.per_camera)


def bag_outputs() -> Tuple[OutputSpec, ...]:
    """The rows ``segment_bag`` writes (under its ``--namespace``)."""
    return tuple(spec for spec in OUTPUTS if spec.bag)


def topic_in(namespace: str, spec: OutputSpec) -> str:
    """The topic of ``spec`` under ``namespace`` (``~``, ``~/front``, ``/talk2dino``): e.g. ``~/front/labels``."""
    if not spec.per_camera:
        return spec.topic
    return f'{namespace.rstrip("/")}/{spec.topic}'


def _type_words(spec: OutputSpec) -> str:
    pkg, _, name = spec.msg_type.partition('/msg/')
    encoding = f' {" / ".join(f"`{e}`" for e in spec.encoding.split("/"))}' if spec.encoding else ''
    return f'`{pkg}/{name}`{encoding}'


def summary_line(spec: OutputSpec, namespace: str = '~') -> str:
    """``~/labels (sensor_msgs/Image mono8/mono16)``: one output for ``--help`` texts."""
    pkg, _, name = spec.msg_type.partition('/msg/')
    encoding = f' {spec.encoding}' if spec.encoding else ''
    return f'{topic_in(namespace, spec)} ({pkg}/{name}{encoding})'


def readme_row(spec: OutputSpec) -> str:
    """The README topic table row of an output."""
    switch = f'; off with `{spec.switch}: false`' if spec.switch else ''
    needs = f' (needs `{spec.requires}`)' if spec.requires and not spec.description.startswith('only where') else ''
    return (f'| `{spec.readme_topic()}` | {_type_words(spec)} | {QOS[spec.qos].text} | '
            f'{spec.description}{switch}{needs} |')
