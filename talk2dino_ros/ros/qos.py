"""The QoS profiles of the node, chosen explicitly in one place.

* Camera input: ``sensor_data`` (best effort, keep last 5, volatile) by default. A best-effort
  subscription matches both best-effort and reliable camera publishers; ``reliable`` only matches
  reliable ones but never loses a frame on the wire. Depth > 1 is pointless for the node (it only
  processes the latest frame) but harmless.
* Outputs: reliable, keep last ``depth`` (the ROS default for publishers); RViz and rosbag2 match it.
* Legends: reliable + transient-local ("latched"), so a late subscriber gets the current legend.
* The vocabulary topic has two subscriptions: reliable + transient-local (a vocabulary latched before
  the node started still arrives) and reliable + volatile (``ros2 topic pub`` without QoS flags, which a
  transient-local subscription cannot match). A sample both deliver is applied once.
"""
from __future__ import annotations

from typing import Optional

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

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
    """The rclpy profile of an output QoS kind of the contract (``frame``, ``legend``, ``diagnostics``)."""
    spec = QOS[kind]
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=spec.depth if depth is None else depth,
        reliability=ReliabilityPolicy.RELIABLE if spec.reliability == 'reliable' else ReliabilityPolicy.BEST_EFFORT,
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if spec.durability == 'transient_local'
                    else DurabilityPolicy.VOLATILE))


def output_qos(depth: Optional[int] = None) -> QoSProfile:
    """Per-frame outputs (labels, masks, maps, overlay)."""
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
