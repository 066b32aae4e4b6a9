"""A method's backbone run by an exported runtime, as a drop-in for its ``fast_path_module``.

The ONNX file is built on first use and cached next to the network's weight file, in ``exported/``, under
a name made of the method, variant, the weights' SHA-256, the input size and the exporter's version; each
runtime keeps its own compiled artefacts in ``exported/<backend>-<version>/``. A build is reported with its
time through ``on_event``. Everything before and after the backbone (text, projection, scoring, background,
PAMR) stays in torch: this module only replaces the one network call.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import torch

from talk2dino_ros import catalog
from talk2dino_ros.model.checkpoints import sha256_file
from talk2dino_ros.model.graph_export import (FORMAT_VERSION, OPSET, ExportError, GraphFacts, NetworkGraph,
                                              Size, check_metadata, export_onnx, network_graph, network_role,
                                              parse_size)
from talk2dino_ros.model.runtimes import Runtime, open_runtime, runtime_version

EXPORT_DIR = 'exported'
#: grid tables kept per runtime (one per input grid seen)
MAX_TABLES = 16


def stderr_event(message: str) -> None:
    """Default reporter of builds: one line on stderr (the node's console, a CLI's terminal)."""
    print(f'[talk2dino_ros] {message}', file=sys.stderr, flush=True)


def cache_folder(weights_path: os.PathLike | str) -> Path:
    """``exported/`` next to the weight file, or in the user's weights directory when that is read-only."""
    folder = Path(weights_path).expanduser().resolve().parent / EXPORT_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    fallback = catalog.default_weights_dir() / EXPORT_DIR
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def onnx_cache_name(facts: GraphFacts) -> str:
    """The cached file's name: every fact that changes the file is in it."""
    torch_version = torch.__version__.split('+')[0]
    return (f'{facts.method}-{facts.variant}-{facts.weights_sha256[:16]}-{facts.size_text}'
            f'-torch{torch_version}-opset{OPSET}-f{FORMAT_VERSION}.onnx')


def network_facts(method: torch.nn.Module, variant: str, weights: Dict[str, str], size: Size) -> Tuple[GraphFacts, str]:
    """(facts of the network to export, its weight file) for a built method and its weight paths."""
    role = network_role(method)
    path = weights.get(role)
    if not path:
        raise ExportError(f'the exported backends need the {role} weight file path (to key the exported model)')
    return GraphFacts(method.name, variant, sha256_file(path), size), str(path)


def cached_onnx(method: torch.nn.Module, facts: GraphFacts, folder: Path,
                on_event: Callable[[str], None] = stderr_event) -> Path:
    """The cached ONNX file for ``facts`` in ``folder``, exported now when missing or not matching."""
    path = folder / onnx_cache_name(facts)
    if path.is_file():
        try:
            check_metadata(path, facts)
            return path
        except ExportError as exc:
            on_event(f'{exc}; exporting it again')
    on_event(f'exporting {facts.method}/{facts.variant} (input {facts.size_text}) to ONNX, once for these weights')
    seconds = export_onnx(method, facts, path)
    on_event(f'exported {path.name} in {seconds:.1f} s')
    return path


class ExportedNetwork(torch.nn.Module):
    """Calls ``runtime`` instead of ``inner``; the grid tables come from ``inner`` (once per grid)."""

    def __init__(self, inner: torch.nn.Module, graph: NetworkGraph, runtime: Runtime, size: Size = None):
        super().__init__()
        self.inner = inner
        self.runtime = runtime
        self._grid_table = graph.grid_table
        self._patch = graph.patch_size
        self.size = size
        self._tables: Dict[Tuple[int, int, str], torch.Tensor] = {}

    def __getattr__(self, name: str):
        # the wrapped network's attributes (arch, embed_dim, patch_size, ...) stay reachable
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__('inner'), name)

    def _table(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, str(device))
        table = self._tables.get(key)
        if table is None:
            with torch.inference_mode(), torch.autocast(device_type=device.type, enabled=False):
                table = self._grid_table(h, w).float()
            if len(self._tables) >= MAX_TABLES:
                self._tables.pop(next(iter(self._tables)))
            self._tables[key] = table
        return table

    def forward(self, x: torch.Tensor):
        H, W = x.shape[-2:]
        if self.size is not None and (H, W) != tuple(self.size):
            raise ExportError(f'the exported model was made for input {self.size[0]}x{self.size[1]}, but this '
                              f'frame needs {H}x{W}: export it as dynamic or for this size')
        with torch.autocast(device_type=x.device.type, enabled=False):
            return tuple(self.runtime.run(x.float(), self._table(H // self._patch, W // self._patch, x.device)))


def attach_backend(method: torch.nn.Module, *, backend: str, precision: str, variant: str,
                   weights: Dict[str, str], device: torch.device, exported_model: str = '',
                   on_event: Optional[Callable[[str], None]] = None) -> ExportedNetwork:
    """Replace ``method``'s network by ``backend`` running its exported file; returns the new module.

    ``exported_model``: a file made by ``export_model`` (checked against the loaded weights, refused in
    one line when it does not match); empty = the automatic cache next to the weights.
    """
    report = on_event or stderr_event
    variant = catalog.get_variant(method.name, variant).name
    graph = network_graph(method)
    facts, weights_path = network_facts(method, variant, weights, None)
    if exported_model:  # the user's file: checked against the weights, its input size kept
        size = parse_size(check_metadata(exported_model, facts).get('input_size', 'dynamic'))
        onnx_path = Path(exported_model)
    else:
        size = None
        onnx_path = cached_onnx(method, facts, cache_folder(weights_path), report)
    runtime_dir = cache_folder(weights_path) / f'{backend}-{runtime_version(backend)}'
    runtime = open_runtime(backend, onnx_path, precision, runtime_dir, device, on_event=report)
    name = method.fast_path_module
    inner = getattr(method, name)
    module = ExportedNetwork(inner, graph, runtime, size)
    setattr(method, name, module)
    # the runtime holds the network now: keep only what the grid tables read (ViT-B: ~330 MB less)
    graph.release_blocks()
    return module
