"""Help for the most common support question: "the node runs but segments nothing".

When no frame has arrived for a few seconds, :class:`InputWatch` looks at the ROS graph and says why, once
in the log (then at most every ``repeat_s``) and on every ``/diagnostics`` message while it lasts:

* the resolved input topic and how many publishers it has;
* publishers whose QoS cannot match our subscription, with the reason (e.g. a best-effort camera and a
  ``reliable`` subscription);
* the ``sensor_msgs/Image`` and ``CompressedImage`` topics that do exist, so a wrong remap is obvious;
* a publisher that matches but whose frames never arrive: the QoS/depth cause (best effort loses large frames
  to UDP fragmentation, a depth of 1 loses them to a busy node).

The same check runs for other inputs (the vocabulary topic) where only incompatible publishers are worth
a warning: a vocabulary arrives rarely, silence is normal.

:func:`diagnose` and :class:`SilenceTimer` are pure logic; :func:`graph_snapshot` is the thin rclpy part.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

from talk2dino_ros.ros.frame_loss import LossEstimator, loss_causes, loss_hint

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
#: seconds without a frame before the watch speaks up
DEFAULT_SILENCE_S = 5.0
#: most topic names listed in one diagnostics value / log line
MAX_LISTED = 12


@dataclass(frozen=True)
class Endpoint:
    """One publisher seen on a topic: its node and its offered QoS (an ``rclpy.qos.QoSProfile``)."""

    node: str
    qos: object


@dataclass(frozen=True)
class GraphSnapshot:
    """What the graph says about one input topic."""

    topic: str                                   # fully resolved name
    publishers: Tuple[Endpoint, ...]
    topics: Tuple[Tuple[str, Tuple[str, ...]], ...]   # (name, types) of every topic in the graph


@dataclass(frozen=True)
class Diagnosis:
    """The outcome of :func:`diagnose`: a log line and diagnostics key/values."""

    topic: str
    publisher_count: int
    incompatible: Tuple[str, ...]                # "<node>: <why>" per publisher no subscription can match
    image_topics: Tuple[str, ...] = ()
    hint: str = ''
    values: Dict[str, str] = field(default_factory=dict)

    def line(self, what: str) -> str:
        """One log line, e.g. ``no images for 5 s on /talk2dino/image: 0 publishers; ...``."""
        text = f'{what} on {self.topic}: {self.publisher_count} publisher(s)'
        if self.incompatible:
            text += '; incompatible QoS: ' + '; '.join(self.incompatible)
        if self.hint:
            text += '; ' + self.hint
        return text


def type_name(msg_type: type) -> str:
    """The graph's name of a message class, e.g. ``sensor_msgs/msg/Image``."""
    return f'{msg_type.__module__.split(".")[0]}/msg/{msg_type.__name__}'


def _qos_words(qos: object) -> str:
    reliability = getattr(getattr(qos, 'reliability', None), 'name', '?').lower()
    durability = getattr(getattr(qos, 'durability', None), 'name', '?').lower()
    return f'{reliability}/{durability}'


def incompatibility(offered: object, requested: object) -> Optional[str]:
    """Why a publisher offering ``offered`` cannot deliver to a subscription requesting ``requested``."""
    from rclpy.qos import QoSCompatibility, qos_check_compatible

    compatibility, reason = qos_check_compatible(offered, requested)
    if compatibility != QoSCompatibility.ERROR:
        return None
    reasons = [r.split(':', 1)[-1].strip() for r in reason.split(';') if r.strip()]
    return (f'offers {_qos_words(offered)}, we request {_qos_words(requested)} ('
            + ', '.join(reasons) + ')')


def diagnose(snapshot: GraphSnapshot, requested: Sequence[object], listed_types: Sequence[str] = IMAGE_TYPES,
             flag: str = '', own_prefix: str = '', wanted_type: str = '') -> Diagnosis:
    """Explain an input topic: publishers, the ones no subscription in ``requested`` matches, and the
    topics of ``listed_types`` that exist (with a remap hint naming ``flag``, e.g. ``image``, towards a
    topic of ``wanted_type``). Topics under ``own_prefix`` (the node's own outputs) are left out."""
    incompatible = []
    for endpoint in snapshot.publishers:
        reasons = [incompatibility(endpoint.qos, qos) for qos in requested]
        if reasons and all(reasons):  # matched by none of our subscriptions
            incompatible.append(f'{endpoint.node} {reasons[0]}')
    candidates = [(name, types) for name, types in snapshot.topics
                  if name != snapshot.topic and not (own_prefix and name.startswith(own_prefix))]
    listed = tuple(sorted(name for name, types in candidates if any(t in listed_types for t in types)))
    same_type = sorted(name for name, types in candidates if wanted_type in types) if wanted_type else list(listed)
    hint = ''
    if not snapshot.publishers and listed and flag:
        shown = ', '.join(listed[:MAX_LISTED]) + (' ...' if len(listed) > MAX_LISTED else '')
        hint = f'topics of that type that exist: {shown}'
        if same_type and flag.startswith('/'):
            # an absolute name comes from the image_topics parameter: that is what to change
            hint += f' (set the image_topics parameter, e.g. {same_type[0]} instead of {flag})'
        elif same_type:
            hint += f' (remap with -r {flag}:={same_type[0]})'
    elif not snapshot.publishers and flag:
        hint = 'no topic of that type exists: is the camera driver running, in this ROS_DOMAIN_ID?'
    elif incompatible:
        hint = 'change the publisher QoS or the node\'s input QoS parameters'
    elif flag:
        hint = lost_frames_hint(requested)
    values = {
        'input_topic': snapshot.topic,
        'input_publishers': str(len(snapshot.publishers)),
        'input_qos_incompatible': '; '.join(incompatible),
    }
    if flag:
        values['image_topics'] = ', '.join(listed[:MAX_LISTED]) + (' ...' if len(listed) > MAX_LISTED else '')
    return Diagnosis(snapshot.topic, len(snapshot.publishers), tuple(incompatible), listed, hint, values)


def lost_frames_hint(requested: Sequence[object]) -> str:
    """Why frames of a publisher our subscription matches still never arrive: name the QoS/depth cause."""
    from rclpy.qos import ReliabilityPolicy

    best_effort = any(getattr(q, 'reliability', None) == ReliabilityPolicy.BEST_EFFORT for q in requested)
    depth = min(int(getattr(q, 'depth', 5)) for q in requested) if requested else 5
    causes = loss_causes('best_effort' if best_effort else 'reliable', depth)
    return 'a publisher matches but no frame arrives: ' + '; '.join(
        causes + ['is the camera publishing (ros2 topic hz)?'])


class SilenceTimer:
    """Decides when to speak: after ``after_s`` without events, once, then at most every ``repeat_s``."""

    def __init__(self, after_s: float = DEFAULT_SILENCE_S, repeat_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.after_s, self.repeat_s, self._clock = after_s, repeat_s, clock
        self._last_event = clock()
        self._last_report: Optional[float] = None

    def event(self) -> None:
        """An input arrived: silence ends and the next silence is reported afresh."""
        self._last_event = self._clock()
        self._last_report = None

    def silent_for(self) -> float:
        return self._clock() - self._last_event

    def silent(self) -> bool:
        """True while no event came for ``after_s`` seconds."""
        return self.silent_for() >= self.after_s

    def should_log(self) -> bool:
        """True when silent and not logged within ``repeat_s`` (marks it logged)."""
        if not self.silent():
            return False
        now = self._clock()
        if self._last_report is not None and now - self._last_report < self.repeat_s:
            return False
        self._last_report = now
        return True


def _node_fqn(namespace: str, name: str) -> str:
    return f'{namespace.rstrip("/")}/{name}' if namespace else name


def graph_snapshot(node, topic: str) -> GraphSnapshot:
    """Query the ROS graph for ``topic`` (resolved name): its publishers with their QoS, and every topic."""
    publishers = tuple(Endpoint(_node_fqn(info.node_namespace, info.node_name), info.qos_profile)
                       for info in node.get_publishers_info_by_topic(topic))
    topics = tuple((name, tuple(types)) for name, types in node.get_topic_names_and_types())
    return GraphSnapshot(topic, publishers, topics)


class InputWatch:
    """Watches one input topic of a node; call :meth:`event` per message and :meth:`check` periodically."""

    def __init__(self, node, topic: str, requested: Sequence[object], what: str, flag: str = '',
                 only_incompatible: bool = False, after_s: float = DEFAULT_SILENCE_S, repeat_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, wanted_type: str = '') -> None:
        self._node, self.topic, self._requested = node, topic, tuple(requested)
        self._wanted_type = wanted_type
        self._own_prefix = node.get_fully_qualified_name().rstrip('/') + '/'
        self._what, self._flag, self._only_incompatible = what, flag, only_incompatible
        self.timer = SilenceTimer(after_s, repeat_s, clock)
        self.diagnosis: Optional[Diagnosis] = None

    def event(self) -> None:
        self.timer.event()
        self.diagnosis = None

    def check(self) -> Optional[Diagnosis]:
        """Diagnose when silent (logging once, then throttled); None while messages flow or all is well."""
        if not self.timer.silent():
            self.diagnosis = None
            return None
        try:
            diagnosis = diagnose(graph_snapshot(self._node, self.topic), self._requested, flag=self._flag,
                                 own_prefix=self._own_prefix, wanted_type=self._wanted_type)
        except Exception as exc:  # a graph query during shutdown: nothing to tell
            self._node.get_logger().debug(f'graph query for {self.topic} failed: {exc}')
            return self.diagnosis
        if self._only_incompatible and not diagnosis.incompatible:
            self.diagnosis = None
            return None
        self.diagnosis = diagnosis
        if self.timer.should_log():
            what = f'{self._what} for {self.timer.silent_for():.0f} s' if not self._only_incompatible else \
                f'{self._what} cannot arrive'
            self._node.get_logger().warning(diagnosis.line(what))
        return diagnosis


class CameraWatches:
    """One :class:`InputWatch` per camera of a node (silence) and one
    :class:`~talk2dino_ros.ros.frame_loss.LossEstimator` (frames lost on the way), and what they say in
    ``/diagnostics``."""

    def __init__(self, node) -> None:
        self._node = node
        self.by_camera: Dict[str, InputWatch] = {}
        self.losses: Dict[str, LossEstimator] = {}
        self._qos: Dict[str, object] = {}

    def watch(self, camera: str, subscription, qos: object, flag: str) -> None:
        """Explain a silent camera topic after a few seconds (``flag``: the name to remap, e.g. ``image``)."""
        self.by_camera[camera] = InputWatch(self._node, subscription.topic_name, (qos,), 'no images',
                                            flag=flag, wanted_type=type_name(subscription.msg_type))
        self.losses.setdefault(camera, LossEstimator())
        self._qos[camera] = qos

    def seen(self, camera: str, stamp: Optional[float] = None) -> None:
        """A frame of ``camera`` arrived (``stamp``: its header stamp in seconds, for the loss estimate)."""
        watch = self.by_camera.get(camera)
        if watch is not None:
            watch.event()
        loss = self.losses.get(camera)
        if loss is not None and stamp is not None:
            loss.add(stamp)

    def loss_message(self) -> Tuple[str, Dict[str, str]]:
        """(why frames of the first camera that loses many are lost, or '', frames_lost_estimate per camera)."""
        from rclpy.qos import ReliabilityPolicy

        message, values = '', {}
        several = len(self.losses) > 1
        for camera, loss in self.losses.items():
            received, lost = loss.estimate()
            values[f'{camera}.frames_lost_estimate' if several else 'frames_lost_estimate'] = str(lost)
            qos = self._qos.get(camera)
            reliability = ('best_effort' if getattr(qos, 'reliability', None) == ReliabilityPolicy.BEST_EFFORT
                           else 'reliable')
            hint = loss_hint(lost / (received + lost) if received + lost else 0.0, reliability,
                             int(getattr(qos, 'depth', 5)))
            if hint and not message:
                message = (f'{camera}: ' if several else '') + hint
        return message, values

    def diagnostics(self) -> Tuple[str, Dict[str, str]]:
        """(a message explaining the first silent camera or '', key/values of every silent one)."""
        message, values = '', {}
        several = len(self.by_camera) > 1
        for camera, watch in self.by_camera.items():
            diagnosis = watch.check()
            if diagnosis is None:
                continue
            prefix = f'{camera}.' if several else ''
            values.update({prefix + k: v for k, v in diagnosis.values.items()})
            if not message:
                message = diagnosis.line(f'no images for {watch.timer.silent_for():.0f} s')
        return message, values
