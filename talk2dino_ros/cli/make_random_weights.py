"""``make_random_weights``: write RANDOM checkpoints in the published formats (tests and smoke runs only).

The files have the exact key layouts and names of the published ones: the official DINOv2 reg4 ``.pth`` or
timm's DINOv3 ``.safetensors`` (``--variant dinov3_vitb``), the OpenAI CLIP ``ViT-B-16.pt`` (TorchScript) and
Talk2DINO's ψ (or CLIP-DINOiser's ``last.pt`` + OpenCLIP ``.bin``). Their outputs are meaningless; ``tiny``
widths are refused by the node unless ``allow_random_weights`` is set.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Optional

from talk2dino_ros import catalog
from talk2dino_ros.model.random_weights import WIDTHS, write_random_weights


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``make_random_weights`` (methods, variants and widths from the catalog)."""
    p = argparse.ArgumentParser(prog='make_random_weights', description=__doc__.split('\n\n')[0])
    p.add_argument('out', type=Path, help='output directory')
    p.add_argument('--method', default=catalog.DEFAULT_METHOD, choices=catalog.method_names(),
                   help=f'whose checkpoint files to imitate (default {catalog.DEFAULT_METHOD})')
    p.add_argument('--variant', default=None, choices=catalog.variant_names(),
                   help='Talk2DINO backbone whose file layout and names are written (default: --width when it '
                        'names a variant, else vitb)')
    p.add_argument('--width', default='tiny', choices=sorted(WIDTHS),
                   help='tiny (tests, seconds) or a published size (hundreds of MB, for speed benchmarks)')
    p.add_argument('--seed', type=int, default=0, help='random seed; the same seed writes the same files (default 0)')
    return p


def main(argv: Optional[Iterable[str]] = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        paths = write_random_weights(args.out, method=args.method, width=args.width, seed=args.seed,
                                     variant=args.variant)
    except (OSError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    for role, path in paths.items():
        print(f'{role:14s} {path}')
    print(f'wrote {len(paths)} RANDOM weight files: for tests and smoke runs only; tiny widths load with '
          '--allow-random-weights (command-line tools) or allow_random_weights:=true (the node)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
