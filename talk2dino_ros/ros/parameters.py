"""Every parameter of the segmentation node: declaration (descriptions, ranges), validation, snapshot.

One table (:data:`PARAMETERS`) drives the declarations, the validation callback, ``config/params.yaml``
and the README table, so they cannot drift apart. Groups say what a change does at runtime:

* ``model``: a new model is loaded in a background thread and swapped in atomically when it is ready;
  a failed load keeps the previous model (and logs why).
* ``engine``: the running model's windowing mode / resolution are replaced atomically.
* ``legend``: the legend (ClassInfo) gets a new version: vocabulary, options, colours.
* ``output``: takes effect with the next frame.
* ``input``: read-only (the subscriptions are made once at start).
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
from talk2dino_ros.backend_names import BACKENDS, PRECISIONS
from talk2dino_ros.outputs.colors import ColorSpecError, parse_color_overrides
from talk2dino_ros.ros.cameras import CameraConfigError, Resolver, configure_cameras
from talk2dino_ros.ros.image_conversion import DEFAULT_MAX_INPUT_PIXELS
from talk2dino_ros.ros.qos import RELIABILITY_CHOICES
from talk2dino_ros.ros.vocabulary import DEFAULT_MAX_CLASSES, MAX_NAMES, parse_vocabulary

METHODS = catalog.method_names()
VARIANTS = catalog.variant_names()
MODES = ('slide', 'whole', 'squash')
MASK_TYPES = ('binary', 'score')
# method -> {weight role of SegmenterConfig.weights: parameter name}
WEIGHT_PARAMS: Dict[str, Dict[str, str]] = {
    m.name: {role: catalog.ROLES[role].parameter for role in m.roles} for m in catalog.METHODS.values()}
WEIGHT_PARAM_NAMES = frozenset(p for roles in WEIGHT_PARAMS.values() for p in roles.values())
#: parameters naming files the node reads: fixed after start unless allow_runtime_weight_changes is true,
#: because any participant of the DDS domain can set parameters
PATH_PARAM_NAMES = WEIGHT_PARAM_NAMES | {'weights_dir', 'exported_model'}
_DEVICE = re.compile(r'^(auto|cpu|cuda|cuda:\d+)$')


def fetch_hint(method: str = 'talk2dino', variant: str = 'vitb') -> str:
    """How to get the weight files of a method (one sentence for logs and parameter reasons)."""
    spec = catalog.METHODS.get(method)
    args = f' --method {method}' + (f' --variant {variant}' if spec is None or spec.has_variants else '')
    return (f'download them with `ros2 run talk2dino_ros fetch_weights{args}` (or `python -m '
            f'talk2dino_ros.cli.fetch_weights{args}`) into weights_dir, or set the *_weights parameters to the files')


FETCH_HINT = fetch_hint()


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter. ``default`` of ``None`` means a string array that starts unset."""

    name: str
    default: Any
    description: str
    group: str
    choices: Tuple[str, ...] = ()
    float_range: Optional[Tuple[float, float]] = None
    int_range: Optional[Tuple[int, int]] = None
    read_only: bool = False

    def descriptor(self) -> ParameterDescriptor:
        desc = ParameterDescriptor(name=self.name, description=self.description, read_only=self.read_only)
        if self.default is None:
            desc.type = ParameterType.PARAMETER_STRING_ARRAY
        if self.choices:
            desc.additional_constraints = 'one of: ' + ', '.join(self.choices)
        if self.float_range is not None:
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(self.float_range[0]), to_value=float(self.float_range[1]), step=0.0)]
        if self.int_range is not None:
            desc.integer_range = [IntegerRange(
                from_value=int(self.int_range[0]), to_value=int(self.int_range[1]), step=1)]
        return desc


PARAMETERS: Tuple[ParamSpec, ...] = (
    # model: loaded in the background, swapped atomically
    ParamSpec('method', catalog.DEFAULT_METHOD, 'Segmentation method.', 'model', choices=METHODS),
    ParamSpec('variant', catalog.get_method(catalog.DEFAULT_METHOD).default_variant,
              f'Backbone for {catalog.DEFAULT_METHOD}: {catalog.variants_help()} (the projection weights '
              'must match).', 'model', choices=VARIANTS),
    ParamSpec('weights_dir', '', 'Directory where fetch_weights put the files; a *_weights parameter left '
              'empty means "the published file of this method/variant in weights_dir". Empty: '
              '$T2D_WEIGHTS_DIR or ~/.cache/talk2dino_ros.', 'model'),
    # one file parameter per weight role of the catalog
    *(ParamSpec(role.parameter, '', role.description, 'model') for role in catalog.all_roles()),
    ParamSpec('device', 'auto', 'auto (CUDA when available), cpu, cuda or cuda:N.', 'model',
              choices=('auto', 'cpu', 'cuda', 'cuda:N')),
    ParamSpec('fp16', False, 'Half-precision autocast (not exact): fp16 on CUDA, bf16 on the CPU.', 'model'),
    ParamSpec('backend', 'torch', 'What runs the backbone: torch, or its exported ONNX file in openvino (Intel '
              'CPU/iGPU), onnxruntime (CPU) or tensorrt (NVIDIA GPU, Jetson); built on first use and cached next '
              'to the weights. Each runtime is an optional extra.', 'model', choices=BACKENDS),
    ParamSpec('precision', 'fp32', 'fp32 (exact); bf16 on CPUs with bf16 instructions (torch, openvino); fp16 '
              'on GPUs (torch on CUDA, tensorrt, openvino on an Intel GPU). Reduced precision is not exact.',
              'model', choices=PRECISIONS),
    ParamSpec('exported_model', '', 'An export_model ONNX file for the exported backends (checked against the '
              'weights); empty: built and cached next to the weights.', 'model'),
    ParamSpec('allow_runtime_weight_changes', False, 'Allow weights_dir and the *_weights paths to be changed '
              'while the node runs (off: they are fixed at start, since any participant of the ROS domain can '
              'set parameters).', 'input', read_only=True),
    ParamSpec('allow_random_weights', False, 'Accept checkpoints of test widths (the random weights of '
              'make_random_weights): for tests and smoke runs only, the output is meaningless.', 'model'),
    # engine
    ParamSpec('mode', 'whole', 'slide = benchmark protocol (448 windows, stride 224); whole = one pass '
              'over the frame (fastest); squash = resize to a square (the authors\' demo).', 'engine',
              choices=MODES),
    ParamSpec('resolution', 448, 'Inference size of the short side, in pixels.', 'engine',
              int_range=(28, 2048)),
    # legend: a new ClassInfo version
    ParamSpec('vocabulary', None, 'Class names to segment (also settable on the vocab topic and '
              '~/set_vocabulary).', 'legend'),
    ParamSpec('max_classes', DEFAULT_MAX_CLASSES, 'Most class names in one vocabulary (per-frame memory and '
              'text encoding time grow with it); later names are rejected.', 'legend',
              int_range=(1, MAX_NAMES)),
    ParamSpec('background_threshold', 0.55, 'Score below which a pixel is background (label 0); '
              '<= 0 disables the background class (argmax only).', 'legend',
              float_range=catalog.BACKGROUND_THRESHOLD_RANGE),
    ParamSpec('bg_clean', True, 'Background cleaning with the DINOv2 attention heads.', 'legend'),
    ParamSpec('pamr', False, 'PAMR refinement (better edges, several times slower).', 'legend'),
    ParamSpec('colors', None, 'Class colours: "#RRGGBB" for classes 1, 2, ... in order, or '
              '"name=#RRGGBB" for a class by name; the rest use the default palette.', 'legend'),
    # output
    ParamSpec('max_rate', 0.0, 'Most frames processed per second (0 = as fast as possible).', 'output',
              float_range=(0.0, 1000.0)),
    ParamSpec('publish_masks', True, 'Publish ~/masks and ~/mask/<class> (only computed while '
              'subscribed).', 'output'),
    ParamSpec('mask_topics_limit', 32, 'Per-class ~/mask/<class> topics exist for the first this many '
              'classes (each is a DDS publisher); ~/masks always carries every class.', 'output',
              int_range=(0, 1024)),
    ParamSpec('mask_type', 'binary', 'binary = mono8 0/255 masks; score = 32FC1 class scores.', 'output',
              choices=MASK_TYPES),
    ParamSpec('publish_overlay', True, 'Publish ~/overlay (only computed while subscribed).', 'output'),
    ParamSpec('overlay_alpha', 0.5, 'Opacity of the class colours in ~/overlay.', 'output',
              float_range=(0.0, 1.0)),
    ParamSpec('max_input_pixels', DEFAULT_MAX_INPUT_PIXELS, 'Largest frame accepted, in pixels (width x '
              'height, read from the header of compressed frames before decoding); larger frames are counted '
              'as rejected. Default 4096 x 4096.', 'output', int_range=(1, 16384 * 16384)),
    # input: fixed at start
    ParamSpec('image_reliability', 'best_effort', 'QoS reliability of the image subscription.', 'input',
              choices=RELIABILITY_CHOICES, read_only=True),
    ParamSpec('image_depth', 5, 'QoS queue depth of the image subscription.', 'input',
              int_range=(1, 100), read_only=True),
    ParamSpec('compressed_input', False, 'Subscribe to sensor_msgs/CompressedImage on image/compressed '
              'instead of the raw image topic.', 'input', read_only=True),
    ParamSpec('diagnostics_period', 1.0, 'Seconds between /diagnostics messages.', 'input',
              float_range=(0.1, 60.0), read_only=True),
    ParamSpec('image_topics', None, 'Several cameras, one model: the image topics to segment, each with its '
              'outputs under ~/<camera>/ (labels, class_info, ...); the latest frame of every camera goes '
              'through one batched forward pass. Empty: the single image topic, outputs under ~/.', 'input',
              read_only=True),
    ParamSpec('camera_names', None, 'Names of the image_topics cameras (their output namespaces), in the same '
              'order. Empty: derived from the topics (/front/camera/image_raw -> front).', 'input',
              read_only=True),
)
SPECS: Dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


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
