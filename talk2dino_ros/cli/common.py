"""Command-line plumbing shared by every tool that builds a :class:`Segmenter`.

Public API (small on purpose; segment_image, benchmark, evaluate, train and segment_bag reuse it):

* ``add_model_arguments(parser)``: ``--method``, ``--variant``, the per-role weight flags of the
  catalog (``--dinov2-weights --dinov3-weights --clip-weights --proj-weights`` for talk2dino,
  ``--openclip-weights --clip-dinoiser-weights`` for clip_dinoiser), ``--weights-dir``, ``--device``, ``--fp16``,
  ``--backend``, ``--precision``, ``--exported-model``, ``--allow-random-weights``.
* ``add_inference_arguments(parser)``: ``--bg-clean/--no-bg-clean``, ``--pamr/--no-pamr``,
  ``--background-threshold T``, ``--mode slide|whole|squash``, ``--resolution``. Every one defaults to
  ``None`` = "not given", so a caller's own default (``config_from_args(..., pamr=True)``) applies.
* ``resolve_weights(args) -> {role: path}``: explicit flags first; every role not given is filled with
  its published file name (from the catalog) inside ``--weights-dir`` (default ``$T2D_WEIGHTS_DIR`` or
  ``~/.cache/talk2dino_ros``), so a missing file is reported by name when the segmenter loads it.
* ``config_from_args(args, **defaults) -> SegmenterConfig``: the config the flags describe; ``defaults``
  (SegmenterConfig or InferenceOptions field names) fill whatever the user did not give.
* ``build_segmenter(args, **defaults) -> Segmenter``: ``Segmenter.from_config(config_from_args(...))``.
* ``parse_vocab_arg(text, flag='--vocab') -> list[str]``: a comma/newline separated class list (the node's
  rules); errors name ``flag``.
* ``run_cli(fn, argv, interrupted=...) -> int``: runs ``fn(argv)``; a :class:`Talk2DinoError` (``CliError`` included) or
  an ``OSError`` naming a file becomes ONE stderr line ``error: ...`` and exit code 2, no traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from talk2dino_ros.errors import Talk2DinoError

from talk2dino_ros import catalog
from talk2dino_ros.backend_names import BACKENDS, PRECISIONS
from talk2dino_ros.catalog import DEFAULT_WEIGHTS_DIR, WEIGHTS_DIR_ENV, default_weights_dir  # noqa: F401 (re-export)

METHODS = catalog.method_names()
VARIANTS = catalog.variant_names()
MODES = ('slide', 'whole', 'squash')

#: method -> role -> command-line flag of its weight file (derived from the catalog)
WEIGHT_FLAGS: Dict[str, Dict[str, str]] = {
    m.name: {role: catalog.ROLES[role].flag for role in m.roles} for m in catalog.METHODS.values()}

#: InferenceOptions fields the inference flags set (background is derived from --background-threshold)
_OPTION_FLAGS = ('bg_clean', 'pamr', 'background_threshold')
#: SegmenterConfig fields the flags set
_CONFIG_FLAGS = ('method', 'variant', 'device', 'fp16', 'backend', 'precision', 'exported_model', 'mode',
                 'resolution', 'allow_random_weights')



class CliError(Talk2DinoError):
    """A command-line mistake (bad flag combination, unreadable input) reported as one line."""


# ------------------------------------------------------------------------------------------ flags
def _device_arg(text: str) -> str:
    value = text.strip().lower()
    if value in ('auto', 'cpu', 'cuda') or (value.startswith('cuda:') and value[5:].isdigit()):
        return value
    raise argparse.ArgumentTypeError(f"device must be auto, cpu, cuda or cuda:N, got {text!r}")


def background_threshold_arg(text: str) -> float:
    """argparse ``type=`` of ``--background-threshold``: a number in the node parameter's range
    (``catalog.BACKGROUND_THRESHOLD_RANGE``); ``<= 0`` means no background class, as for the node."""
    low, high = catalog.BACKGROUND_THRESHOLD_RANGE
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'background threshold must be a number, got {text!r}') from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f'background threshold must be in [{low:g}, {high:g}] (<= 0: no '
                                         f'background class), got {value}')
    return value


def _resolution_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'resolution must be an integer, got {text!r}') from None
    if value < 14:
        raise argparse.ArgumentTypeError(f'resolution must be >= 14 pixels, got {value}')
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the flags that choose and load the model; returns the argument group."""
    g = parser.add_argument_group('model')
    g.add_argument('--method', default=catalog.DEFAULT_METHOD, choices=METHODS,
                   help=f'segmentation method (default {catalog.DEFAULT_METHOD})')
    default_variant = catalog.get_method(catalog.DEFAULT_METHOD).default_variant
    g.add_argument('--variant', default=default_variant, choices=VARIANTS,
                   help=f'backbone of {catalog.DEFAULT_METHOD}: {catalog.variants_help()} (default '
                        f'{default_variant}; single-backbone methods ignore it)')
    for role in catalog.all_roles():
        owners = '/'.join(catalog.role_methods(role.name))
        g.add_argument(role.flag, type=Path, default=None, metavar='FILE',
                       help=f'{owners} {role.name} weight file (default: its published name in --weights-dir)')
    g.add_argument('--weights-dir', type=Path, default=None, metavar='DIR',
                   help=f'folder with the published weight files (default ${WEIGHTS_DIR_ENV} or '
                        f'{DEFAULT_WEIGHTS_DIR})')
    g.add_argument('--device', type=_device_arg, default='auto', help='auto (default), cpu, cuda or cuda:N')
    g.add_argument('--fp16', action='store_true',
                   help='half-precision autocast, not exact: fp16 on CUDA, bf16 on the CPU')
    g.add_argument('--backend', choices=BACKENDS, default=None,
                   help='what runs the backbone: torch (default) or its exported file in openvino, onnxruntime '
                        'or tensorrt (optional extras; built on first use, cached next to the weights)')
    g.add_argument('--precision', choices=PRECISIONS, default=None,
                   help='fp32 (default); bf16 on CPUs that have it; fp16 on GPUs (not exact)')
    g.add_argument('--exported-model', type=str, default=None, metavar='FILE',
                   help='an export_model file for --backend openvino/onnxruntime/tensorrt (default: the cache)')
    g.add_argument('--allow-random-weights', action='store_true',
                   help='accept random test-width weight files (tests and smoke runs only)')
    return g


def add_inference_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add post-processing and geometry flags; each defaults to None (= the caller's default)."""
    g = parser.add_argument_group('inference')
    g.add_argument('--bg-clean', dest='bg_clean', action=argparse.BooleanOptionalAction, default=None,
                   help='attention-based background cleaning')
    g.add_argument('--pamr', dest='pamr', action=argparse.BooleanOptionalAction, default=None,
                   help='PAMR mask refinement (slow on CPU)')
    g.add_argument('--background-threshold', type=background_threshold_arg, default=None, metavar='T',
                   help='add a background class (channel 0) with constant score T, e.g. 0.55; <= 0: no '
                        'background class (the node\'s rule)')
    g.add_argument('--mode', choices=MODES, default=None,
                   help='slide: 448 windows, stride 224 (benchmark protocol, default); whole: one pass '
                        'over the frame; squash: resize to a square (authors\' demo)')
    g.add_argument('--resolution', type=_resolution_arg, default=None, metavar='PX',
                   help='short side after resizing (default 448)')
    return g


# ------------------------------------------------------------------------------------------ config
def resolve_weights(args: argparse.Namespace) -> Dict[str, str]:
    """role -> path for ``args.method``/``args.variant``; refuses weight flags the selection does not load.

    A role with no flag given gets its published file name in ``--weights-dir`` (the catalog's default
    path; ``''`` when nothing is published for it, which the loader reports as "no file given").
    """
    method = args.method
    try:
        variant = catalog.get_variant(method, getattr(args, 'variant', None))
    except catalog.CatalogError as exc:
        raise CliError(str(exc)) from None
    weights: Dict[str, str] = {}
    unused = []
    for role in catalog.all_roles():
        value = getattr(args, role.dest, None)
        if value is None:
            continue
        if method not in catalog.role_methods(role.name):
            owners = ', '.join(catalog.role_methods(role.name))
            raise CliError(f'{role.flag} is a {owners} weight file but --method is {method}')
        if role.name in variant.roles:
            weights[role.name] = str(Path(value).expanduser())
        else:
            unused.append(role.flag)
    # a file for another backbone of this method is only a mistake when it could stand in for a missing one
    # (e.g. --dinov3-weights with the default --variant vitb); with every file of the variant given it is unused
    if unused and set(weights) != set(variant.roles):
        raise CliError(f'{", ".join(unused)} is not used by {method} variant {variant.name} (it loads '
                       f'{", ".join(catalog.ROLES[r].flag for r in variant.roles)}); choose the --variant '
                       'that file belongs to')
    folder = getattr(args, 'weights_dir', None)
    defaults = catalog.default_weight_paths(method, variant.name, folder)
    unpublished = [role for role in variant.roles if role not in weights and not defaults[role]]
    if unpublished:  # e.g. --variant vits: no ψ to download, so fetch_weights is no answer
        raise CliError(catalog.unpublished_hint(method, variant.name))
    for role in variant.roles:
        weights.setdefault(role, defaults[role])
    return {role: weights[role] for role in variant.roles}


def check_method_options(args: argparse.Namespace) -> None:
    """Refuse an option the chosen method has no step for when it is switched on (``--pamr`` with
    clip_dinoiser), and warn once, by name, when it is switched off (nothing to switch off)."""
    method = getattr(args, 'method', None)
    if method is None:
        return
    ignored = catalog.get_method(method).ignored_options
    for name in ignored:
        value = getattr(args, name, None)
        if value is None or (name == 'background_threshold' and value <= 0):
            continue
        flag = '--' + name.replace('_', '-')
        if value is False:
            print(f'warning: --no-{flag[2:]} has no effect: {method} has no such step', file=sys.stderr)
            continue
        raise CliError(f'{flag} does not apply to {method}: it has no such step '
                       f'({catalog.get_method(method).ignored_why}); drop the flag')


def config_from_args(args: argparse.Namespace, **defaults):
    """A :class:`SegmenterConfig` from parsed flags; ``defaults`` fill the flags left at None/absent.

    Accepted ``defaults`` keys: any SegmenterConfig or InferenceOptions field name (e.g. ``mode='slide'``,
    ``pamr=True``, ``background_threshold=0.55``; a background threshold turns the background class on).
    """
    from talk2dino_ros.model.segmenter import SegmenterConfig
    from talk2dino_ros.model.types import InferenceOptions

    cfg_fields = {f.name for f in dataclasses.fields(SegmenterConfig)}
    opt_fields = {f.name for f in dataclasses.fields(InferenceOptions)}
    unknown = set(defaults) - cfg_fields - opt_fields
    if unknown:
        raise TypeError(f'config_from_args: unknown field(s) {sorted(unknown)}')

    def pick(name: str):
        value = getattr(args, name, None)
        return defaults.get(name) if value is None else value

    check_method_options(args)
    opt_kwargs = {k: v for k, v in defaults.items() if k in opt_fields}
    for name in _OPTION_FLAGS:
        value = pick(name)
        if value is not None:
            opt_kwargs[name] = value
    given = getattr(args, 'background_threshold', None)
    if given is not None:  # a threshold asks for the background class; <= 0 turns it off (the node's rule)
        opt_kwargs['background'] = given > 0
        if given <= 0:
            opt_kwargs.pop('background_threshold')
    elif 'background' not in defaults and opt_kwargs.get('background_threshold') is not None:
        opt_kwargs['background'] = True
    options = InferenceOptions(**opt_kwargs)

    cfg_kwargs = {k: v for k, v in defaults.items() if k in cfg_fields}
    for name in _CONFIG_FLAGS:
        value = pick(name)
        if value is not None:
            cfg_kwargs[name] = value
    if getattr(args, 'allow_random_weights', False):
        cfg_kwargs['allow_random_weights'] = True
    if getattr(args, 'method', None) is not None:
        cfg_kwargs['weights'] = resolve_weights(args)
    config = SegmenterConfig(options=options, **cfg_kwargs)
    config.validate()
    return config


def build_segmenter(args: argparse.Namespace, **defaults):
    """Load the model the flags describe (``CheckpointError`` naming the file when one is missing)."""
    from talk2dino_ros.model.segmenter import Segmenter

    config = config_from_args(args, **defaults)
    try:
        return Segmenter.from_config(config)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith('talk2dino_ros.model.methods'):
            raise CliError(f'method {config.method!r} is not available in this installation ({exc.name} '
                           'is missing)') from None
        raise


def parse_vocab_arg(text: str, flag: str = '--vocab') -> List[str]:
    """Split a class list flag (``--vocab``, evaluate's ``--classes``) on commas/newlines with the node's
    rules; empty items are skipped, any other rejected name (duplicate, 'background', control character,
    too long) is an error naming ``flag``."""
    from talk2dino_ros.ros.vocabulary import parse_vocabulary  # ROS-free module

    parsed = parse_vocabulary(text)
    bad = [r for r in parsed.rejected if r.reason != 'empty']
    if bad:
        shown = '; '.join(f'{r.name!r} ({r.reason})' for r in bad[:5])
        raise CliError(f'{flag}: rejected {shown}')
    if not parsed.accepted:
        raise CliError(f'{flag} is empty: give comma-separated class names, e.g. {flag} "cat,dog,grass"')
    return list(parsed.accepted)


# ------------------------------------------------------------------------------------------ errors
def one_line(message: object) -> str:
    """Collapse a message onto one line (stderr stays grep-able and never looks like a traceback)."""
    return ' '.join(str(message).split())


def _os_error_message(exc: OSError) -> str:
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        return f'{what}: {exc.filename}'
    return what


def run_cli(fn: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None, *,
            interrupted: str = 'interrupted') -> int:
    """Run a CLI body; user errors become one ``error: ...`` line on stderr and exit code 2.

    An ``OSError`` is treated as a user error only when it names a file (e.g. an unwritable --out);
    anything else is a bug and keeps its traceback. Ctrl-C prints ``error: <interrupted>`` (a tool that
    can resume says how) and exits 130.
    """
    try:
        return int(fn(argv) or 0)
    except Talk2DinoError as exc:
        print(f'error: {one_line(exc.for_cli())}', file=sys.stderr)  # names flags, not node parameters
        return 2
    except OSError as exc:
        if exc.filename is None:
            raise
        print(f'error: {one_line(_os_error_message(exc))}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'error: {interrupted}', file=sys.stderr)
        return 130
