"""``train``: train Talk2DINO's projection ψ from a COCO-captions dataset (the authors' recipe).

Two stages that run separately::

    train extract --config config/train.yaml --images coco/train2014 \\
        --annotations coco/annotations/captions_train2014.json --output features/train \\
        --dinov2 dinov2_vitb14_reg4_pretrain.pth --clip ViT-B-16.pt
    train fit --config config/train.yaml --features features/train --val-features features/val \\
        --output weights/my_vitb_mlp_infonce.pth

Every option of the yaml (sections ``extract`` and ``fit``) is also a flag; flags win over the yaml,
the yaml wins over the built-in defaults (which are the paper's recipe). ``fit`` writes ``history.jsonl``
and, with matplotlib installed (``pip install 'talk2dino_ros[plots]'``), ``loss.png`` and ``recall.png`` in
its run folder after every epoch.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Type

import yaml

from talk2dino_ros import catalog
from talk2dino_ros.cli.common import run_cli
from talk2dino_ros.errors import Talk2DinoError

SECTIONS = ('extract', 'fit')
#: the backbones a ψ can be trained for (the catalog's Talk2DINO variants)
VARIANT_CHOICES = tuple(catalog.get_method('talk2dino').variant_names)
DEVICE_TEXT = 'auto (CUDA when available), cpu, cuda or cuda:N'

#: section -> option -> (help text, choices or None); every option of ExtractConfig / FitConfig has one
#: (a test checks it), so ``--help`` never falls back to a bare name
OPTION_HELP: Dict[str, Dict[str, Any]] = {
    'extract': {
        'images': ('folder with the images the annotations name by file_name (e.g. coco/train2014)', None),
        'annotations': ('COCO captions json (e.g. coco/annotations/captions_train2014.json)', None),
        'output': ('feature folder to create; rerunning the same command resumes it', None),
        'dinov2': ('DINOv2 reg4 checkpoint (official dinov2_vit*14_reg4_pretrain.pth or timm layout)', None),
        'clip': ("OpenAI CLIP ViT-B/16 (ViT-B-16.pt) or an open_clip state dict; its text tower encodes the "
                 'captions', None),
        'variant': ("backbone the --dinov2 file must be (empty: accept whichever published one it is)",
                    VARIANT_CHOICES),
        'resolution': ('short side after the bicubic resize, then a centre crop to a square of this size',
                       None),
        'shard_size': ('images per shard file of the feature folder', None),
        'batch_size': ('images per backbone forward pass', None),
        'text_batch_size': ('captions per text-tower forward pass', None),
        'dtype': ('storage precision of the features on disk', ('float16', 'float32')),
        'patch_tokens': ('also store every image\'s patch tokens (large; train fit does not need them)', None),
        'device': (DEVICE_TEXT, None),
        'workers': ('image-decoding threads', None),
        'limit': ('extract only the first N images (0: all)', None),
        'allow_random_weights': ('accept DINOv2/CLIP files of non-standard (random test) widths; for tests '
                                 'and smoke runs only', None),
        'progress': ('show a progress bar', None),
    },
    'fit': {
        'features': ('training feature folder written by train extract', None),
        'val_features': ('validation feature folder for retrieval recall after every epoch (empty: no '
                         'validation)', None),
        'output': ('where to write the trained ψ (the released Talk2DINO layout; loads as --proj-weights)',
                   None),
        'run_dir': ('folder for checkpoint.pt, history.jsonl, loss.png and recall.png (empty: '
                    '<output without suffix>_run)', None),
        'epochs': ('number of passes over the training captions', None),
        'batch_size': ('captions per optimisation step (the last partial batch is kept)', None),
        'lr': ('Adam learning rate (constant)', None),
        'temperature': ('InfoNCE temperature (fixed, never learned)', None),
        'seed': ('seed of the initialisation and of the caption shuffling', None),
        'device': (DEVICE_TEXT, None),
        'resume': ('continue from the checkpoint in the run folder when one exists', None),
        'variant': ('refuse features not extracted with this backbone (empty: no check)', VARIANT_CHOICES),
        'dinov2': ('refuse features not extracted with this exact DINOv2 file (compared by sha256; empty: no '
                   'check)', None),
        'val_max_images': ('validate on the first N validation images only (0: all; retrieval cost grows '
                           'with images x captions)', None),
        'recall_ks': ('k values of the recall@k validation metrics', None),
        'progress': ('show a progress bar per epoch', None),
        'plots': ('write loss.png and recall.png into the run folder after every epoch (needs matplotlib: '
                  "pip install 'talk2dino_ros[plots]')", None),
    },
}


class ConfigError(Talk2DinoError):
    """The yaml config is missing, malformed, or has unknown options."""


def _config_class(section: str) -> Type:
    if section == 'extract':
        from talk2dino_ros.training.extract import ExtractConfig
        return ExtractConfig
    from talk2dino_ros.training.fit import FitConfig
    return FitConfig


def _field_types(cls: Type) -> Dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(cls: Type, values: Dict[str, Any], source: str) -> Dict[str, Any]:
    """Check names and types of yaml values against the config dataclass."""
    types = _field_types(cls)
    out = {}
    for key, value in values.items():
        name = str(key).replace('-', '_')
        if name not in types:
            raise ConfigError(f'{source}: unknown option {key!r} (known: {", ".join(sorted(types))})')
        kind = types[name]
        try:
            if kind is bool:
                if not isinstance(value, bool):
                    raise TypeError
            elif typing.get_origin(kind) is tuple:
                value = tuple(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
            elif kind is str:
                value = '' if value is None else str(value)
            else:
                if isinstance(value, bool):
                    raise TypeError
                value = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f'{source}: option {key!r} must be {getattr(kind, "__name__", kind)}, '
                              f'got {value!r}') from None
        out[name] = value
    return out


def load_yaml_section(path: str, section: str) -> Dict[str, Any]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f'config file not found: {p}')
    try:
        with open(p, encoding='utf-8') as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f'config file {p} is not valid YAML: {exc}') from None
    if not isinstance(data, dict) or not set(data) <= set(SECTIONS):
        raise ConfigError(f'config file {p} must hold the sections {", ".join(SECTIONS)} (found {list(data)})')
    body = data.get(section) or {}
    if not isinstance(body, dict):
        raise ConfigError(f'config file {p}: section {section!r} must be a mapping')
    return _coerce(_config_class(section), body, f'{p} [{section}]')


def _show_default(value: Any) -> str:
    if isinstance(value, bool):
        return 'on' if value else 'off'
    if isinstance(value, tuple):
        return ' '.join(map(str, value))
    return 'empty' if value == '' else str(value)


def _add_options(parser: argparse.ArgumentParser, cls: Type, section: str) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for name, kind in _field_types(cls).items():
        flag = '--' + name.replace('_', '-')
        described, choices = OPTION_HELP[section][name]
        # the yaml key is named so a user can find where the same setting lives in config/train.yaml
        text = f'{described} (default {_show_default(defaults[name])}; yaml {section}.{name})'
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(flag, dest=name, type=int, nargs='+', default=None, metavar='K', help=text)
        elif choices is not None:
            # an empty value ('' in the yaml) keeps its meaning of "no check / any"
            parser.add_argument(flag, dest=name, type=kind, default=None, choices=('',) + tuple(choices)
                                if defaults[name] == '' else tuple(choices),
                                metavar='{' + ','.join(choices) + '}', help=text)
        else:
            parser.add_argument(flag, dest=name, type=kind, default=None, metavar=name.upper(), help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='train', description='Train the Talk2DINO projection ψ (extract, fit).')
    sub = parser.add_subparsers(dest='command', required=True)
    helps = {'extract': 'run the frozen DINOv2 + CLIP text tower once over a COCO-captions dataset',
             'fit': 'train ψ on extracted features with the paper recipe'}
    for section in SECTIONS:
        p = sub.add_parser(section, help=helps[section], description=helps[section])
        p.add_argument('--config', default=None, metavar='YAML',
                       help='recipe file (e.g. config/train.yaml); flags given here override its values')
        _add_options(p, _config_class(section), section)
    return parser


def resolve_config(args: argparse.Namespace):
    """Defaults < yaml section < flags."""
    cls = _config_class(args.command)
    values: Dict[str, Any] = load_yaml_section(args.config, args.command) if args.config else {}
    for name, kind in _field_types(cls).items():
        flag = getattr(args, name, None)
        if flag is not None:
            values[name] = tuple(flag) if typing.get_origin(kind) is tuple else flag
    return cls(**values)


def _run(argv: Optional[Sequence[str]]) -> int:
    args = build_parser().parse_args(argv)
    cfg = resolve_config(args)
    if args.command == 'extract':
        from talk2dino_ros.training.extract import run_extract
        stats = run_extract(cfg)
        if stats.get('random_weights'):  # features of a random backbone train a meaningless ψ
            from talk2dino_ros.cli.reminders import RANDOM_FEATURES_NOTE
            print(RANDOM_FEATURES_NOTE, file=sys.stderr)
    else:
        from talk2dino_ros.training.fit import fit
        result = fit(cfg)
        if result.random_weights:
            from talk2dino_ros.cli.reminders import RANDOM_FIT_NOTE
            print(RANDOM_FIT_NOTE, file=sys.stderr)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(_run, argv, interrupted='interrupted (rerun the same command to resume)')


if __name__ == '__main__':
    sys.exit(main())
