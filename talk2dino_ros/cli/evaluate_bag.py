"""``evaluate --bag``'s flags and run: check the bag and its topics, then score it (see evaluation.bag)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from talk2dino_ros.bags import bag_io
from talk2dino_ros.evaluation.bag import label_connections, evaluate_bag, format_bag_result
from talk2dino_ros.cli.make_demo_bag import CLASSES_KEY  # the metadata key the class list is stored under
from talk2dino_ros.model.types import BACKGROUND


def add_bag_arguments(parser) -> None:
    """The ``evaluate --bag`` flags (added to evaluate's parser)."""
    g = parser.add_argument_group('rosbag scoring (instead of --benchmark / --data-root)')
    g.add_argument('--bag', type=Path, default=None,
                   help='rosbag2 (folder, .db3 or .mcap) with camera images and ground-truth label images')
    g.add_argument('--image-topic', default=None, help='sensor_msgs/Image or CompressedImage topic to segment')
    g.add_argument('--label-topic', default=None,
                   help='ground truth, mono8/mono16: 0 = background, class i of --classes = i + 1, 255 = ignore')
    g.add_argument('--classes', default=None,
                   help='comma-separated names of label ids 1, 2, ... (also the vocabulary), e.g. '
                        '"sky,grass,car,sun"; default: the class list stored in the bag (make_demo_bag '
                        'metadata or a ClassInfo legend)')
    g.add_argument('--prediction-topic', default=None,
                   help='score label images already in the bag (e.g. /talk2dino/labels of a segment_bag output) '
                        'instead of running the model')


def stored_classes(reader) -> Optional[List[str]]:
    """The class names of label ids 1, 2, ... that an open bag stores, or None.

    First the ``talk2dino_ros.classes`` metadata entry (make_demo_bag), else the first
    ``talk2dino_ros/ClassInfo`` legend in the bag (segment_bag output: id 0 background, then 1..N).
    """
    # rosbags keeps metadata.yaml's custom_data on the storage reader (a bare .mcap/.db3 file has none)
    custom = getattr(getattr(getattr(reader, 'storage', None), 'metadata', None), 'custom', None) or {}
    text = custom.get(CLASSES_KEY)
    if text:
        return _valid_class_list(str(text).rstrip(', \n'), f'the {CLASSES_KEY} metadata of {reader.path}') or None
    legends = [c for c in reader.connections if c.msgtype == bag_io.CLASS_INFO_TYPE]
    if not legends:  # (reader.messages([]) would mean every topic)
        return None
    for _conn, _t, raw in reader.messages(legends):
        try:
            msg = bag_io.deserialize(raw, bag_io.CLASS_INFO_TYPE)
        except bag_io.BadMessageError as exc:
            raise bag_io.BagError(f'the ClassInfo legend in {reader.path} is unreadable ({exc}); give --classes') \
                from None
        ids = [int(i) for i in msg.class_ids]
        names = list(msg.class_names)
        if ids == list(range(len(names))) and names and names[0] == BACKGROUND:
            return _valid_class_list(names[1:], f'the ClassInfo legend in {reader.path}') or None
        raise bag_io.BagError(f'the ClassInfo legend in {reader.path} does not number its classes 0..N '
                              'with 0 = background; give --classes')
    return None


def _valid_class_list(source, where: str) -> List[str]:
    """The names of label ids 1, 2, ... exactly as stored; BagError naming the first name the rules reject.

    Dropping a rejected name would shift every later label id and score the wrong classes.
    """
    from talk2dino_ros.ros.vocabulary import parse_vocabulary  # ROS-free module

    parsed = parse_vocabulary(source)
    if parsed.rejected:
        first = parsed.rejected[0]
        raise bag_io.BagError(f'{where} lists class {ascii(first.name)}, which the class-name rules reject '
                              f'({first.reason}); dropping it would shift the label ids: give --classes')
    return list(parsed.accepted)


def run_bag_cli(args, make_segmenter: Optional[Callable[[], Any]] = None) -> Dict[str, Any]:
    """``evaluate --bag``: check the flags and topics, build the model with ``make_segmenter``
    (called only after the bag and its topics checked out), score, print, write ``--out``."""
    import json

    from talk2dino_ros.cli.common import parse_vocab_arg

    prediction_topic = getattr(args, 'prediction_topic', None)
    missing = ['--label-topic'] if not args.label_topic else []
    if not (args.image_topic or prediction_topic):
        missing.append('--image-topic (or --prediction-topic)')
    if missing:
        raise bag_io.BagError(f'--bag needs {", ".join(missing)}')
    classes = parse_vocab_arg(args.classes, '--classes') if args.classes else None
    reader = bag_io.open_bag(args.bag)  # wrong paths and topics fail before any weights load
    try:
        if classes is None:
            classes = stored_classes(reader)
            if not classes:
                raise bag_io.BagError(f'bag {args.bag} stores no class list (no {CLASSES_KEY} metadata, no '
                                      f'{bag_io.CLASS_INFO_TYPE} legend); give --classes "a,b,c" (label ids 1, 2, 3)')
            print(f'classes from the bag: {",".join(classes)}', flush=True)
        label_connections(reader, args.label_topic)
        if prediction_topic:
            label_connections(reader, prediction_topic)
        else:
            bag_io.image_connections(reader, args.image_topic)
    finally:
        reader.close()
    segmenter = None
    if not prediction_topic:
        if make_segmenter is None:
            raise bag_io.BagError('scoring images needs a model; pass --prediction-topic to score labels in the bag')
        segmenter = make_segmenter()
    result = evaluate_bag(segmenter, args.bag, args.image_topic, args.label_topic, classes,
                          prediction_topic=prediction_topic, limit=getattr(args, 'limit', None),
                          progress=not getattr(args, 'quiet', False))
    # what was loaded decides (a test width or the random-weights path); predictions from a bag: the flag
    result['random_weights'] = bool(getattr(segmenter, 'random_weights', False)
                                    or getattr(args, 'allow_random_weights', False))
    print(format_bag_result(result), flush=True)
    out = getattr(args, 'out', None)
    if out is not None:
        from talk2dino_ros.atomic_files import atomic_write_text

        atomic_write_text(Path(out), json.dumps(result, indent=1))
    return result
