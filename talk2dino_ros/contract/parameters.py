"""Every parameter of the segmentation node, ROS-free: name, default, description, group, range or choices.

One table (:data:`PARAMETERS`) drives the node's declarations and validation (:mod:`talk2dino_ros.ros.parameters`),
``config/params.yaml``, the launch arguments, ``segment_node --help``, the presets of the other front ends
(:func:`node_defaults`) and the README table, so they cannot drift apart. Groups say what a change does at runtime:

* ``model``: a new model is loaded in a background thread and swapped in atomically when it is ready;
  a failed load keeps the previous model (and logs why).
* ``engine``: the running model's windowing mode / resolution are replaced atomically.
* ``legend``: the legend (ClassInfo) gets a new version: vocabulary, options, colours.
* ``output``: takes effect with the next frame.
* ``input``: read-only (the subscriptions are made once at start).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from talk2dino_ros import catalog
from talk2dino_ros.backend_names import BACKENDS, PRECISIONS

#: most names the vocabulary parser ever accepts, and the largest value of ``max_classes``
#: (labels are mono16 above 255 classes, so this is not a format limit)
MAX_NAMES = 2048
#: default of ``max_classes``. Per-frame memory and text-encoding time grow with the number of classes; at
#: 2048 a single frame could take several GB. 1024 is half of that, still far more classes than
#: open-vocabulary prompts use in practice; a deployment with measured headroom raises it up to MAX_NAMES.
DEFAULT_MAX_CLASSES = 1024
#: widest/tallest frame the engine accepts (``talk2dino_ros.model.segmenter.MAX_IMAGE_SIDE``, kept equal by a
#: test; repeated here so that the contract stays free of torch): larger frames are refused as input
MAX_INPUT_SIDE = 16384
#: default of ``max_input_pixels`` (4096 x 4096 = 16.7 MP): above every common camera (4K UHD is 8.3 MP, a
#: 12 MP sensor 4000 x 3000) while capping the decoded RGB copy at 50 MB
DEFAULT_MAX_INPUT_PIXELS = 4096 * 4096
#: the 3D outputs' defaults (talk2dino_ros.spatial uses the same): farthest depth kept (metres), largest stamp
#: difference of a camera frame and its depth frame (one frame at 30 Hz, seconds), smallest region that is a
#: detection (pixels)
DEFAULT_DEPTH_MAX_M = 10.0
DEFAULT_DEPTH_SYNC_TOLERANCE_S = 1.0 / 30.0
DEFAULT_MIN_REGION_PIXELS = 50
#: choices of ``image_reliability``
RELIABILITY_CHOICES = ('best_effort', 'reliable')
#: the groups of :class:`ParamSpec`, in table order
GROUPS = ('model', 'engine', 'legend', 'output', 'input')

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
    # 3D outputs from a registered depth image
    ParamSpec('depth', False, 'Subscribe to a depth image registered to each camera (16UC1 millimetres or 32FC1 '
              'metres) and its CameraInfo, for ~/points, ~/detections_3d and 3D answers of ~/locate. Topics: '
              '<camera namespace>/depth/image_raw and .../depth/camera_info (remappable), or depth_topics.',
              'input', read_only=True),
    ParamSpec('depth_topics', None, 'Depth image topics, one per camera in image_topics order (the CameraInfo '
              'is the camera_info beside each). Empty: derived from the camera topics.', 'input', read_only=True),
    ParamSpec('depth_sync_tolerance', DEFAULT_DEPTH_SYNC_TOLERANCE_S, 'Largest stamp difference, in seconds, of '
              'a camera frame and the depth frame paired with it (default: one frame at 30 Hz).', 'output',
              float_range=(0.0, 1.0)),
    ParamSpec('depth_max_m', DEFAULT_DEPTH_MAX_M, 'Farthest depth used, in metres; farther pixels (and 0, NaN, '
              'inf) are no measurement.', 'output', float_range=(0.01, 1000.0)),
    ParamSpec('points_stride', 1, 'Use every n-th depth pixel in both directions for ~/points and the 3D boxes.',
              'output', int_range=(1, 64)),
    ParamSpec('points_voxel_size', 0.0, 'At most one ~/points point per cube of this size, in metres (0 = off).',
              'output', float_range=(0.0, 10.0)),
    ParamSpec('points_rgb', False, 'Add the camera colour to ~/points (an rgb field).', 'output'),
    ParamSpec('min_region_pixels', DEFAULT_MIN_REGION_PIXELS, 'Smallest connected region of a class, in pixels, '
              'that is a detection (~/detections, ~/detections_3d, ~/locate).', 'output',
              int_range=(1, 16384 * 16384)),
)
SPECS: Dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


def node_defaults(*names: str) -> Dict[str, Any]:
    """name -> the node's default, for front ends that promise the node's behaviour (``segment_bag``,
    ``segment_image --preset node``)."""
    return {name: SPECS[name].default for name in names}
