"""Several cameras on one node: each input topic gets a short, unique name for its output namespace.

``image_topics: [/front/camera/image_raw, /rear/camera/image_raw]`` gives the namespaces ``~/front`` and
``~/rear``. A name is the last token of the topic that says which camera it is: the generic tokens of
camera drivers (``image_raw``, ``camera``, ``color``, ``compressed`` ...) are skipped; when two topics
give the same name, more of their tokens are joined (``left_front``, ``right_front``). ``camera_names``
gives them explicitly instead.

Topics are compared as ROS resolves them (namespace, ``~``, remaps): ``front/image`` and ``/front/image``
in the root namespace are one camera, listed twice; the node keeps it once (:func:`merge_repeated_topics`,
one WARN line). A name ROS cannot resolve is refused with the entry and the reason, before anything
subscribes to it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

#: tokens that name an image stream, not a camera (ROS camera drivers and image_transport)
GENERIC_TOKENS = frozenset({
    'image', 'image_raw', 'image_rect', 'image_rect_raw', 'image_rect_color', 'image_color', 'image_mono',
    'compressed', 'raw', 'color', 'rgb', 'camera', 'cam', 'camera_info', 'rect', 'mono'})
_NOT_TOKEN = re.compile(r'[^A-Za-z0-9_]+')
_VALID_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*$')


class CameraConfigError(ValueError):
    """image_topics / camera_names that cannot be used (the message says why)."""


#: topic name -> fully qualified name (a node's ``resolve_topic_name``); raises for an invalid name
Resolver = Callable[[str], str]


def check_topic_syntax(topic: str) -> str:
    """``topic`` expanded in the root namespace, for a syntax check without a node (raises when invalid)."""
    from rclpy.expand_topic_name import expand_topic_name
    from rclpy.validate_full_topic_name import validate_full_topic_name

    expanded = expand_topic_name(topic, 'node', '/')
    validate_full_topic_name(expanded)
    return expanded


def _problem(exc: Exception) -> str:
    """The rule an invalid name breaks, from rcl's message (e.g. "topic name must not end with a forward
    slash"), without rcl's source location."""
    text = (str(exc).splitlines() or [''])[0].split(', at /')[0]
    start = text.rfind('topic name')
    return (text[start:] if start >= 0 else text).rstrip(': ').strip() or type(exc).__name__


@dataclass(frozen=True)
class Camera:
    """One input: its topic and the name of its output namespace ('' = the single camera, outputs in ``~``)."""

    name: str
    topic: str
    resolved: str = ''  # the fully qualified topic ROS subscribes to ('' when not resolved by a node)

    @property
    def prefix(self) -> str:
        """Output namespace of the camera: ``~`` or ``~/<name>``."""
        return f'~/{self.name}' if self.name else '~'


def _tokens(topic: str) -> List[str]:
    out = []
    for part in topic.split('/'):
        token = _NOT_TOKEN.sub('_', part).strip('_')
        if token and token.lower() not in GENERIC_TOKENS and not token.startswith('~'):
            out.append(token)
    return out


def _as_name(tokens: Sequence[str]) -> str:
    name = '_'.join(tokens)
    name = re.sub(r'_+', '_', name)
    return f'cam_{name}' if name and name[0].isdigit() else name


def derive_camera_names(topics: Sequence[str]) -> List[str]:
    """A unique, valid ROS name token for each topic (see the module docstring)."""
    tokens = [_tokens(t) for t in topics]
    depth = [1] * len(topics)
    while True:
        names = [_as_name(tok[-d:]) if tok else '' for tok, d in zip(tokens, depth)]
        clashes = {n for n in names if n and names.count(n) > 1}
        grow = [i for i, n in enumerate(names) if n in clashes and depth[i] < len(tokens[i])]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    used = set()
    out = []
    for index, name in enumerate(names):
        if not name or name in used:  # nothing says which camera it is, or tokens alike to the end
            name = f'camera{index}'
            while name in used:
                name += '_'
        used.add(name)
        out.append(name)
    return out


def _repeats(topics: Sequence[str], fulls: Sequence[Optional[str]]) -> Tuple[List[int], List[str]]:
    """(indices of the first entry of each topic, how each repeat is written): ``fulls[i]`` is what entry
    ``i`` is compared as (None: never a repeat)."""
    first: dict = {}
    kept: List[int] = []
    repeats: List[str] = []
    for index, (topic, full) in enumerate(zip(topics, fulls)):
        if full is not None and full in first:
            earlier = topics[first[full]]
            repeats.append(f'{earlier!r} and {topic!r} are both {full!r}' if earlier != topic else repr(topic))
            continue
        if full is not None:
            first[full] = index
        kept.append(index)
    return kept, repeats


def merge_repeated_topics(topics: Sequence[str], resolve: Optional[Resolver] = None,
                          ) -> Tuple[List[int], List[str]]:
    """(indices of the entries to keep, one line per repeat): a topic listed twice, as written or as ROS
    resolves it (``front/image`` and ``/front/image`` in the root namespace), is one camera, kept at its
    first entry. Names that do not resolve are kept for :func:`configure_cameras` to refuse."""
    stripped = [str(t).strip() for t in topics]
    fulls: List[Optional[str]] = []
    for topic in stripped:
        try:
            fulls.append((resolve or check_topic_syntax)(topic) if topic else topic)
        except Exception:  # invalid: configure_cameras names the entry and the reason
            fulls.append(None)
    kept, repeats = _repeats(stripped, fulls)
    return kept, [f'image_topics lists one camera twice ({same}): one camera, at its first entry' for same in repeats]


def configure_cameras(image_topics: Optional[Sequence[str]], camera_names: Optional[Sequence[str]],
                      default_topic: str = 'image', resolve: Optional[Resolver] = None) -> Tuple[Camera, ...]:
    """The cameras of the node: ``image_topics`` empty -> one camera on ``default_topic`` with outputs in ``~``.

    ``resolve`` (the node's ``resolve_topic_name``) makes the topics comparable as ROS sees them; without it
    each name is only checked for syntax and repeats are compared as written. Raises
    :class:`CameraConfigError` for empty, invalid or repeated topics, and for ``camera_names`` that are not as
    many as the topics, not valid ROS name tokens, or not unique.
    """
    topics = [str(t).strip() for t in (image_topics or [])]
    names = [str(n).strip() for n in (camera_names or [])]
    if not topics:
        if names:
            raise CameraConfigError('camera_names is set but image_topics is empty')
        return (Camera('', default_topic, _resolve(default_topic, resolve, 'the image topic')),)
    if any(not t for t in topics):
        raise CameraConfigError('image_topics has an empty topic name')
    resolved = [_resolve(t, resolve, f'image_topics entry {t!r}') for t in topics]
    _, repeats = _repeats(topics, resolved if resolve is not None else topics)
    if repeats:
        raise CameraConfigError(f'image_topics repeats a topic: {repeats[0]}')
    if names:
        if len(names) != len(topics):
            raise CameraConfigError(f'camera_names has {len(names)} names for {len(topics)} image_topics')
        bad = [n for n in names if not _VALID_NAME.match(n)]
        if bad:
            raise CameraConfigError(f'camera_names {bad} are not valid ROS name tokens (letters, digits and '
                                    'single underscores, starting with a letter)')
        if len(set(names)) != len(names):
            raise CameraConfigError(f'camera_names repeats a name: {names}')
    else:
        names = derive_camera_names(topics)
    return tuple(Camera(n, t, r if resolve is not None else '') for n, t, r in zip(names, topics, resolved))


def _resolve(topic: str, resolve: Optional[Resolver], what: str) -> str:
    """``topic`` resolved (or syntax-checked when ``resolve`` is None); CameraConfigError naming ``what``."""
    try:
        return (resolve or check_topic_syntax)(topic)
    except Exception as exc:  # rclpy raises RCLError, ValueError or InvalidTopicNameException
        raise CameraConfigError(f'{what} is not a valid topic name: {_problem(exc)}') from None


def camera_info_topic(image_topic: str) -> str:
    """The CameraInfo topic beside an image topic, as image_transport pairs them:
    ``/front/camera/image_raw`` -> ``/front/camera/camera_info``."""
    parent = image_topic.rstrip('/').rsplit('/', 1)[0] if '/' in image_topic else ''
    return f'{parent}/camera_info' if parent or image_topic.startswith('/') else 'camera_info'
