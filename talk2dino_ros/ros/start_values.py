"""Start values of the node's parameters: every one checked by one rule before it is declared.

A params file or ``--ros-args -p`` can give a parameter a value of the wrong type (``resolution:=abc``),
outside its range (``resolution:=5000``), not among its choices (``mode:=fast``) or one that does not fit
another parameter (two ``image_topics`` and one ``camera_names``). The rule is the same for every kind:
**one WARN line that says what was wrong and which default is used instead**, and the parameter is declared
with that default, so ``ros2 param get`` shows the value the node really runs with (read-only ones too).
The node never dies of a bad start value.

String arrays are declared with an explicit value (``[]`` when unset) because rclpy's GetParameters service
answers an all-names request with nothing when one parameter has no value (``ros2 param dump`` printed
``{}``). An empty array means "unset" everywhere.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Optional, Tuple

from rclpy.parameter import Parameter

from talk2dino_ros.ros.cameras import Resolver, merge_repeated_topics
from talk2dino_ros.ros.parameters import PARAMETERS, WEIGHT_PARAM_NAMES, ParamSpec, descriptor, validate

#: what the default of a parameter means, where its value alone does not say it
_DEFAULT_MEANS = {
    'vocabulary': 'no vocabulary until one is published',
    'colors': 'the default palette',
    'image_topics': 'the single image topic',
    'camera_names': 'names derived from image_topics',
}


def default_value(spec: ParamSpec) -> Any:
    """The value ``spec`` is declared with when nothing sets it ([] for an unset string array)."""
    return [] if spec.default is None else spec.default


def _type_reason(spec: ParamSpec, value: Any) -> Tuple[Any, Optional[str]]:
    """(the value in the parameter's type, why it has the wrong type or None)."""
    default = spec.default
    if default is None:
        if value is None:  # `-p name:=[]` arrives without a type
            return [], None
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value), None
        return value, f'{spec.name} must be a list of strings, got {value!r}'
    if isinstance(default, bool):
        return value, None if isinstance(value, bool) else f'{spec.name} must be true or false, got {value!r}'
    if isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return value, None if ok else f'{spec.name} must be an integer, got {value!r}'
    if isinstance(default, float):
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value), None  # `-p max_rate:=5` means 5.0
        return value, None if isinstance(value, float) else f'{spec.name} must be a number, got {value!r}'
    return value, None if isinstance(value, str) else f'{spec.name} must be a string, got {value!r}'


def _range_reason(spec: ParamSpec, value: Any) -> Optional[str]:
    bounds = spec.int_range if spec.int_range is not None else spec.float_range
    if bounds is None or bounds[0] <= value <= bounds[1]:
        return None
    return f'{spec.name} {value!r} is outside {bounds[0]}..{bounds[1]}'


def check_start_values(overrides: Mapping[str, Any], resolve: Optional[Resolver] = None,
                       ) -> Tuple[Dict[str, Any], List[str]]:
    """(the value every parameter starts with, one line per bad start value that was replaced).

    ``overrides`` maps names to the values a params file or the command line gave (None: given without a
    value, e.g. ``:=[]``). Type, range, choices and cross-checks are applied in table order, each against
    the values already decided, so a bad ``image_topics`` also voids the ``camera_names`` meant for it.
    Weight paths are not checked here: the model loader reports missing files with the fetch hint.
    ``resolve`` (the node's ``resolve_topic_name``) finds one camera written twice (relative and absolute);
    such a camera is kept once, with one WARN line (not a bad value: the list says what to read).
    """
    warnings: List[str] = []
    overrides = _merge_repeated_cameras(overrides, resolve, warnings)
    decided = {spec.name: default_value(spec) for spec in PARAMETERS}
    decided.update({name: value for name, value in overrides.items() if name in decided and value is not None})
    for spec in PARAMETERS:
        if spec.name not in overrides:
            continue
        value, reason = _type_reason(spec, overrides[spec.name])
        if reason is None and spec.default is not None:
            reason = _range_reason(spec, value)
        if reason is None and spec.name not in WEIGHT_PARAM_NAMES and value != []:
            reason = validate(spec.name, value, decided, resolve)
        if reason is None:
            decided[spec.name] = value
            continue
        default = default_value(spec)
        means = _DEFAULT_MEANS.get(spec.name)
        warnings.append(f'bad start value: {reason}; using the default {default!r}'
                        + (f' ({means})' if means else ''))
        decided[spec.name] = default
    return decided, warnings


def _merge_repeated_cameras(overrides: Mapping[str, Any], resolve: Optional[Resolver],
                            warnings: List[str]) -> Dict[str, Any]:
    """``overrides`` with a camera listed twice in ``image_topics`` kept once, and the ``camera_names`` /
    ``depth_topics`` entries of the dropped copies dropped with it (when they are one per topic)."""
    out = dict(overrides)
    topics = out.get('image_topics')
    if not isinstance(topics, (list, tuple)) or not all(isinstance(t, str) for t in topics):
        return out  # the type rule reports it
    kept, repeats = merge_repeated_topics(topics, resolve)
    if not repeats:
        return out
    warnings.extend(repeats)
    for name in ('image_topics', 'camera_names', 'depth_topics'):
        values = out.get(name)
        if isinstance(values, (list, tuple)) and len(values) == len(topics):
            out[name] = [values[i] for i in kept]
    return out


def _override_values(node) -> Dict[str, Any]:
    # rclpy keeps the params-file / --ros-args values of a node here and has no public getter for them
    # before a parameter is declared; reading them first lets every check run before anything is declared
    overrides = getattr(node, '_parameter_overrides', {}) or {}
    return {name: param.value for name, param in overrides.items()}


def declare_parameters(node) -> Dict[str, Any]:
    """Declare every parameter of the table on ``node`` with a checked start value; returns the values.

    Bad start values are logged (one WARN line each) and replaced by the default.
    """
    values, warnings = check_start_values(_override_values(node), node.resolve_topic_name)
    for line in warnings:
        node.get_logger().warning(line)
    for spec in PARAMETERS:
        described = descriptor(spec)
        if spec.default is not None:
            node.declare_parameter(spec.name, values[spec.name], described, ignore_override=True)
            continue
        # rclpy infers no type from an empty list and a read-only parameter cannot be set once declared:
        # declare it typed and writable, set its value, then apply the real (maybe read-only) descriptor
        writable = copy.deepcopy(described)
        writable.read_only = False
        node.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY, writable, ignore_override=True)
        result, = node.set_parameters([Parameter(spec.name, Parameter.Type.STRING_ARRAY, list(values[spec.name]))])
        if not result.successful:  # nothing validates yet at this point: a failure is a bug, say so
            raise RuntimeError(f'declaring {spec.name} failed: {result.reason}')
        node.set_descriptor(spec.name, described)
    return values
