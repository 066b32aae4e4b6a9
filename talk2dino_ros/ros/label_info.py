"""vision_msgs/LabelInfo for the label image (the contract of Nav2's semantic segmentation layer).

``vision_msgs`` is optional: it is not a dependency of the package (it cannot be installed from pip), so
the node publishes ``~/label_info`` only where it is importable (an apt ROS 2 install with
``ros-$ROS_DISTRO-vision-msgs``). The class ids follow the label image: 0 = ``background``, vocabulary
class ``i`` (0-based) = ``i + 1``; ``threshold`` is the node's background threshold clamped to 0..1
(0 when the background class is disabled).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from talk2dino_ros.model.types import BACKGROUND

_AVAILABLE: Optional[bool] = None


def vision_msgs_available() -> bool:
    """True when ``vision_msgs.msg.LabelInfo`` can be imported (checked once, then cached)."""
    global _AVAILABLE
    if _AVAILABLE is None:
        try:
            from vision_msgs.msg import LabelInfo, VisionClass  # noqa: F401
        except Exception:  # ImportError, or rosidl's UnsupportedTypeSupport when its libraries are missing
            _AVAILABLE = False
        else:
            _AVAILABLE = True
    return _AVAILABLE


def label_info_threshold(background_threshold: float) -> float:
    """LabelInfo.threshold is documented as 0..1; a disabled background (<= 0) becomes 0."""
    return min(1.0, max(0.0, float(background_threshold)))


def make_label_info(header: Any, class_names: Sequence[str], threshold: float) -> Any:
    """A ``vision_msgs/LabelInfo`` for a vocabulary (``class_names`` without 'background').

    ``class_map`` is ``[(0, 'background'), (1, class_names[0]), ...]``, the ids of the label image.
    Raises ImportError when vision_msgs is not installed (check :func:`vision_msgs_available`).
    """
    from vision_msgs.msg import LabelInfo, VisionClass

    names = list(class_names)
    if names and names[0] == BACKGROUND:
        raise ValueError("class_names must not contain 'background': id 0 is added here")
    if len(names) + 1 > 65535:
        raise ValueError(f'{len(names)} classes do not fit uint16 class ids (65535 means unlabeled)')
    msg = LabelInfo()
    msg.header = header
    msg.class_map = [VisionClass(class_id=i, class_name=name)
                     for i, name in enumerate([BACKGROUND] + names)]
    msg.threshold = label_info_threshold(threshold)
    return msg
