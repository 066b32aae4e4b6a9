"""The package's import graph, lazy (function-level) imports included: no cycles, and the layers stay apart.

The layers: ``model`` is pure PyTorch/numpy (never rclpy, never a front end); ``catalog`` imports neither torch
nor ROS, and neither does ``contract`` (nor numpy); ``evaluation``, ``outputs``, ``bags`` and ``data`` never
import the command-line front ends or rclpy;
``spatial`` (the 3D outputs) is numpy and OpenCV only.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = 'talk2dino_ros'


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def _modules() -> Dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / PACKAGE).rglob('*.py'))}


def _imports(path: Path, name: str, known: Set[str]) -> Set[str]:
    """Every module this file imports anywhere in its body (top level or inside functions)."""
    tree = ast.parse(path.read_text(encoding='utf-8'), filename=str(path))
    is_package = path.name == '__init__.py'
    found: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = name.split('.') if is_package else name.split('.')[:-1]
                base = base[:len(base) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ''
            found.add(module)
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                if f'{module}.{alias.name}' in known:
                    found.add(f'{module}.{alias.name}')
    return found


def _graph() -> Dict[str, Set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def _internal_graph() -> Dict[str, Set[str]]:
    graph = _graph()
    return {name: {m for m in deps if m in graph and m != name} for name, deps in graph.items()}


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    out: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walker_sees_lazy_imports():
    graph = _graph()
    # evaluate imports the bag flags lazily, inside build_parser
    assert 'talk2dino_ros.cli.evaluate_bag' in graph['talk2dino_ros.cli.evaluate']


def test_cycle_finder_finds_a_cycle():
    assert _cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]


def test_no_import_cycles():
    assert _cycles(_internal_graph()) == []


def _layer(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


# layer -> prefixes of modules it must never import (lazily or not)
FORBIDDEN = {
    'model': ('rclpy', 'talk2dino_ros.ros', 'talk2dino_ros.cli', 'talk2dino_ros.evaluation',
              'talk2dino_ros.bags', 'talk2dino_ros.training'),
    'catalog': ('torch', 'timm', 'open_clip', 'rclpy', 'talk2dino_ros.model', 'talk2dino_ros.ros'),
    # what the node promises, read by the launch file and every front end: no ROS, no model stack
    'contract': ('torch', 'timm', 'open_clip', 'numpy', 'rclpy', 'rcl_interfaces', 'talk2dino_ros.model',
                 'talk2dino_ros.ros', 'talk2dino_ros.cli', 'talk2dino_ros.outputs'),
    'evaluation': ('rclpy', 'talk2dino_ros.cli'),
    'outputs': ('rclpy', 'talk2dino_ros.ros', 'talk2dino_ros.cli'),
    'bags': ('rclpy', 'talk2dino_ros.cli'),
    'data': ('rclpy', 'talk2dino_ros.cli', 'talk2dino_ros.ros'),
    'training': ('rclpy', 'talk2dino_ros.ros'),
    # the node and its collaborators: the command-line tools sit above it (they may start a node, not vice versa)
    'ros': ('talk2dino_ros.cli',),
    'spatial': ('rclpy', 'torch', 'talk2dino_ros.ros', 'talk2dino_ros.cli', 'talk2dino_ros.model',
                'talk2dino_ros.bags'),
}


@pytest.mark.parametrize('layer', sorted(FORBIDDEN))
def test_layers_stay_apart(layer):
    bad = []
    for module, deps in _graph().items():
        if _layer(module) != layer:
            continue
        for dep in deps:
            if any(dep == p or dep.startswith(p + '.') for p in FORBIDDEN[layer]):
                bad.append(f'{module} -> {dep}')
    assert bad == []


#: longest class body allowed: a class past it holds several jobs and gets split into collaborators
MAX_CLASS_LINES = 350


def test_classes_stay_small_and_there_are_no_mixins():
    """Collaborators get what they need passed in; a mixin that reads its host's attributes is not allowed."""
    too_long, mixins = [], []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.ClassDef):
                if node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                    too_long.append(f'{name}.{node.name}')
                if node.name.endswith('Mixin'):
                    mixins.append(f'{name}.{node.name}')
    assert too_long == [] and mixins == []
