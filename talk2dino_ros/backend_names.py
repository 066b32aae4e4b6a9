"""Names of the inference backends and precisions, with the pip extra each runtime comes from.

Torch-free on purpose: the node's parameter table and the command-line flags read them without loading
the model stack; :mod:`talk2dino_ros.model.runtimes` checks a choice against the machine.
"""
from __future__ import annotations

from typing import Dict, Tuple

#: 'torch' runs the model as it is; the others run the backbone's exported ONNX file
BACKENDS: Tuple[str, ...] = ('torch', 'openvino', 'onnxruntime', 'tensorrt')
PRECISIONS: Tuple[str, ...] = ('fp32', 'bf16', 'fp16')
#: backend -> (python module it imports, extra of this package that installs it)
RUNTIME_PACKAGES: Dict[str, Tuple[str, str]] = {
    'openvino': ('openvino', 'openvino'), 'onnxruntime': ('onnxruntime', 'onnxruntime'),
    'tensorrt': ('tensorrt', 'tensorrt')}
