"""``segment_image``: open-vocabulary segmentation of image files, no ROS needed.

  segment_image IMAGE [IMAGE ...] --vocab "cat,dog,grass" --out DIR [--preset benchmark|node]
                [--weights-dir DIR | --dinov2-weights F --clip-weights F --proj-weights F]
                [--bg-clean] [--pamr] [--background-threshold T] [--device D]

For each image it writes

* ``DIR/<stem>.npz`` with ``scores`` ([C, H, W], the final per-class scores at the image's own size,
  before argmax; with a background class channel 0 is the background and vocabulary class i is channel
  i + 1), ``labels`` ([H, W] uint8, uint16 above 256 channels: argmax of the float32 scores), ``classes``
  (the channel names, 'background' first when present) and ``random_weights`` (True when the model was a
  random test one). ``--scores``: ``compressed`` (default) stores float16 scores in a zip-compressed file
  (about 5e-4 from the float32 values), ``full`` float32 uncompressed (4 bytes x C x H x W: 1.2 GB for a
  2048x1024 frame at 150 classes), ``none`` no scores at all;
* ``DIR/<stem>_overlay.png``: the class colours blended over the image, with a legend (and a red
  RANDOM WEIGHTS banner above it when the model was a random test one);
* with ``--depth`` (a depth image registered to the image, one per image) and ``--intrinsics``:
  ``DIR/<stem>.ply``, the semantic point cloud (x y z in metres in the camera's optical frame, label,
  confidence; ``--rgb`` adds colour), and ``DIR/<stem>_detections.json``, one entry per object (class,
  mean confidence, 2D box in pixels, robust 3D centre and size in metres).

Images are read as RGB at their own size (EXIF orientation applied, alpha dropped, grey expanded to
three channels); nothing is squashed. An unreadable image stops the run with exit code 2 before the
model loads (``--skip-bad`` skips it with a warning instead).

Two presets (``--preset``; any inference flag given overrides its value):

* ``benchmark`` (default), the paper's evaluation protocol as the engine runs it: sliding 448/224 windows,
  no background class, no cleaning, no PAMR. ``labels`` value 0 is the FIRST vocabulary class.
* ``node``, the ROS node's and segment_bag's defaults: one pass over the whole frame, a background class
  at 0.55, background cleaning on, no PAMR. ``labels`` value 0 is background, vocabulary class i is i + 1
  (the node's ``~/labels`` convention).

The chosen preset, its settings and the label convention are printed before the first image.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from talk2dino_ros import catalog
from talk2dino_ros.atomic_files import atomic_open, atomic_path
from talk2dino_ros.cli.common import (CliError, add_inference_arguments, add_model_arguments, build_segmenter,
                                      one_line, parse_vocab_arg, run_cli)
from talk2dino_ros.cli.reminders import RANDOM_WEIGHTS_HEADER, is_random, remind_random_weights
from talk2dino_ros.cli.spatial_args import add_spatial_arguments, read_depth_file, spatial_options
from talk2dino_ros.contract.parameters import node_defaults


#: what ``--scores`` stores: compressed float16, uncompressed float32, or nothing
SCORE_CHOICES = ('compressed', 'full', 'none')
#: preset -> the defaults it gives :func:`build_segmenter` (flags the user gives win)
PRESETS: Dict[str, Dict[str, Any]] = {
    # no `background` key: giving --background-threshold is then how a user asks for the background class
    'benchmark': dict(mode='slide', bg_clean=False, pamr=False),
    # the node's own defaults, from its parameter table
    'node': dict(background=True, **node_defaults('mode', 'background_threshold', 'bg_clean', 'pamr')),
}


def _node_preset_words() -> str:
    node = PRESETS['node']
    return (f"mode {node['mode']}, background {node['background_threshold']}, cleaning "
            f"{'on' if node['bg_clean'] else 'off'}, PAMR {'on' if node['pamr'] else 'off'}, label 0 = background")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='segment_image', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('images', nargs='+', type=Path, metavar='IMAGE', help='image files (png, jpg, ...)')
    p.add_argument('--vocab', required=True, help='comma-separated class names, e.g. "cat,dog,grass"')
    p.add_argument('--out', required=True, type=Path, metavar='DIR', help='output folder (created)')
    p.add_argument('--skip-bad', action='store_true', help='skip unreadable images with a warning')
    p.add_argument('--no-overlay', dest='overlay', action='store_false', help='do not write overlay PNGs')
    p.add_argument('--alpha', type=float, default=0.5, help='overlay opacity of the class colours (default 0.5)')
    p.add_argument('--scores', choices=SCORE_CHOICES, default='compressed',
                   help='scores in the .npz: compressed (default; float16, zip-compressed), full (float32, '
                        'uncompressed, 4 bytes per class and pixel) or none (labels and classes only)')
    p.add_argument('--preset', choices=tuple(PRESETS), default='benchmark',
                   help='benchmark (default): the paper\'s protocol (sliding windows, no background class, '
                        'label 0 = first class); node: the ROS node\'s defaults (' + _node_preset_words() + ')')
    p.add_argument('--depth', nargs='+', type=Path, default=None, metavar='FILE',
                   help='depth registered to each image, in image order: 16-bit PNG/TIFF in millimetres, or '
                        '.npy (uint16 millimetres or float metres); any resolution')
    p.add_argument('--intrinsics', default=None, metavar='FX,FY,CX,CY',
                   help='pinhole intrinsics of the depth images at their own resolution (with --depth)')
    add_spatial_arguments(p)
    add_model_arguments(p)
    add_inference_arguments(p)
    return p


# ------------------------------------------------------------------------------------------ image I/O
def check_image_file(path: Path) -> Optional[str]:
    """Why ``path`` cannot be read as an image (None when it looks readable); reads only the header."""
    import cv2

    if not path.exists():
        return 'no such file'
    if not path.is_file():
        return 'not a file'
    try:
        if not cv2.haveImageReader(str(path)):
            return 'not an image in a format OpenCV can read'
    except cv2.error:
        return 'not an image in a format OpenCV can read'
    return _size_problem(path)


#: bytes of a file searched for its size (PNG/JPEG/Pillow headers; a JPEG's frame header follows its
#: metadata segments, which rarely take more than a few hundred kB)
_HEADER_BYTES = 1 << 20


def _size_problem(path: Path) -> Optional[str]:
    """Why the size in ``path``'s header is more than the engine takes (None when fine or not measurable:
    the decoder then has the last word). A header claiming 65000x65000 is refused before decoding."""
    from talk2dino_ros.ros.image_conversion import ImageTooLargeError, check_input_size, compressed_size

    try:
        with open(path, 'rb') as fh:
            head = fh.read(_HEADER_BYTES)
        size = compressed_size(head)
        if size is not None:
            check_input_size(*size)
    except ImageTooLargeError as exc:
        return str(exc)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def read_image_rgb(path: Path) -> np.ndarray:
    """uint8 [H, W, 3] RGB at the file's own size; ``CliError`` naming the file when it cannot be decoded."""
    import cv2

    reason = check_image_file(path)
    if reason is not None:
        raise CliError(f'cannot read image {path}: {reason}')
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)  # 8-bit, 3 channels, EXIF orientation applied
    if bgr is None or bgr.size == 0:
        raise CliError(f'cannot read image {path}: decoding failed (corrupt or truncated file?)')
    from talk2dino_ros.ros.image_conversion import ImageTooLargeError, check_input_size

    try:  # a size the header did not tell: refused here, before the engine would
        check_input_size(bgr.shape[1], bgr.shape[0])
    except ImageTooLargeError as exc:
        raise CliError(f'cannot read image {path}: {exc}') from None
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def write_png_rgb(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB PNG atomically (a temporary file, then a rename); ``CliError`` naming it on failure."""
    import cv2

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise CliError(f'cannot write {path}')


# ------------------------------------------------------------------------------------------ outputs
def save_result(out_dir: Path, stem: str, result, rgb: Optional[np.ndarray], alpha: float = 0.5, *,
                scores: str = 'compressed', random_weights: bool = False) -> List[Path]:
    """Write ``<stem>.npz`` (and ``<stem>_overlay.png`` when ``rgb`` is given); returns the paths written.

    ``scores``: one of :data:`SCORE_CHOICES`; ``random_weights`` is stored in the file and puts a banner on
    the overlay.
    """
    from talk2dino_ros.outputs import frame
    from talk2dino_ros.outputs.banner import RANDOM_WEIGHTS_BANNER
    from talk2dino_ros.outputs.colors import class_colors

    if scores not in SCORE_CHOICES:
        raise ValueError(f'scores must be one of {SCORE_CHOICES}, got {scores!r}')
    npz = out_dir / f'{stem}.npz'
    classes = np.array(result.class_names, dtype=str)
    # the file keeps channel indices as labels; their dtype follows the one label rule (ids 0..C-1)
    labels = result.labels.astype(frame.label_dtype(len(classes) - 1))
    arrays = dict(labels=labels, classes=classes, random_weights=np.bool_(random_weights))
    if scores == 'full':
        arrays['scores'] = result.scores.astype(np.float32, copy=False)
    elif scores == 'compressed':
        arrays['scores'] = result.scores.astype(np.float16)
    save = np.savez_compressed if scores == 'compressed' else np.savez
    with atomic_open(npz, 'wb') as fh:  # a file object: np.savez would otherwise append '.npz' to odd names
        save(fh, **arrays)
    written = [npz]
    if rgb is not None:
        vocab = result.class_names[1:] if result.has_background else result.class_names
        images = frame.build_frame_outputs(result, {frame.OVERLAY}, rgb=rgb, colors=class_colors(vocab),
                                           names=vocab, overlay_alpha=alpha,
                                           banner=RANDOM_WEIGHTS_BANNER if random_weights else '')
        png = out_dir / f'{stem}_overlay.png'
        write_png_rgb(png, images.overlay)
        written.append(png)
    return written


def save_spatial(out_dir: Path, stem: str, result, rgb: np.ndarray, depth_file: Path, intrinsics_text: str,
                 options: Any, random_weights: bool = False) -> List[Path]:
    """Write ``<stem>.ply`` and ``<stem>_detections.json`` for one image and its depth file
    (``random_weights`` is said in both)."""
    import json

    from talk2dino_ros.atomic_files import atomic_write_text
    from talk2dino_ros.spatial.cloud import read_cloud, unpack_rgb
    from talk2dino_ros.spatial.depth import depth_to_metres
    from talk2dino_ros.spatial.intrinsics import parse_intrinsics
    from talk2dino_ros.spatial.ply import write_ply
    from talk2dino_ros.spatial.scene import build_spatial

    pixels, encoding = read_depth_file(depth_file)
    intr = parse_intrinsics(intrinsics_text, pixels.shape[1], pixels.shape[0])
    vocab = result.class_names[1:] if result.has_background else result.class_names
    frame = build_spatial(result.labels_with_background_zero(), result.confidence(), vocab,
                          depth_to_metres(pixels, encoding, options.depth_max_m), intr, options, rgb=rgb)
    cloud = frame.cloud
    fields = read_cloud(cloud.fields, cloud.point_step, cloud.data.tobytes(), cloud.width)
    xyz = np.stack([fields['x'], fields['y'], fields['z']], axis=1)
    colours = unpack_rgb(fields['rgb']) if 'rgb' in fields else None
    ply = out_dir / f'{stem}.ply'
    write_ply(ply, xyz, fields['label'], fields['confidence'], colours,
              comment=('RANDOM WEIGHTS (meaningless labels): ' if random_weights else '') +
                      f'talk2dino_ros semantic cloud of {stem}; label 0 = background, ' +
                      ', '.join(f'{i + 1} = {n}' for i, n in enumerate(vocab)))
    report = {'random_weights': bool(random_weights), 'image_stem': stem, 'depth': str(depth_file),
              'depth_encoding': encoding,
              'depth_size': [int(pixels.shape[1]), int(pixels.shape[0])],
              'intrinsics': {'fx': intr.fx, 'fy': intr.fy, 'cx': intr.cx, 'cy': intr.cy},
              'frame': 'optical frame of the depth camera (x right, y down, z forward), metres',
              'classes': {'0': 'background', **{str(i + 1): n for i, n in enumerate(vocab)}},
              'points': cloud.width, 'detections': [d.as_dict() for d in frame.detections]}
    js = out_dir / f'{stem}_detections.json'
    atomic_write_text(js, json.dumps(report, indent=1))
    return [ply, js]


def describe_settings(preset: str, config: Any) -> str:
    """One line: the preset, the settings it ended with (after the flags) and the label convention.

    Steps the method does not have are said to be absent ('n/a'), never 'on' (the node preset's cleaning
    with clip_dinoiser).
    """
    opts = config.options
    method = getattr(config, 'method', catalog.DEFAULT_METHOD)
    ignored = catalog.get_method(method).ignored_options if method in catalog.METHODS else ()

    def switch(name: str, value: bool) -> str:
        return f'n/a ({method} has none)' if name in ignored else ('on' if value else 'off')

    if not opts.background:
        background = 'no background class'
    elif not catalog.background_is_threshold(getattr(config, 'method', catalog.DEFAULT_METHOD)):
        # a text class plus the saliency rule
        background = 'background class (saliency rule)'
    else:
        background = f'background class at {opts.background_threshold:g}'
    labels = ('labels: 0 = background, class i of --vocab = i + 1' if opts.background
              else 'labels: 0 = the first class of --vocab, class i = i')
    precision = ''
    if getattr(config, 'fp16', False):
        from talk2dino_ros.model.segmenter import resolve_device

        precision = (', fp16 autocast' if resolve_device(config.device).type == 'cuda'
                     else ', bf16 autocast on the CPU (not exact)')
    return (f"preset {preset}: mode {config.mode}, {background}, cleaning {switch('bg_clean', opts.bg_clean)}, "
            f"PAMR {switch('pamr', opts.pamr)}{precision}; {labels}")


def _unique_stems(paths: Sequence[Path]) -> None:
    seen = {}
    for p in paths:
        if p.stem in seen and seen[p.stem] != p:
            raise CliError(f'{seen[p.stem]} and {p} would both write {p.stem}.npz; give images distinct names '
                           'or run them separately')
        seen[p.stem] = p


def _warn(message: str) -> None:
    print(f'warning: {one_line(message)}', file=sys.stderr)


# ------------------------------------------------------------------------------------------ main
def _run(argv: Optional[Sequence[str]]) -> int:
    args = build_parser().parse_args(argv)
    if not 0.0 <= args.alpha <= 1.0:
        raise CliError(f'--alpha must be in [0, 1], got {args.alpha}')
    names = parse_vocab_arg(args.vocab)
    options = spatial_options(args)
    if (args.depth is None) != (args.intrinsics is None):
        raise CliError('--depth and --intrinsics go together: give both (or neither)')
    if args.depth is not None and len(args.depth) != len(args.images):
        raise CliError(f'--depth needs one file per image: {len(args.images)} image(s), {len(args.depth)} depth file(s)')
    depth_of = dict(zip(args.images, args.depth)) if args.depth is not None else {}
    if args.intrinsics is not None:
        from talk2dino_ros.spatial.intrinsics import parse_intrinsics

        parse_intrinsics(args.intrinsics, 1, 1)  # a malformed value fails before the model loads
    for depth_file in depth_of.values():
        read_depth_file(depth_file)
    images: List[Path] = []
    for path in args.images:
        # decoded once here, before the model loads or any output is written: a corrupt file among the
        # inputs stops the run with nothing written (or, with --skip-bad, is left out up front)
        try:
            read_image_rgb(path)
        except CliError as exc:
            if not args.skip_bad:
                raise CliError(f'{exc} (use --skip-bad to skip it)') from None
            _warn(f'skipping {path}: {exc}')
            continue
        images.append(path)
    if not images:
        raise CliError('no readable image among the inputs')
    _unique_stems(images)
    args.out.mkdir(parents=True, exist_ok=True)

    segmenter = build_segmenter(args, **PRESETS[args.preset])
    random_weights = is_random(args, segmenter)
    if random_weights:
        print(RANDOM_WEIGHTS_HEADER, flush=True)
    print(describe_settings(args.preset, segmenter.config), flush=True)
    segmenter.set_vocabulary(names)
    done = 0
    for path in images:
        try:
            rgb = read_image_rgb(path)
        except CliError as exc:
            if not args.skip_bad:
                raise
            _warn(f'skipping {path}: {exc}')
            continue
        start = time.perf_counter()
        result = segmenter.segment(rgb)
        seconds = time.perf_counter() - start
        written = save_result(args.out, path.stem, result, rgb if args.overlay else None, args.alpha,
                              scores=args.scores, random_weights=random_weights)
        if path in depth_of:
            written += save_spatial(args.out, path.stem, result, rgb, depth_of[path], args.intrinsics, options,
                                    random_weights=random_weights)
        print(f'{path}: {rgb.shape[1]}x{rgb.shape[0]}, {len(result.class_names)} channels, {seconds:.2f} s '
              f'-> {", ".join(str(w) for w in written)}')
        done += 1
    if done == 0:
        raise CliError('no image could be segmented')
    remind_random_weights(args, random=random_weights)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point; returns 0, or 2 after one ``error: ...`` line."""
    return run_cli(_run, argv)


if __name__ == '__main__':
    sys.exit(main())
