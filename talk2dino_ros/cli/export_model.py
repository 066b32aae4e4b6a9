"""``export_model``: write a method's backbone network to ONNX, for the openvino / onnxruntime / tensorrt backends.

  export_model --method talk2dino --variant vitb --size 448x602          # the whole-frame size of a 480x640 camera
  export_model --method clip_dinoiser --size dynamic --out clip.onnx     # any height/width in patch multiples
  segment_node --ros-args -p backend:=openvino -p exported_model:=clip.onnx

The file holds the network part only (patch features and the last block's CLS attention logits for
Talk2DINO; the MaskCLIP features for CLIP-DINOiser); text, projection, scoring, background and PAMR stay in
torch. Its metadata records the method, variant, the SHA-256 of the backbone's weight file and the input
size; a backend refuses a file that does not match the weights it loads. Without ``--out`` the file goes
where the backends look for it (``exported/`` next to the weights), so the first start does not export.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from talk2dino_ros import catalog
from talk2dino_ros.cli.common import CliError, resolve_weights, run_cli
from talk2dino_ros.cli.reminders import remind_random_weights


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='export_model', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n\n'.join(__doc__.split('\n\n')[1:]))
    p.add_argument('--method', default=catalog.DEFAULT_METHOD, choices=catalog.method_names(),
                   help=f'segmentation method (default {catalog.DEFAULT_METHOD})')
    default_variant = catalog.get_method(catalog.DEFAULT_METHOD).default_variant
    p.add_argument('--variant', default=default_variant, choices=catalog.variant_names(),
                   help=f'backbone: {catalog.variants_help()} (default {default_variant})')
    for role in catalog.all_roles():
        p.add_argument(role.flag, type=Path, default=None, metavar='FILE',
                       help=f'{"/".join(catalog.role_methods(role.name))} {role.name} weight file')
    p.add_argument('--weights-dir', type=Path, default=None, metavar='DIR',
                   help='folder with the published weight files (default $T2D_WEIGHTS_DIR or ~/.cache/talk2dino_ros)')
    p.add_argument('--size', default='dynamic', metavar='HxW',
                   help="input height x width in multiples of the patch size (14 DINOv2, 16 DINOv3 and "
                        "CLIP-DINOiser), or 'dynamic' (default) for any such size")
    p.add_argument('--out', type=Path, default=None, metavar='FILE',
                   help='output .onnx file (default: the backends\' cache next to the weights)')
    p.add_argument('--allow-random-weights', action='store_true',
                   help='accept random test-width weight files (tests and smoke runs only)')
    return p


def _run(argv: Optional[Sequence[str]]) -> int:
    args = build_parser().parse_args(argv)
    from talk2dino_ros.model.exported_network import cache_folder, network_facts, onnx_cache_name
    from talk2dino_ros.model.graph_export import export_onnx, network_graph, parse_size
    from talk2dino_ros.model.methods import get_builder

    size = parse_size(args.size)
    variant = catalog.get_variant(args.method, args.variant).name
    weights = resolve_weights(args)
    method = get_builder(args.method)(weights, variant=variant, allow_test_width=args.allow_random_weights)
    patch = network_graph(method).patch_size
    if size is not None and (size[0] % patch or size[1] % patch):
        raise CliError(f'--size {size[0]}x{size[1]} is not a multiple of the patch size {patch} of '
                       f'{args.method}/{variant}')
    facts, weights_path = network_facts(method, variant, weights, size)
    out = args.out or cache_folder(weights_path) / onnx_cache_name(facts)
    seconds = export_onnx(method, facts, out)
    print(f'{out}: {args.method}/{variant}, input {facts.size_text}, weights sha256 {facts.weights_sha256[:16]}..., '
          f'exported in {seconds:.1f} s')
    remind_random_weights(args)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_cli(_run, argv)


if __name__ == '__main__':
    raise SystemExit(main())
