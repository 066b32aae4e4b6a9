"""The catalog of segmentation methods: the one place that says what a method is.

For every method it records the variants (backbones), the weight roles each variant loads with the
published file behind each role, and the benchmark protocol defaults. Every front end derives its
names from here: the node parameter of a role is ``<role>_weights``, the CLI flag is
``--<role>-weights``, and the default path of a role is its file name inside the weights directory.

Adding a method means writing its module (a builder in ``talk2dino_ros.model.methods``) and one
:class:`MethodSpec` in :data:`METHODS`; adding a backbone means one :class:`Variant`.

Pure data: importing this module needs neither torch nor ROS.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

WEIGHTS_DIR_ENV = 'T2D_WEIGHTS_DIR'
DEFAULT_WEIGHTS_DIR = Path('~/.cache/talk2dino_ros')


class CatalogError(KeyError):
    """An unknown method, variant or published file name (the message lists the known ones)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''


def default_weights_dir() -> Path:
    """``$T2D_WEIGHTS_DIR`` if set, else ``~/.cache/talk2dino_ros`` (where ``fetch_weights`` puts files)."""
    env = os.environ.get(WEIGHTS_DIR_ENV, '').strip()
    return Path(env).expanduser() if env else DEFAULT_WEIGHTS_DIR.expanduser()


# ---------------------------------------------------------------------------------------- files
@dataclass(frozen=True)
class PublishedFile:
    """One published checkpoint file that ``fetch_weights`` can download and verify."""

    name: str                    # registry key
    filename: str                # file name in the weights directory
    role: str                    # loader role (see ROLES)
    url: str
    size: Optional[int] = None   # exact size in bytes, when known
    approx_size: Optional[int] = None  # size estimate (accept ±5 %) when the exact size is unknown
    sha256: Optional[str] = None
    git_blob: Optional[str] = None  # GitHub-hosted files: `git hash-object` of the pinned blob
    description: str = ''
    licence: str = ''            # terms the user accepts by downloading, when not permissive
    gated: bool = False          # the host asks for an accepted licence (and a token) before serving it


_DINO = 'https://dl.fbaipublicfiles.com/dinov2'
_T2D = 'https://raw.githubusercontent.com/lorebianchi98/Talk2DINO/4918c2df1d00c644ecc7f34de070694af1a8bc69/weights'
_CD = 'https://raw.githubusercontent.com/wysoczanska/clip_dinoiser/a954aae6fb61f5ff18834e50a0c78a2258cd9afb'
_HF = 'https://huggingface.co'
DINOV3_LICENCE = ('DINOv3 License (Meta): accept it on the Hugging Face model page before downloading; '
                  'https://ai.meta.com/resources/models-and-libraries/dinov3-license')

PUBLISHED: Dict[str, PublishedFile] = {f.name: f for f in [
    PublishedFile('dinov2_vitb14_reg', 'dinov2_vitb14_reg4_pretrain.pth', 'dinov2',
                  f'{_DINO}/dinov2_vitb14/dinov2_vitb14_reg4_pretrain.pth', approx_size=346_398_551,
                  description='DINOv2 ViT-B/14 with registers (official)'),
    PublishedFile('dinov2_vits14_reg', 'dinov2_vits14_reg4_pretrain.pth', 'dinov2',
                  f'{_DINO}/dinov2_vits14/dinov2_vits14_reg4_pretrain.pth', approx_size=88_232_448,
                  description='DINOv2 ViT-S/14 with registers (official)'),
    PublishedFile('dinov2_vitl14_reg', 'dinov2_vitl14_reg4_pretrain.pth', 'dinov2',
                  f'{_DINO}/dinov2_vitl14/dinov2_vitl14_reg4_pretrain.pth', approx_size=1_217_490_944,
                  description='DINOv2 ViT-L/14 with registers (official)'),
    # timm's hosted DINOv3 weights (the names the authors pass to timm.create_model). No size or
    # checksum is recorded: the hub is gated and was not reachable when this entry was written, so
    # the file is checked by loading it strictly (every key and shape) instead.
    PublishedFile('dinov3_vitb16_lvd1689m', 'vit_base_patch16_dinov3.lvd1689m.safetensors', 'dinov3',
                  f'{_HF}/timm/vit_base_patch16_dinov3.lvd1689m/resolve/main/model.safetensors',
                  description='DINOv3 ViT-B/16 distilled, LVD-1689M (timm layout, safetensors)',
                  licence=DINOV3_LICENCE, gated=True),
    PublishedFile('dinov3_vitl16_lvd1689m', 'vit_large_patch16_dinov3.lvd1689m.safetensors', 'dinov3',
                  f'{_HF}/timm/vit_large_patch16_dinov3.lvd1689m/resolve/main/model.safetensors',
                  description='DINOv3 ViT-L/16 distilled, LVD-1689M (timm layout, safetensors)',
                  licence=DINOV3_LICENCE, gated=True),
    PublishedFile('clip_vitb16_openai', 'ViT-B-16.pt', 'clip',
                  'https://openaipublic.azureedge.net/clip/models/'
                  '5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt',
                  sha256='5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f',
                  description='OpenAI CLIP ViT-B/16 (TorchScript release; text tower used)'),
    PublishedFile('talk2dino_vitb', 'vitb_mlp_infonce.pth', 'proj', f'{_T2D}/vitb_mlp_infonce.pth',
                  size=3_940_664,
                  sha256='5f6efcc520f22916ecf3dfdfb01d6f57e701c1c2e1feda71a80d89e3cd752f0f',
                  git_blob='2e8fd64706f39b247c71a0b10a46c3d98cff440e',
                  description='Talk2DINO projection ψ for DINOv2 ViT-B'),
    PublishedFile('talk2dino_vitl', 'vitl_mlp_infonce.pth', 'proj', f'{_T2D}/vitl_mlp_infonce.pth',
                  approx_size=6_300_000, git_blob='21a0038cc793403648264fe9c90a29c9533770a3',
                  description='Talk2DINO projection ψ for DINOv2 ViT-L'),
    PublishedFile('talk2dino_dinov3_vitb', 'dinov3_vitb_mlp_infonce.pth', 'proj',
                  f'{_T2D}/dinov3_vitb_mlp_infonce.pth', size=3_940_311,
                  sha256='6fc5ce7a05d8f1c829c174d87b861da05399cf0bfe50de3711ac940115d85fcc',
                  git_blob='bac8a30ef578adc99193bd1d2e94b3d6849624c3',
                  description='Talk2DINO projection ψ for DINOv3 ViT-B'),
    # only the git blob id of the ViT-L ψ is known (the blob itself was not available to hash)
    PublishedFile('talk2dino_dinov3_vitl', 'dinov3_vitl_mlp_infonce.pth', 'proj',
                  f'{_T2D}/dinov3_vitl_mlp_infonce.pth', git_blob='51dfe9926175877b5deecaba07c398e46e9d61fe',
                  description='Talk2DINO projection ψ for DINOv3 ViT-L'),
    PublishedFile('clip_dinoiser', 'last.pt', 'clip_dinoiser', f'{_CD}/checkpoints/last.pt',
                  approx_size=7_084_465, git_blob='0b6c94d9c439ebac7bcb07fe805be3654ea03c7f',
                  description='CLIP-DINOiser obj_proj + bkg_decoder'),
    PublishedFile('openclip_vitb16_laion2b', 'open_clip_pytorch_model.bin', 'openclip',
                  f'{_HF}/laion/CLIP-ViT-B-16-laion2B-s34B-b88K/resolve/main/open_clip_pytorch_model.bin',
                  approx_size=598_500_000, description='OpenCLIP ViT-B/16 LAION-2B (GELU) for CLIP-DINOiser'),
]}


# ---------------------------------------------------------------------------------------- roles
@dataclass(frozen=True)
class WeightRole:
    """One weight file a method loads; its node parameter and CLI flag are derived from ``name``."""

    name: str
    description: str  # node parameter description and CLI help

    @property
    def parameter(self) -> str:
        return f'{self.name}_weights'

    @property
    def flag(self) -> str:
        return '--' + self.name.replace('_', '-') + '-weights'

    @property
    def dest(self) -> str:
        """The argparse attribute of :attr:`flag`."""
        return self.flag.lstrip('-').replace('-', '_')


#: every role, in the order node parameters and CLI flags are listed
ROLES: Dict[str, WeightRole] = {r.name: r for r in [
    WeightRole('dinov2', 'talk2dino: DINOv2 ViT-*/14 reg4 checkpoint, e.g. dinov2_vitb14_reg4_pretrain.pth.'),
    WeightRole('dinov3', 'talk2dino (dinov3_* variants): timm DINOv3 ViT-*/16 checkpoint, e.g. '
               'vit_base_patch16_dinov3.lvd1689m.safetensors.'),
    WeightRole('clip', 'talk2dino: OpenAI CLIP ViT-B/16 checkpoint (ViT-B-16.pt).'),
    WeightRole('proj', 'talk2dino: projection weights, e.g. vitb_mlp_infonce.pth.'),
    WeightRole('openclip', 'clip_dinoiser: LAION OpenCLIP ViT-B/16 checkpoint (open_clip_pytorch_model.bin).'),
    WeightRole('clip_dinoiser', 'clip_dinoiser: CLIP-DINOiser head checkpoint (last.pt).'),
]}


# ---------------------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class Backbone:
    """A ViT backbone as timm builds it; ``num_prefix_tokens`` = CLS + registers."""

    family: str          # 'dinov2' | 'dinov3' (also the weight role that loads it)
    timm_name: str
    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int
    num_prefix_tokens: int = 5


@dataclass(frozen=True)
class Variant:
    """A backbone choice of a method: the file behind each role and its protocol defaults.

    ``files``: role -> file name in the weights directory (also what ``make_random_weights`` writes);
    ``published``: role -> :data:`PUBLISHED` key, for the roles with a published file. A role without
    one has no default path: its parameter/flag must be given.
    """

    name: str
    title: str
    files: Mapping[str, str]
    published: Mapping[str, str] = field(default_factory=dict)
    backbone: Optional[Backbone] = None
    background_threshold: float = 0.55   # Talk2DINO eval ymls; the constant background score
    note: str = ''

    @property
    def roles(self) -> Tuple[str, ...]:
        return tuple(self.files)

    @property
    def fully_published(self) -> bool:
        return set(self.published) == set(self.files)


@dataclass(frozen=True)
class MethodSpec:
    """One segmentation method: its module, variants and benchmark protocol defaults."""

    name: str
    title: str
    module: str                   # import path of the module holding the builder
    builder: str                  # builder(weights, variant, allow_test_width) -> SegmentationMethod
    variants: Tuple[Variant, ...]
    default_variant: str
    # benchmark protocol defaults
    protocol_pamr: bool           # PAMR on by default in the protocol
    background_is_threshold: bool  # background = a constant score channel (else a text class)
    protocol_bg_clean: bool       # the benchmark's background-cleaning switch applies
    background_rule_from_benchmark: bool  # saliency rule per benchmark (else: whenever there is a background)
    class_list: str               # which class list of a benchmark the method is evaluated on
    #: InferenceOptions the method has no step for (their flags are refused), and why, in a few words
    ignored_options: Tuple[str, ...] = ()
    ignored_why: str = ''

    @property
    def variant_names(self) -> Tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    @property
    def has_variants(self) -> bool:
        """False when the method has a single backbone (``--variant`` is then ignored)."""
        return len(self.variants) > 1

    @property
    def roles(self) -> Tuple[str, ...]:
        """Every role any variant loads, in :data:`ROLES` order."""
        used = {r for v in self.variants for r in v.roles}
        return tuple(r for r in ROLES if r in used)

    def variant(self, name: Optional[str] = None) -> Variant:
        """The variant called ``name``; a single-backbone method returns its one variant for any name."""
        if not self.has_variants:
            return self.variants[0]
        name = name or self.default_variant
        for v in self.variants:
            if v.name == name:
                return v
        raise CatalogError(f'unknown {self.name} variant {name!r} (expected one of {", ".join(self.variant_names)})')


def _dinov2(name: str, width: str, dim: int, depth: int, heads: int, threshold: float,
            proj: Optional[str]) -> Variant:
    files = {'dinov2': f'dinov2_{width}14_reg4_pretrain.pth', 'clip': 'ViT-B-16.pt',
             'proj': f'{width}_mlp_infonce.pth'}
    published = {'dinov2': f'dinov2_{width}14_reg', 'clip': 'clip_vitb16_openai'}
    if proj:
        published['proj'] = proj
    size = {'vits': ('S', 'small'), 'vitb': ('B', 'base'), 'vitl': ('L', 'large')}[width]
    return Variant(name, f'DINOv2 ViT-{size[0]}/14 reg4', files, published,
                   Backbone('dinov2', f'vit_{size[1]}_patch14_reg4_dinov2', dim, depth, heads, 14),
                   threshold, note='' if proj else (
                       f'no ψ is published for {name}: train one with `train fit --variant {name}` (features from '
                       f'`train extract --variant {name}`) and give it as --proj-weights (node: proj_weights)'))


def _dinov3(name: str, size: str, dim: int, depth: int, heads: int, timm_name: str) -> Variant:
    key = {'B': 'vitb', 'L': 'vitl'}[size]
    files = {'dinov3': f'{timm_name}.safetensors', 'clip': 'ViT-B-16.pt', 'proj': f'dinov3_{key}_mlp_infonce.pth'}
    published = {'dinov3': f'dinov3_{key}16_lvd1689m', 'clip': 'clip_vitb16_openai',
                 'proj': f'talk2dino_dinov3_{key}'}
    # the authors publish no DINOv3 background threshold; their default (0.55) applies
    return Variant(name, f'DINOv3 ViT-{size}/16 (LVD-1689M)', files, published,
                   Backbone('dinov3', timm_name.split('.')[0], dim, depth, heads, 16), 0.55)


METHODS: Dict[str, MethodSpec] = {m.name: m for m in [
    MethodSpec(
        name='talk2dino', title='Talk2DINO: DINO patch tokens vs CLIP text projected by ψ',
        module='talk2dino_ros.model.methods.talk2dino', builder='build_talk2dino',
        variants=(
            # ViT-S has no published ψ or threshold; it uses ViT-B's threshold
            _dinov2('vits', 'vits', 384, 12, 6, 0.55, None),
            _dinov2('vitb', 'vitb', 768, 12, 12, 0.55, 'talk2dino_vitb'),
            _dinov2('vitl', 'vitl', 1024, 24, 16, 0.54, 'talk2dino_vitl'),
            _dinov3('dinov3_vitb', 'B', 768, 12, 12, 'vit_base_patch16_dinov3.lvd1689m'),
            _dinov3('dinov3_vitl', 'L', 1024, 24, 16, 'vit_large_patch16_dinov3.lvd1689m'),
        ),
        default_variant='vitb', protocol_pamr=True, background_is_threshold=True, protocol_bg_clean=True,
        background_rule_from_benchmark=False, class_list='talk2dino'),
    MethodSpec(
        name='clip_dinoiser', title='CLIP-DINOiser: OpenCLIP dense features refined by a DINO-trained head',
        module='talk2dino_ros.model.methods.clip_dinoiser', builder='build_clip_dinoiser',
        variants=(Variant('vitb', 'OpenCLIP ViT-B/16 (LAION-2B)',
                          {'openclip': 'open_clip_pytorch_model.bin', 'clip_dinoiser': 'last.pt'},
                          {'openclip': 'openclip_vitb16_laion2b', 'clip_dinoiser': 'clip_dinoiser'}),),
        default_variant='vitb', protocol_pamr=False, background_is_threshold=False, protocol_bg_clean=False,
        background_rule_from_benchmark=True, class_list='clip_dinoiser',
        ignored_options=('bg_clean', 'pamr', 'background_threshold'),
        ignored_why='no attention cleaning, no PAMR; its background is a text class with a saliency rule'),
]}

DEFAULT_METHOD = 'talk2dino'
#: accepted background thresholds, for the node parameter and the command-line flag alike (<= 0: no
#: background class)
BACKGROUND_THRESHOLD_RANGE = (-1.0, 1.0)


# ---------------------------------------------------------------------------------------- lookups
def method_names() -> Tuple[str, ...]:
    return tuple(METHODS)


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise CatalogError(f'unknown method {name!r}; choose one of {", ".join(METHODS)}')
    return METHODS[name]


def get_variant(method: str, variant: Optional[str] = None) -> Variant:
    return get_method(method).variant(variant)


def background_is_threshold(method: str) -> bool:
    """True when the method's background is a constant score (a threshold); False for unknown methods."""
    spec = METHODS.get(method)
    return bool(spec and spec.background_is_threshold)


def describe(method: str, variant: Optional[str] = None) -> str:
    """``method/variant`` for a method with several backbones, else the method name (logs, reports)."""
    spec = METHODS.get(method)
    if spec is None or not spec.has_variants:
        return method
    return f'{method}/{spec.variant(variant).name}' if variant in spec.variant_names else f'{method}/{variant}'


def variants_help(method: str = DEFAULT_METHOD) -> str:
    """One line listing a method's variants with their backbones (``--variant`` help, node description)."""
    return ', '.join(f'{v.name} = {v.title}' for v in get_method(method).variants)


def variant_names() -> Tuple[str, ...]:
    """Every variant name of every method (the choices of ``--variant`` and the node's ``variant``)."""
    out: list = []
    for m in METHODS.values():
        out += [v for v in m.variant_names if v not in out]
    return tuple(out)


def all_roles() -> Tuple[WeightRole, ...]:
    """Every role some method loads, in :data:`ROLES` order."""
    used = {r for m in METHODS.values() for r in m.roles}
    return tuple(ROLES[r] for r in ROLES if r in used)


def role_methods(role: str) -> Tuple[str, ...]:
    """The methods that load ``role``."""
    return tuple(m.name for m in METHODS.values() if role in m.roles)


def backbones() -> Dict[str, Backbone]:
    """variant name -> backbone of every Talk2DINO-style variant."""
    return {v.name: v.backbone for m in METHODS.values() for v in m.variants if v.backbone is not None}


def published_bundle(method: str, variant: Optional[str] = None) -> Dict[str, PublishedFile]:
    """role -> published file for a method/variant; CatalogError when a role has none."""
    v = get_variant(method, variant)
    if not v.fully_published:
        missing = ', '.join(r for r in v.roles if r not in v.published)
        known = ', '.join(f'{m.name}/{x.name}' for m in METHODS.values() for x in m.variants if x.fully_published)
        raise CatalogError(f'no published weights for {method}/{v.name} ({missing}) (known: {known})')
    return {role: PUBLISHED[key] for role, key in v.published.items()}


def unpublished_hint(method: str, variant: Optional[str] = None) -> str:
    """Why a variant has roles without a published file and how to get them ('' when all are published)."""
    v = get_variant(method, variant)
    if v.fully_published:
        return ''
    missing = ', '.join(ROLES[r].flag for r in v.roles if r not in v.published)
    return v.note or f'{method}/{v.name} has no published {missing}: give the file'


def default_weight_paths(method: str, variant: Optional[str] = None,
                         weights_dir: os.PathLike | str | None = None) -> Dict[str, str]:
    """role -> default path of each weight file: its published file name in the weights directory.

    A role with no published file (e.g. the ψ of Talk2DINO ViT-S) maps to ``''``: it must be given.
    """
    root = Path(weights_dir).expanduser() if weights_dir else default_weights_dir()
    v = get_variant(method, variant)
    return {role: str(root / PUBLISHED[v.published[role]].filename) if role in v.published else ''
            for role in v.roles}
