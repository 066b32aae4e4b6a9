"""The node side of the parameter table: declaration (descriptors), validation and a typed snapshot.

The table itself is ROS-free, in :mod:`talk2dino_ros.contract.parameters` (re-exported here); see there for
what each group does at runtime.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import ParameterUninitializedException
from rclpy.parameter import Parameter

from talk2dino_ros import catalog
from talk2dino_ros.contract.parameters import (  # noqa: F401  (re-exported: the table's public names)
    MASK_TYPES, MAX_NAMES, METHODS, MODES, PARAMETERS, PATH_PARAM_NAMES, SPECS, VARIANTS, WEIGHT_PARAM_NAMES,
    WEIGHT_PARAMS, ParamSpec)
from talk2dino_ros.outputs.colors import ColorSpecError, parse_color_overrides
from talk2dino_ros.ros.cameras import CameraConfigError, Resolver, configure_cameras
from talk2dino_ros.ros.vocabulary import parse_vocabulary

_DEVICE = re.compile(r'^(auto|cpu|cuda|cuda:\d+)$')


def fetch_hint(method: str = 'talk2dino', variant: str = 'vitb') -> str:
    """How to get the weight files of a method (one sentence for logs and parameter reasons)."""
    spec = catalog.METHODS.get(method)
    args = f' --method {method}' + (f' --variant {variant}' if spec is None or spec.has_variants else '')
    return (f'download them with `ros2 run talk2dino_ros fetch_weights{args}` (or `python -m '
            f'talk2dino_ros.cli.fetch_weights{args}`) into weights_dir, or set the *_weights parameters to the files')


FETCH_HINT = fetch_hint()


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The rcl ParameterDescriptor of a table row: description, read-only, array type, range, choices."""
    desc = ParameterDescriptor(name=spec.name, description=spec.description, read_only=spec.read_only)
    if spec.default is None:
        desc.type = ParameterType.PARAMETER_STRING_ARRAY
    if spec.choices:
        desc.additional_constraints = 'one of: ' + ', '.join(spec.choices)
    if spec.float_range is not None:
        desc.floating_point_range = [FloatingPointRange(
            from_value=float(spec.float_range[0]), to_value=float(spec.float_range[1]), step=0.0)]
    if spec.int_range is not None:
        desc.integer_range = [IntegerRange(
            from_value=int(spec.int_range[0]), to_value=int(spec.int_range[1]), step=1)]
    return desc


def _parameter_value(node, name: str) -> Any:
    try:
        value = node.get_parameter(name).value
    except ParameterUninitializedException:
        return None
    return value


def current_values(node) -> Dict[str, Any]:
    """name -> value of every declared parameter (an unset string array is [] or None)."""
    return {spec.name: _parameter_value(node, spec.name) for spec in PARAMETERS}


def validate(name: str, value: Any, values: Mapping[str, Any], resolve: Optional[Resolver] = None) -> Optional[str]:
    """Why ``value`` is not acceptable for parameter ``name`` (None when it is).

    ``resolve`` (the node's ``resolve_topic_name``) lets the camera topics be compared as ROS sees them.

    Types and numeric ranges are enforced by rclpy from the descriptors; this checks the rest.
    ``values`` are the other parameters after the change (for cross checks).
    """
    spec = SPECS.get(name)
    if spec is None:
        return None
    if name == 'device':
        return None if isinstance(value, str) and _DEVICE.match(value) else \
            f'device {value!r} is not auto, cpu, cuda or cuda:N'
    if spec.choices and value not in spec.choices:
        return f'{name} {value!r} is not one of {", ".join(spec.choices)}'
    if name == 'vocabulary':
        parsed = parse_vocabulary(list(value or []), max_names=int(values.get('max_classes') or MAX_NAMES))
        if not parsed.accepted:
            return f'vocabulary has no usable class name ({parsed.summary()})'
        return None
    if name == 'colors':
        try:
            parse_color_overrides(list(value or []))
        except ColorSpecError as exc:
            return str(exc)
        return None
    if name in WEIGHT_PARAM_NAMES and value and not os.path.isfile(os.path.expanduser(value)):
        return f'{name}: file {value!r} does not exist; ' + fetch_hint(
            values.get('method') or 'talk2dino', values.get('variant') or 'vitb')
    if name == 'exported_model' and value and not os.path.isfile(os.path.expanduser(value)):
        return f'exported_model: file {value!r} does not exist (make it with export_model, or leave it empty)'
    if name == 'weights_dir' and value and os.path.isfile(os.path.expanduser(value)):
        return f'weights_dir {value!r} is a file, not a directory'
    if name == 'depth_topics' and value:
        topics = values.get('image_topics') or ['image']
        if len(value) != len(topics) or any(not str(t).strip() for t in value):
            return f'depth_topics has {len(value)} topics for {len(topics)} cameras (one non-empty topic each)'
    if name in ('image_topics', 'camera_names'):
        # image_topics on its own; camera_names against the topics (a bad name list does not void the topics)
        try:
            configure_cameras(value if name == 'image_topics' else values.get('image_topics'),
                              value if name == 'camera_names' else None, resolve=resolve)
        except CameraConfigError as exc:
            return str(exc)
    return None


def validate_changes(changes: Iterable[Parameter], values: Mapping[str, Any], paths_settable: bool = False,
                     ) -> List[str]:
    """Reasons to reject a batch of parameter changes (empty list: accept).

    Weight paths change only with ``allow_runtime_weight_changes`` or where the node says they may now
    (``paths_settable``: a lifecycle node that is not configured).
    """
    after = dict(values)
    changes = list(changes)
    for param in changes:
        after[param.name] = param.value
    reasons = []
    for param in changes:
        if param.name in PATH_PARAM_NAMES and not (paths_settable or values.get('allow_runtime_weight_changes')):
            reasons.append(f'{param.name} is fixed while the node runs: set it at start (params file or '
                           '--ros-args -p), or start the node with allow_runtime_weight_changes:=true (a '
                           'lifecycle node takes it while unconfigured)')
            continue
        reason = validate(param.name, param.value, after)
        if reason:
            reasons.append(reason)
    return reasons


@dataclass(frozen=True)
class NodeSettings:
    """A typed snapshot of the node's parameters."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name in SPECS:
            return self.values.get(name, SPECS[name].default)
        raise AttributeError(name)

    @property
    def vocabulary_names(self) -> Tuple[str, ...]:
        return tuple(self.values.get('vocabulary') or ())

    @property
    def color_overrides(self) -> Tuple[str, ...]:
        return tuple(self.values.get('colors') or ())

    def spatial_options(self):
        """The SpatialOptions of the 3D outputs."""
        from talk2dino_ros.spatial.scene import SpatialOptions

        return SpatialOptions(stride=int(self.points_stride), voxel_size=float(self.points_voxel_size),
                              depth_max_m=float(self.depth_max_m), min_region_pixels=int(self.min_region_pixels),
                              rgb=bool(self.points_rgb))

    def weights_dir(self) -> str:
        """The directory searched for files whose *_weights parameter is empty."""
        if self.values.get('weights_dir'):
            return os.path.expanduser(self.values['weights_dir'])
        return str(catalog.default_weights_dir())

    def weight_sources(self) -> List[Tuple[str, str, str]]:
        """(role, parameter, path) for the selected method/variant; path '' when neither set nor published."""
        try:
            defaults = catalog.default_weight_paths(self.method, self.variant, self.weights_dir())
            roles = catalog.get_variant(self.method, self.variant).roles
        except catalog.CatalogError:
            return []  # validation refuses unknown methods/variants before they get here
        out = []
        for role in roles:
            param = catalog.ROLES[role].parameter
            explicit = self.values.get(param) or ''
            out.append((role, param, os.path.expanduser(explicit) if explicit else defaults[role]))
        return out

    def weights(self) -> Dict[str, str]:
        """role -> path for the selected method (explicit parameter, else the file in weights_dir)."""
        return {role: path for role, _, path in self.weight_sources() if path}

    def missing_weight_files(self) -> List[Tuple[str, str]]:
        """(parameter, path) of every weight file of the selected method that is not there.

        A path of '' means the parameter is empty and no published file exists for this variant.
        """
        return [(param, path) for _, param, path in self.weight_sources() if not path or not os.path.isfile(path)]

    def model_key(self) -> Tuple:
        """Everything that needs a new model when it changes."""
        return tuple((s.name, self.values.get(s.name)) for s in PARAMETERS if s.group == 'model')

    @property
    def background_enabled(self) -> bool:
        return float(self.background_threshold) > 0.0


def group_of(names: Sequence[str]) -> set:
    """The groups touched by a set of changed parameter names."""
    return {SPECS[n].group for n in names if n in SPECS}
