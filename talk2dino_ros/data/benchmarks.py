"""Registry of the 8 evaluation benchmarks: class lists, on-disk layouts, protocols, published numbers.

Everything here is data. The class lists are the exact prompt strings and the keys of the per-class
table, for two methods; each name is written once (sub-lists are slices, CLIP-DINOiser's lists are
Talk2DINO's with an explicit rename table):

* Talk2DINO uses the mmseg 0.30 lists (plus its own VOC-20 / COCO-Object classes), see
  docs/method.md §7.1. Note ADE20K's ``'bed '`` with a trailing space.
* CLIP-DINOiser registers its own lists for VOC, Pascal Context and COCO-Object (``'dining table'``,
  ``'potted plant'``, ``'aeroplane'``); COCO-Stuff, Cityscapes and ADE20K are the mmseg lists.

Label ids of a benchmark are indices into its class list, after ``reduce_zero_label`` when set.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from talk2dino_ros import catalog

BACKGROUND = 'background'
METHODS = catalog.method_names()
VARIANTS = catalog.variant_names()

# ---------------------------------------------------------------------------------------------
# Talk2DINO class lists (mmseg 0.30.0 + Talk2DINO's own VOC-20 / COCO-Object), verbatim.
# The "without background" and COCO-Object lists are slices of their parent lists (same names, same
# order in mmseg and in the authors' code), so each name is written once.
# ---------------------------------------------------------------------------------------------

VOC_21_CLASSES = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
    'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
    'train', 'tvmonitor',
)

VOC_20_CLASSES = VOC_21_CLASSES[1:]

CONTEXT_60_CLASSES = (
    'background', 'aeroplane', 'bag', 'bed', 'bedclothes', 'bench', 'bicycle', 'bird', 'boat',
    'book', 'bottle', 'building', 'bus', 'cabinet', 'car', 'cat', 'ceiling', 'chair', 'cloth',
    'computer', 'cow', 'cup', 'curtain', 'dog', 'door', 'fence', 'floor', 'flower', 'food', 'grass',
    'ground', 'horse', 'keyboard', 'light', 'motorbike', 'mountain', 'mouse', 'person', 'plate',
    'platform', 'pottedplant', 'road', 'rock', 'sheep', 'shelves', 'sidewalk', 'sign', 'sky',
    'snow', 'sofa', 'table', 'track', 'train', 'tree', 'truck', 'tvmonitor', 'wall', 'water',
    'window', 'wood',
)

CONTEXT_59_CLASSES = CONTEXT_60_CLASSES[1:]

COCO_STUFF_171_CLASSES = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
    'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
    'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone',
    'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
    'teddy bear', 'hair drier', 'toothbrush', 'banner', 'blanket', 'branch', 'bridge',
    'building-other', 'bush', 'cabinet', 'cage', 'cardboard', 'carpet', 'ceiling-other',
    'ceiling-tile', 'cloth', 'clothes', 'clouds', 'counter', 'cupboard', 'curtain', 'desk-stuff',
    'dirt', 'door-stuff', 'fence', 'floor-marble', 'floor-other', 'floor-stone', 'floor-tile',
    'floor-wood', 'flower', 'fog', 'food-other', 'fruit', 'furniture-other', 'grass', 'gravel',
    'ground-other', 'hill', 'house', 'leaves', 'light', 'mat', 'metal', 'mirror-stuff', 'moss',
    'mountain', 'mud', 'napkin', 'net', 'paper', 'pavement', 'pillow', 'plant-other', 'plastic',
    'platform', 'playingfield', 'railing', 'railroad', 'river', 'road', 'rock', 'roof', 'rug',
    'salad', 'sand', 'sea', 'shelf', 'sky-other', 'skyscraper', 'snow', 'solid-other', 'stairs',
    'stone', 'straw', 'structural-other', 'table', 'tent', 'textile-other', 'towel', 'tree',
    'vegetable', 'wall-brick', 'wall-concrete', 'wall-other', 'wall-panel', 'wall-stone',
    'wall-tile', 'wall-wood', 'water-other', 'waterdrops', 'window-blind', 'window-other', 'wood',
)

#: COCO-Object: background + the 80 thing classes, which are COCO-Stuff's first 80 entries.
COCO_OBJECT_81_CLASSES = (BACKGROUND,) + COCO_STUFF_171_CLASSES[:80]

CITYSCAPES_19_CLASSES = (
    'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign',
    'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
    'bicycle',
)

ADE20K_150_CLASSES = (
    'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed ', 'windowpane', 'grass',
    'cabinet', 'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain',
    'chair', 'car', 'water', 'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug', 'field',
    'armchair', 'seat', 'fence', 'desk', 'rock', 'wardrobe', 'lamp', 'bathtub', 'railing',
    'cushion', 'base', 'box', 'column', 'signboard', 'chest of drawers', 'counter', 'sand', 'sink',
    'skyscraper', 'fireplace', 'refrigerator', 'grandstand', 'path', 'stairs', 'runway', 'case',
    'pool table', 'pillow', 'screen door', 'stairway', 'river', 'bridge', 'bookcase', 'blind',
    'coffee table', 'toilet', 'flower', 'book', 'hill', 'bench', 'countertop', 'stove', 'palm',
    'kitchen island', 'computer', 'swivel chair', 'boat', 'bar', 'arcade machine', 'hovel', 'bus',
    'towel', 'light', 'truck', 'tower', 'chandelier', 'awning', 'streetlight', 'booth',
    'television receiver', 'airplane', 'dirt track', 'apparel', 'pole', 'land', 'bannister',
    'escalator', 'ottoman', 'bottle', 'buffet', 'poster', 'stage', 'van', 'ship', 'fountain',
    'conveyer belt', 'canopy', 'washer', 'plaything', 'swimming pool', 'stool', 'barrel', 'basket',
    'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven', 'ball', 'food', 'step', 'tank',
    'trade name', 'microwave', 'pot', 'animal', 'bicycle', 'lake', 'dishwasher', 'screen',
    'blanket', 'sculpture', 'hood', 'sconce', 'vase', 'traffic light', 'tray', 'ashcan', 'fan',
    'pier', 'crt screen', 'plate', 'monitor', 'bulletin board', 'shower', 'radiator', 'glass',
    'clock', 'flag',
)

# ---------------------------------------------------------------------------------------------
# CLIP-DINOiser's own lists (authors' segmentation/datasets/*.py). They are the Talk2DINO lists
# above with the few prompt strings renamed below (same length, same order), so every difference
# between the two methods is visible here. COCO-Stuff, Cityscapes and ADE20K come from mmseg and
# are the Talk2DINO tuples unchanged.
# ---------------------------------------------------------------------------------------------

def _replace(names: Tuple[str, ...], renames: Dict[str, str]) -> Tuple[str, ...]:
    """``names`` with each key of ``renames`` replaced by its value; every key must occur."""
    absent = set(renames) - set(names)
    if absent:  # a typo here would silently leave a Talk2DINO name in a CLIP-DINOiser list
        raise ValueError(f'_replace: {sorted(absent)} not in the list')
    return tuple(renames.get(n, n) for n in names)


#: CLIP-DINOiser writes VOC's compound names as two words.
CD_VOC_21_CLASSES = _replace(VOC_21_CLASSES, {'diningtable': 'dining table',
                                              'pottedplant': 'potted plant'})
CD_VOC_20_CLASSES = CD_VOC_21_CLASSES[1:]
#: Pascal Context: only 'pottedplant' is split (it has no 'diningtable'; 'table' stays).
CD_CONTEXT_60_CLASSES = _replace(CONTEXT_60_CLASSES, {'pottedplant': 'potted plant'})
CD_CONTEXT_59_CLASSES = CD_CONTEXT_60_CLASSES[1:]
#: COCO-Object: CLIP-DINOiser uses VOC's 'aeroplane' for COCO's 'airplane'.
CD_COCO_OBJECT_81_CLASSES = _replace(COCO_OBJECT_81_CLASSES, {'airplane': 'aeroplane'})

# ---------------------------------------------------------------------------------------------
# Published numbers (mIoU, %).
# ---------------------------------------------------------------------------------------------

#: Talk2DINO, authors' project-page results figure (docs/method.md §7.5): (variant, pamr) ->
#: benchmark -> mIoU. "with mask refinement" rows are the pamr=True ones (README commands).
TALK2DINO_PAPER_MIOU: Dict[Tuple[str, bool], Dict[str, float]] = {
    ('vitb', False): {'voc20': 87.1, 'context59': 39.8, 'coco_stuff': 28.1, 'cityscapes': 36.6,
                      'ade20k': 21.1, 'voc21': 61.5, 'context60': 35.1, 'coco_object': 41.0},
    ('vitl', False): {'voc20': 87.1, 'context59': 39.1, 'coco_stuff': 27.0, 'cityscapes': 35.8,
                      'ade20k': 21.1, 'voc21': 60.1, 'context60': 34.2, 'coco_object': 37.6},
    ('vitb', True): {'voc20': 88.5, 'context59': 42.4, 'coco_stuff': 30.2, 'cityscapes': 38.1,
                     'ade20k': 22.5, 'voc21': 65.8, 'context60': 37.7, 'coco_object': 45.1},
    ('vitl', True): {'voc20': 89.8, 'context59': 42.7, 'coco_stuff': 29.6, 'cityscapes': 38.4,
                     'ade20k': 22.9, 'voc21': 66.1, 'context60': 37.3, 'coco_object': 42.3},
}

#: CLIP-DINOiser: the paper's table is not transcribed here, so no number is claimed;
#: ``paper_miou`` returns None for this method.
CLIP_DINOISER_PAPER_MIOU: Dict[str, float] = {}


def paper_miou(benchmark: str, method: str = 'talk2dino', variant: str = 'vitb',
               pamr: bool = True) -> Optional[float]:
    """The published mIoU for this setting, or None when none is known (e.g. ViT-S, DINOv3)."""
    spec = catalog.get_method(method)
    if not spec.has_variants:  # single-backbone methods: one table, no refinement switch
        return {'clip_dinoiser': CLIP_DINOISER_PAPER_MIOU}.get(spec.name, {}).get(benchmark)
    return TALK2DINO_PAPER_MIOU.get((variant, bool(pamr)), {}).get(benchmark)


# ---------------------------------------------------------------------------------------------
# Preparation instructions (docs/method.md §7.2-7.3); printed by `evaluate` when data is missing.
# ---------------------------------------------------------------------------------------------

_VOC_PREP = """\
Pascal VOC 2012: download VOCtrainval_11-May-2012.tar and extract it under <data-root> so that
  <data-root>/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation/val.txt}
exist. No conversion: SegmentationClass PNGs are palette images (index 0 = background, 255 = void)."""

_CONTEXT_PREP = """\
Pascal Context: download VOCtrainval_03-May-2010.tar (extract to <data-root>/VOCdevkit/VOC2010) and
the PASCAL-in-Detail annotation file trainval_merged.json (put it at VOCdevkit/VOC2010/), then run
  convert_dataset context <data-root>/VOCdevkit/VOC2010
which writes SegmentationClassContext/<id>.png (ids 0..59) and ImageSets/SegmentationContext/
{train,val}.txt (no `detail` package needed)."""

_COCO_STUFF_PREP = """\
COCO-Stuff 164k: unzip val2017.zip (and train2017.zip if you convert both splits) into
<data-root>/coco_stuff164k/images/ and stuffthingmaps_trainval2017.zip into
<data-root>/coco_stuff164k/annotations/, then run
  convert_dataset coco_stuff <data-root>/coco_stuff164k
which writes annotations/<split>/<id>_labelTrainIds.png (ids 0..170, 255 = unlabeled)."""

_COCO_OBJECT_PREP = """\
COCO-Object: prepare COCO-Stuff 164k as for coco_stuff (same images and raw stuffthingmaps), then run
  convert_dataset coco_object <data-root>/coco_stuff164k
which writes annotations/<split>/<id>_instanceTrainIds.png (0 = background incl. stuff and unlabeled,
1..80 = things)."""

_CITYSCAPES_PREP = """\
Cityscapes: download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip (registration needed)
into <data-root>/cityscapes, then create the trainId labels with cityscapesScripts:
  pip install cityscapesscripts
  CITYSCAPES_DATASET=<data-root>/cityscapes csCreateTrainIdLabelImgs
which writes gtFine/<split>/<city>/*_gtFine_labelTrainIds.png (ids 0..18, 255 = ignored)."""

_ADE_PREP = """\
ADE20K: download ADEChallengeData2016.zip and unzip it into <data-root>/ade so that
  <data-root>/ade/ADEChallengeData2016/{images,annotations}/validation
exist. No conversion (raw 0 = other, ignored through reduce_zero_label)."""


# ---------------------------------------------------------------------------------------------
# The registry.
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Benchmark:
    """One evaluation benchmark: classes, layout under the data root and dataset-side protocol.

    ``root`` is relative to the data root (the mmseg ``data/`` folder); ``img_dir``/``ann_dir`` and
    ``split`` are relative to ``root``. With a ``split`` file the samples are its ids; without one,
    ``img_dir`` is scanned recursively for ``img_suffix`` and each image's label is the same relative
    path under ``ann_dir`` with ``seg_suffix``.
    """

    name: str
    title: str
    mmseg_key: str                          # key under `evaluate:` in Talk2DINO's yml files
    classes: Tuple[str, ...]                # Talk2DINO's list (= mmseg 0.30 CLASSES)
    clip_dinoiser_classes: Tuple[str, ...]  # CLIP-DINOiser's list, same order and length
    reduce_zero_label: bool
    root: str
    img_dir: str
    ann_dir: str
    img_suffix: str
    seg_suffix: str
    split: Optional[str] = None
    ignore_index: int = 255
    talk2dino_bg_clean: bool = False        # `with_bg_clean` in the benchmark's model yml
    clip_dinoiser_background_rule: bool = False  # `apply_found` (only voc and coco_object)
    expected_val_images: Optional[int] = None    # standard figure, informational only
    prepare: str = ''

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def has_background(self) -> bool:
        """True when class 0 is 'background' (a scored class)."""
        return self.classes[0] == BACKGROUND

    def class_names(self, method: str = 'talk2dino') -> Tuple[str, ...]:
        """The evaluated class list (table keys, label ids) for a method (its catalog ``class_list``)."""
        lists = {'talk2dino': self.classes, 'clip_dinoiser': self.clip_dinoiser_classes}
        return lists[catalog.get_method(method).class_list]

    def max_raw_label(self) -> int:
        """Largest valid raw label value other than ``ignore_index`` (before reduce_zero_label)."""
        return self.num_classes if self.reduce_zero_label else self.num_classes - 1


_VOC = dict(root='VOCdevkit/VOC2012', img_dir='JPEGImages', ann_dir='SegmentationClass',
            split='ImageSets/Segmentation/val.txt', img_suffix='.jpg', seg_suffix='.png',
            expected_val_images=1449, prepare=_VOC_PREP)
_CONTEXT = dict(root='VOCdevkit/VOC2010', img_dir='JPEGImages', ann_dir='SegmentationClassContext',
                split='ImageSets/SegmentationContext/val.txt', img_suffix='.jpg', seg_suffix='.png',
                expected_val_images=5105, prepare=_CONTEXT_PREP)
_COCO = dict(root='coco_stuff164k', img_dir='images/val2017', ann_dir='annotations/val2017',
             img_suffix='.jpg', expected_val_images=5000)

BENCHMARKS: Dict[str, Benchmark] = {b.name: b for b in (
    Benchmark('voc21', 'Pascal VOC 2012 val, 20 classes + background', 'voc',
              VOC_21_CLASSES, CD_VOC_21_CLASSES, reduce_zero_label=False,
              talk2dino_bg_clean=True, clip_dinoiser_background_rule=True, **_VOC),
    Benchmark('voc20', 'Pascal VOC 2012 val, 20 classes (background ignored)', 'voc20',
              VOC_20_CLASSES, CD_VOC_20_CLASSES, reduce_zero_label=True, **_VOC),
    Benchmark('context60', 'Pascal Context val, 59 classes + background', 'context',
              CONTEXT_60_CLASSES, CD_CONTEXT_60_CLASSES, reduce_zero_label=False, **_CONTEXT),
    Benchmark('context59', 'Pascal Context val, 59 classes (background ignored)', 'context59',
              CONTEXT_59_CLASSES, CD_CONTEXT_59_CLASSES, reduce_zero_label=True, **_CONTEXT),
    Benchmark('coco_object', 'COCO-Object val2017, 80 things + background', 'coco_object',
              COCO_OBJECT_81_CLASSES, CD_COCO_OBJECT_81_CLASSES, reduce_zero_label=False,
              seg_suffix='_instanceTrainIds.png', talk2dino_bg_clean=True,
              clip_dinoiser_background_rule=True, prepare=_COCO_OBJECT_PREP, **_COCO),
    Benchmark('coco_stuff', 'COCO-Stuff 164k val2017, 171 classes', 'coco_stuff',
              COCO_STUFF_171_CLASSES, COCO_STUFF_171_CLASSES, reduce_zero_label=False,
              seg_suffix='_labelTrainIds.png', prepare=_COCO_STUFF_PREP, **_COCO),
    Benchmark('cityscapes', 'Cityscapes val, 19 classes', 'cityscapes',
              CITYSCAPES_19_CLASSES, CITYSCAPES_19_CLASSES, reduce_zero_label=False,
              root='cityscapes', img_dir='leftImg8bit/val', ann_dir='gtFine/val',
              img_suffix='_leftImg8bit.png', seg_suffix='_gtFine_labelTrainIds.png',
              expected_val_images=500, prepare=_CITYSCAPES_PREP),
    Benchmark('ade20k', 'ADE20K val, 150 classes', 'ade20k',
              ADE20K_150_CLASSES, ADE20K_150_CLASSES, reduce_zero_label=True,
              root='ade', img_dir='ADEChallengeData2016/images/validation',
              ann_dir='ADEChallengeData2016/annotations/validation', img_suffix='.jpg',
              seg_suffix='.png', expected_val_images=2000, prepare=_ADE_PREP),
)}

#: the order of the authors' results table
BENCHMARK_ORDER = ('voc20', 'context59', 'coco_stuff', 'cityscapes', 'ade20k',
                   'voc21', 'context60', 'coco_object')


def get_benchmark(name: str) -> Benchmark:
    """Look a benchmark up by our name or by its Talk2DINO yml key (e.g. 'voc', 'context')."""
    if name in BENCHMARKS:
        return BENCHMARKS[name]
    for bench in BENCHMARKS.values():
        if bench.mmseg_key == name:
            return bench
    raise KeyError(f'unknown benchmark {name!r} (expected one of {", ".join(BENCHMARK_ORDER)})')


# ---------------------------------------------------------------------------------------------
# Per-method protocol.
# ---------------------------------------------------------------------------------------------

#: Talk2DINO's background threshold per backbone (eval ymls, kept in the catalog); ViT-S and DINOv3
#: have no published value of their own and use 0.55.
TALK2DINO_BG_THRESHOLD = {v.name: v.background_threshold for v in catalog.get_method('talk2dino').variants}


@dataclass(frozen=True)
class Protocol:
    """What a method is given for a benchmark: the vocabulary and the post-processing switches.

    ``vocabulary`` never contains 'background'; with ``background`` the segmenter adds it as class 0
    (Talk2DINO: a constant channel = ``background_threshold``; CLIP-DINOiser: the text class
    'background', with its saliency rule only when ``background_rule``). Label ids of the result
    then equal the benchmark's class ids.
    """

    benchmark: str
    method: str
    variant: str
    class_names: Tuple[str, ...]
    vocabulary: Tuple[str, ...]
    background: bool
    background_threshold: float
    bg_clean: bool
    pamr: bool
    background_rule: bool
    notes: Tuple[str, ...] = field(default=())


def protocol(benchmark: Benchmark | str, method: str = 'talk2dino', variant: str = 'vitb',
             pamr: Optional[bool] = None) -> Protocol:
    """The authors' evaluation settings of ``method`` on ``benchmark``.

    ``pamr=None`` takes the method's default: on for Talk2DINO (the README's ``_pamr`` eval files,
    the "with mask refinement" numbers), off for CLIP-DINOiser (it has no refinement step).
    """
    bench = get_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
    if method not in METHODS:
        raise KeyError(f'unknown method {method!r} (expected one of {", ".join(METHODS)})')
    if variant not in VARIANTS:
        raise KeyError(f'unknown variant {variant!r} (expected one of {", ".join(VARIANTS)})')
    spec = catalog.get_method(method)
    names = bench.class_names(method)
    background = names[0] == BACKGROUND
    vocabulary = names[1:] if background else names
    notes = []
    use_pamr = spec.protocol_pamr if pamr is None else bool(pamr)
    if pamr and not spec.protocol_pamr:
        notes.append(f'PAMR is not part of the {spec.name} protocol')
    bg_clean = bench.talk2dino_bg_clean if spec.protocol_bg_clean else False
    rule = bench.clip_dinoiser_background_rule if spec.background_rule_from_benchmark else background
    # the constant background score of the variant's own eval files; a single-backbone method scores
    # its background as text and keeps the value of the Talk2DINO variant of the same name
    threshold = TALK2DINO_BG_THRESHOLD[variant]
    if spec.has_variants and background:
        backbone = spec.variant(variant).backbone
        if variant == 'vits':
            notes.append('no published background threshold for ViT-S; using the ViT-B value 0.55')
        elif backbone is not None and backbone.family == 'dinov3':
            notes.append('no published background threshold for DINOv3; using the authors\' default 0.55')
    return Protocol(benchmark=bench.name, method=method, variant=variant, class_names=names,
                    vocabulary=vocabulary, background=background,
                    background_threshold=threshold, bg_clean=bg_clean,
                    pamr=use_pamr, background_rule=rule, notes=tuple(notes))
