"""The QoS profiles of the node, chosen explicitly in one place.

* Camera input: ``sensor_data`` (best effort, keep last 5, volatile) by default. A best-effort
  subscription matches both best-effort and reliable camera publishers; ``reliable`` only matches
  reliable ones but never loses a frame on the wire. Depth > 1 is pointless for the node (it only
  processes the latest frame) but harmless.
* Outputs: reliable, keep last ``depth`` (the ROS default for publishers); RViz and rosbag2 match it.
  ``~/masks`` (and ``mask/<class>``) keep 1: the DDS writer holds a buffer per sample in flight at the
  size of the largest it ever sent, and a 1,000-class masks message is 19 MB at 160x120 (see ``QOS`` in
  :mod:`talk2dino_ros.contract.outputs`).
* Legends: reliable + transient-local ("latched"), so a late subscriber gets the current legend.
* The vocabulary topic has two subscriptions: reliable + transient-local (a vocabulary latched before
  the node started still arrives) and reliable + volatile (``ros2 topic pub`` without QoS flags, which a
  transient-local subscription cannot match). A sample both deliver is applied once.

Every publisher and subscription honours rclpy's ``qos_overrides.<topic>.<publisher|subscription>.<policy>``
start parameters (history, depth, reliability, durability); the latched vocabulary subscription is
``subscription_latched``, and the per-class ``mask/<class>`` topics use the profile of ``masks``.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Optional

from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)
from rclpy.qos_overriding_options import InvalidQosOverridesError, QoSOverridingOptions

from talk2dino_ros.contract.outputs import QOS
from talk2dino_ros.contract.parameters import RELIABILITY_CHOICES


def image_input_qos(reliability: str = 'best_effort', depth: int = 5) -> QoSProfile:
    """Camera subscription profile: sensor_data with the given reliability and depth."""
    if reliability not in RELIABILITY_CHOICES:
        raise ValueError(f'image reliability {reliability!r} is not one of {RELIABILITY_CHOICES}')
    if depth < 1:
        raise ValueError(f'image queue depth must be >= 1, got {depth}')
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=(ReliabilityPolicy.BEST_EFFORT if reliability == 'best_effort'
                     else ReliabilityPolicy.RELIABLE),
        durability=qos_profile_sensor_data.durability,
    )


def profile(kind: str, depth: Optional[int] = None) -> QoSProfile:
    """The rclpy profile of an output QoS kind of the contract (``frame``, ``masks``, ``legend``, ``diagnostics``)."""
    spec = QOS[kind]
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=spec.depth if depth is None else depth,
        reliability=ReliabilityPolicy.RELIABLE if spec.reliability == 'reliable' else ReliabilityPolicy.BEST_EFFORT,
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if spec.durability == 'transient_local'
                    else DurabilityPolicy.VOLATILE))


def output_qos(depth: Optional[int] = None) -> QoSProfile:
    """Per-frame outputs (labels, maps, overlay; ``~/masks`` has its own kind, ``masks``)."""
    return profile('frame', depth)


def latched_qos() -> QoSProfile:
    """Reliable + transient-local, keep last 1: legends and the vocabulary topic."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def vocabulary_volatile_qos() -> QoSProfile:
    """Reliable + volatile, keep last 10: the vocabulary subscription that matches plain publishers."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


def legend_qos(depth: Optional[int] = None) -> QoSProfile:
    """Publisher QoS of the legends (~/class_info, ~/label_info): reliable + transient-local with a short
    history, so a legend published right before the next one is not overwritten before a live reader got it.
    A reader with depth 1 (the usual latched subscriber, or a late joiner) still gets just the newest."""
    return profile('legend', depth)


def diagnostics_qos() -> QoSProfile:
    """/diagnostics as diagnostic_updater publishes it (reliable, volatile, depth 10)."""
    return profile('diagnostics')


# ---------------------------------------------------------------------------- qos_overrides.* parameters
#: the policies a user can override on every topic of the node (read-only parameters, set at start):
#: ``qos_overrides.<fully qualified topic>.<publisher|subscription>[_<id>].<policy>``
OVERRIDABLE_POLICIES = (QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH, QoSPolicyKind.RELIABILITY,
                        QoSPolicyKind.DURABILITY)


def overriding_options(entity_id: Optional[str] = None) -> QoSOverridingOptions:
    """rclpy's QoS overriding for one publisher/subscription (``entity_id`` tells two on one topic apart)."""
    return QoSOverridingOptions(OVERRIDABLE_POLICIES, entity_id=entity_id)


def create_overridable(node: Any, kind: str, msg_type: Any, topic: str, qos: QoSProfile,
                       callback: Optional[Callable[..., None]] = None, *, entity_id: Optional[str] = None,
                       **kwargs: Any) -> Any:
    """``node.create_publisher`` (kind ``publisher``) or ``create_subscription`` (``subscription``, with
    ``callback``) whose QoS follows the ``qos_overrides.<topic>...`` parameters of a params file or
    ``--ros-args -p``; ``qos`` is the node's own profile.

    An override rclpy cannot apply (``reliability: sometimes``, ``depth: abc``) is a bad start value like any
    other: one WARN line and the node's own profile.
    """
    def create(profile: QoSProfile, **extra: Any) -> Any:
        if kind == 'publisher':
            return node.create_publisher(msg_type, topic, profile, **kwargs, **extra)
        return node.create_subscription(msg_type, topic, callback, profile, **kwargs, **extra)
    try:
        return create(copy.copy(qos), qos_overriding_options=overriding_options(entity_id))
    except (InvalidParameterTypeException, InvalidParameterValueException, InvalidQosOverridesError,
            RuntimeError) as exc:  # rclpy raises RuntimeError for an unknown policy name
        suffix = f'_{entity_id}' if entity_id else ''
        node.get_logger().warning(
            f'bad start value: qos_overrides.{node.resolve_topic_name(topic)}.{kind}{suffix}: {exc}; '
            'using the default QoS')
    return create(qos)
