"""``convert_dataset``: prepare benchmark labels in the mmseg layout that ``evaluate`` reads.

  convert_dataset context VOC2010_DIR [--json trainval_merged.json] [-o OUT] [--phases train val]
  convert_dataset coco_stuff COCO_STUFF164K_DIR [-o OUT] [--splits train2017 val2017] [--nproc N]
  convert_dataset coco_object COCO_STUFF164K_DIR [-o OUT] [--splits train2017 val2017] [--nproc N]

VOC 2012 and ADE20K need no conversion; Cityscapes uses cityscapesScripts'
``csCreateTrainIdLabelImgs`` (see ``evaluate --help``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from talk2dino_ros.cli.common import run_cli
from talk2dino_ros.data.benchmarks import get_benchmark
from talk2dino_ros.errors import Talk2DinoError


def _progress(label: str, quiet: bool):
    if quiet:
        return None
    from tqdm import tqdm

    bar = {}

    def update(done: int, total: int) -> None:
        if 'bar' not in bar:
            bar['bar'] = tqdm(total=total, desc=label, unit='img', file=sys.stderr)
        bar['bar'].update(done - bar['bar'].n)
        if done >= total:
            bar['bar'].close()
    return update


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='convert_dataset', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='dataset', required=True, metavar='{context,coco_stuff,coco_object}')

    ctx = sub.add_parser('context', help='Pascal Context (PASCAL-in-Detail json -> 0..59 PNGs)',
                         description=get_benchmark('context60').prepare,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    ctx.add_argument('devkit', type=Path, help='the VOCdevkit/VOC2010 folder')
    ctx.add_argument('--json', type=Path, default=None,
                     help='trainval_merged.json (default: DEVKIT/trainval_merged.json)')
    ctx.add_argument('-o', '--out-dir', type=Path, default=None,
                     help='label folder (default: DEVKIT/SegmentationClassContext)')
    ctx.add_argument('--phases', nargs='+', default=['train', 'val'], choices=['train', 'val'],
                     help='which image sets to convert: train, val or both (default both)')
    ctx.add_argument('--quiet', action='store_true', help='no progress bar')

    helps = {'coco_stuff': 'COCO-Stuff-171 train ids (<id>_labelTrainIds.png) from the stuffthingmaps',
             'coco_object': 'COCO-Object-81 ids (<id>_instanceTrainIds.png) from the stuffthingmaps'}
    for name, key in (('coco_stuff', 'coco_stuff'), ('coco_object', 'coco_object')):
        p = sub.add_parser(name, help=helps[name],
                           description=get_benchmark(key).prepare,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument('root', type=Path, help='the coco_stuff164k folder (with annotations/<split>/)')
        p.add_argument('-o', '--out-dir', type=Path, default=None,
                       help='output root; labels go to OUT/annotations/<split>/ (default: ROOT)')
        p.add_argument('--splits', nargs='+', default=['train2017', 'val2017'], metavar='SPLIT',
                       help='annotation folders to convert (default train2017 val2017)')
        p.add_argument('--nproc', type=int, default=1, help='worker processes (default 1)')
        p.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser


def _run(argv: Optional[Sequence[str]]) -> int:
    args = build_parser().parse_args(argv)
    if args.dataset == 'context':
        from talk2dino_ros.data.convert_context import convert_pascal_context

        counts = convert_pascal_context(args.devkit, args.json, args.out_dir, args.phases,
                                        _progress('context', args.quiet))
        print('wrote ' + ', '.join(f'{n} {p}' for p, n in counts.items()) + ' label maps')
        return 0
    if args.nproc < 1:
        raise Talk2DinoError(f'--nproc must be >= 1, got {args.nproc}')
    if args.dataset == 'coco_stuff':
        from talk2dino_ros.data.convert_coco_stuff import convert_coco_stuff as convert
    else:
        from talk2dino_ros.data.convert_coco_object import convert_coco_object as convert
    report = convert(args.root, args.out_dir, args.splits, args.nproc,
                     _progress(args.dataset, args.quiet))
    print('wrote ' + ', '.join(f'{n} {s}' for s, n in report.written.items()) + ' label maps')
    if report.unexpected_pixels:
        print(f'warning: {report.unexpected_pixels} pixels in {len(report.unexpected_files)} '
              'files had raw values outside the COCO-Stuff table (written unchanged), e.g. '
              f'{report.unexpected_files[0]}', file=sys.stderr)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(_run, argv)


if __name__ == '__main__':
    sys.exit(main())
