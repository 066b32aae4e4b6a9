"""``~/locate``: where are these things? The answer for a list of class names, from the latest frame.

What the node keeps: per camera, a reference to the latest colour frame and to the latest one that came
with a registered depth frame (and its CameraInfo). Nothing is decoded or segmented until a request
comes; then, on the node's control thread (never on the executor):

* the names go through the vocabulary's rules (same refusal reasons, same ``max_classes``);
* the frame is the latest with depth (3D boxes), else the latest colour frame (2D boxes only);
* it is segmented with the current vocabulary plus every requested name it does not hold (encoded through
  the text cache; the published vocabulary, its legend and the ``vocabulary`` parameter do not change), so
  a requested class competes with the classes of the published vocabulary as it would if it were added;
* each accepted name gets the regions of its class, largest first; a name not found is an empty list.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from talk2dino_ros.class_names import name_key
from talk2dino_ros.ros.vocabulary import ParsedVocabulary
from talk2dino_ros.spatial.scene import Detection, SpatialOptions, build_spatial


@dataclass
class StoredFrame:
    """A colour frame (raw message) and, when it had one, its depth partner (raw Image, CameraInfo)."""

    colour: Any
    compressed: bool
    depth: Optional[Any] = None
    info: Optional[Any] = None


class LocateMemory:
    """The frames ``~/locate`` answers from: per camera the latest, and the latest with depth."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: Dict[str, StoredFrame] = {}
        self._with_depth: Dict[str, StoredFrame] = {}

    def remember(self, camera: str, frame: StoredFrame) -> None:
        with self._lock:
            self._latest[camera] = frame
            if frame.depth is not None:
                self._with_depth[camera] = frame

    def frame_for(self, camera: str) -> Optional[StoredFrame]:
        """The latest frame with depth, else the latest frame, else None."""
        with self._lock:
            return self._with_depth.get(camera) or self._latest.get(camera)

    def clear(self) -> None:
        with self._lock:
            self._latest.clear()
            self._with_depth.clear()


@dataclass
class LocatedName:
    name: str
    in_vocabulary: bool
    class_id: int
    objects: List[Detection] = field(default_factory=list)


@dataclass
class LocateAnswer:
    success: bool
    message: str
    rejected: Tuple[str, ...] = ()
    header: Any = None
    has_depth: bool = False
    results: List[LocatedName] = field(default_factory=list)


def locate(parsed: ParsedVocabulary, state: Any, frame: Optional[StoredFrame], options: SpatialOptions,
           decode_colour: Callable[[StoredFrame], np.ndarray],
           decode_depth: Callable[[StoredFrame], Optional[Tuple[np.ndarray, Any]]]) -> LocateAnswer:
    """Answer a request whose names were parsed with the vocabulary's rules (see the module docstring).

    ``state``: the node's current LegendState (None before model and vocabulary exist). ``decode_colour``
    gives the frame's RGB; ``decode_depth`` (metres, Intrinsics) or None when its depth cannot be used.
    """
    rejected = tuple(r.name for r in parsed.rejected)
    summary = parsed.summary()
    if not parsed.accepted:
        return LocateAnswer(False, f'nothing to locate: no usable class name ({summary})', rejected)
    if state is None:
        return LocateAnswer(False, f'no model or vocabulary yet ({summary})', rejected)
    if frame is None:
        return LocateAnswer(False, f'no camera frame received yet ({summary})', rejected)
    published = {name_key(n): i + 1 for i, n in enumerate(state.names)}
    extra = []
    for name in parsed.accepted:
        if name_key(name) not in published and name_key(name) not in {name_key(e) for e in extra}:
            extra.append(name)
    names = tuple(state.names) + tuple(extra)
    vocabulary = state.vocabulary
    if extra:  # encoded through the text cache; never installed, so the published vocabulary stays
        vocabulary = state.segmenter.build_vocabulary(names, background=state.vocabulary.background)
    rgb = decode_colour(frame)
    result = state.segmenter.segment(rgb, vocabulary=vocabulary, options=state.options)
    labels = result.labels_with_background_zero()
    ids = {}
    for name in parsed.accepted:
        key = name_key(name)
        ids[name] = published.get(key) or len(state.names) + 1 + [name_key(e) for e in extra].index(key)
    # only the asked-for classes become regions: the others are background for this answer
    wanted = np.zeros(len(names) + 1, labels.dtype)
    for class_id in ids.values():
        wanted[class_id] = class_id
    depth = decode_depth(frame) if frame.depth is not None else None
    spatial = build_spatial(wanted[labels], result.confidence(), names, *(depth or (None, None)), options,
                            cloud=False, detections=True)
    header = frame.depth.header if depth is not None else frame.colour.header
    by_class: Dict[int, List[Detection]] = {}
    for det in spatial.detections:
        by_class.setdefault(det.class_id, []).append(det)
    results = [LocatedName(name, name_key(name) in published, published.get(name_key(name), 0),
                           by_class.get(ids[name], [])) for name in parsed.accepted]
    found = sum(1 for r in results if r.objects)
    where = '3D' if depth is not None else '2D (no depth frame)'
    message = f'{found} of {len(results)} names found, {where}; {summary}'
    return LocateAnswer(True, message, rejected, header, depth is not None, results)


def fill_response(response: Any, answer: LocateAnswer) -> Any:
    """Copy an answer into a ``talk2dino_ros/srv/Locate`` response (rclpy)."""
    from geometry_msgs.msg import Point, Vector3

    from talk2dino_ros.msg import LocatedClass, ObjectLocation

    response.success = answer.success
    response.message = answer.message
    response.rejected = list(answer.rejected)
    response.has_depth = answer.has_depth
    if answer.header is not None:
        response.header = answer.header
    out = []
    for item in answer.results:
        objects = []
        for det in item.objects:
            loc = ObjectLocation(score=float(det.score) if np.isfinite(det.score) else 0.0, pixels=int(det.pixels),
                                 center_x=det.center_x, center_y=det.center_y, size_x=det.size_x,
                                 size_y=det.size_y, has_3d=det.center is not None, points=int(det.points))
            if det.center is not None:
                loc.center = Point(x=det.center[0], y=det.center[1], z=det.center[2])
                loc.size = Vector3(x=det.size[0], y=det.size[1], z=det.size[2])
            objects.append(loc)
        out.append(LocatedClass(name=item.name, in_vocabulary=item.in_vocabulary, class_id=item.class_id,
                                objects=objects))
    response.results = out
    return response


def camera_of(request_camera: str, cameras: Sequence[Any]) -> Tuple[Optional[str], str]:
    """(camera name, '') for the request's camera ('' = the first), or (None, why) when there is none."""
    if not request_camera:
        return cameras[0].name, ''
    names = [c.name for c in cameras]
    if request_camera in names:
        return request_camera, ''
    return None, f'unknown camera {request_camera!r}; cameras: {", ".join(n or "(single)" for n in names)}'
