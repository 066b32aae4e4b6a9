"""Inference runtimes for an exported network: OpenVINO, ONNX Runtime, TensorRT (each an optional extra).

:func:`check_backend` says at start, in one line, why a backend/precision/device choice cannot run (a
missing package names its extra, a GPU backend without a GPU or an unsupported precision names the
alternative). :func:`open_runtime` gives a :class:`Runtime` that runs an ONNX file on torch tensors:
``run(image, table) -> [outputs]``, each output a float32 tensor on the image's device.
"""
from __future__ import annotations

import importlib
import re
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from talk2dino_ros.backend_names import BACKENDS, PRECISIONS, RUNTIME_PACKAGES
from talk2dino_ros.errors import Talk2DinoError

#: shapes one runtime keeps compiled at once (cameras x window batches); the oldest is dropped beyond
MAX_SHAPES = 8


class BackendUnavailable(Talk2DinoError):
    """A backend, precision or device combination that cannot run here (said once, at start)."""


def _module(backend: str, name: str = ''):
    """Import the runtime of ``backend`` (or ``name``, another package its extra brings), or say how to get it."""
    module, extra = RUNTIME_PACKAGES[backend]
    name = name or module
    try:
        return importlib.import_module(name)
    except ImportError:
        raise BackendUnavailable(f"backend {backend} needs the {name} package: pip install "
                                 f"'talk2dino_ros[{extra}]' (or T2D_EXTRAS={extra} bash scripts/setup.sh), "
                                 'or use backend torch') from None


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX-512 BF16 or AMX), as OpenVINO needs for bf16."""
    try:
        flags = Path('/proc/cpuinfo').read_text()
    except OSError:
        return False
    return bool(re.search(r'\b(avx512_bf16|amx_bf16)\b', flags))


def _openvino_device(ov, precision: str) -> str:
    if precision == 'fp16':
        if 'GPU' not in ov.Core().available_devices:
            raise BackendUnavailable('precision fp16 with backend openvino needs an Intel GPU (OpenVINO device GPU); '
                                     'on the CPU use fp32, or bf16 where the CPU has it')
        return 'GPU'
    if precision == 'bf16' and 'BF16' not in ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'):
        raise BackendUnavailable('precision bf16 needs a CPU with bf16 instructions (AVX-512 BF16 or AMX), '
                                 'which this one lacks: use fp32')
    return 'CPU'


def check_backend(backend: str, precision: str, device: torch.device) -> None:
    """Raise :class:`BackendUnavailable` (one line) unless ``backend`` can run at ``precision`` on ``device``."""
    if backend not in BACKENDS:
        raise BackendUnavailable(f'backend must be one of {", ".join(BACKENDS)}, got {backend!r}')
    if precision not in PRECISIONS:
        raise BackendUnavailable(f'precision must be one of {", ".join(PRECISIONS)}, got {precision!r}')
    cuda = device.type == 'cuda'
    if backend == 'torch':
        if precision == 'fp16' and not cuda:
            raise BackendUnavailable('precision fp16 needs a CUDA device with backend torch; on the CPU use bf16 '
                                     '(where the CPU has it) or fp32')
        if precision == 'bf16' and not cuda and not cpu_has_bf16():
            raise BackendUnavailable('precision bf16 needs a CPU with bf16 instructions (AVX-512 BF16 or AMX), '
                                     'which this one lacks: use fp32')
        return
    if backend == 'tensorrt':
        if not cuda:
            raise BackendUnavailable('backend tensorrt needs an NVIDIA GPU (device cuda); on a CPU use backend '
                                     'openvino or onnxruntime')
        if precision == 'bf16':
            raise BackendUnavailable('backend tensorrt runs fp16 or fp32; use precision fp16')
        _module(backend, 'onnx')  # the exporter writes and checks the file with it
        _module(backend)
        return
    if cuda and backend == 'openvino':
        raise BackendUnavailable('backend openvino runs on the CPU and on Intel GPUs, not on a CUDA device: use '
                                 'device cpu, or backend tensorrt on an NVIDIA GPU')
    _module(backend, 'onnx')
    mod = _module(backend)
    if backend == 'openvino':
        _openvino_device(mod, precision)
    elif precision != 'fp32':
        raise BackendUnavailable(f'backend onnxruntime runs fp32 only; for {precision} use backend '
                                 f'{"openvino" if precision == "bf16" else "tensorrt"}')
    elif cuda and 'CUDAExecutionProvider' not in mod.get_available_providers():
        raise BackendUnavailable('backend onnxruntime on a CUDA device needs onnxruntime-gpu (pip install '
                                 'onnxruntime-gpu), or use device cpu')


def runtime_version(backend: str) -> str:
    """The installed runtime's version (part of every cache key)."""
    return str(getattr(_module(backend), '__version__', 'unknown')).split('-')[0]


def _numpy(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().float().cpu().numpy())


class Runtime:
    """An ONNX file loaded into one runtime; ``run`` takes and returns torch tensors."""

    backend = ''

    def __init__(self, onnx_path: Path, precision: str, cache_dir: Path, threads: int,
                 on_event: Callable[[str], None]):
        self.onnx_path = Path(onnx_path)
        self.precision = precision
        self.cache_dir = Path(cache_dir)
        self.threads = max(1, int(threads))
        self.on_event = on_event

    def run(self, image: torch.Tensor, table: torch.Tensor) -> List[torch.Tensor]:
        raise NotImplementedError


class OnnxRuntime(Runtime):
    """ONNX Runtime: one session serves every input shape (the file's dynamic axes)."""

    backend = 'onnxruntime'

    def __init__(self, *args, device: torch.device, **kwargs):
        super().__init__(*args, **kwargs)
        ort = _module('onnxruntime')
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        providers = (['CUDAExecutionProvider', 'CPUExecutionProvider'] if device.type == 'cuda'
                     else ['CPUExecutionProvider'])
        start = time.perf_counter()
        self.session = ort.InferenceSession(str(self.onnx_path), sess_options=options, providers=providers)
        self.on_event(f'onnxruntime {ort.__version__}: session ready ({providers[0]}) in '
                      f'{time.perf_counter() - start:.2f} s')

    def run(self, image, table):
        outs = self.session.run(None, {'image': _numpy(image), 'grid_table': _numpy(table)})
        return [torch.from_numpy(o).to(image.device) for o in outs]


class OpenVinoRuntime(Runtime):
    """OpenVINO: the model is compiled per static input shape (fastest on CPUs); OpenVINO's own model cache
    (``cache_dir``, keyed by its version, the model and the settings) makes a recompile after a restart cheap."""

    backend = 'openvino'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ov = _module('openvino')
        self.device = _openvino_device(self.ov, self.precision)
        self.core = self.ov.Core()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.core.set_property({'CACHE_DIR': str(self.cache_dir)})
        self.model = self.core.read_model(str(self.onnx_path))
        self._compiled: Dict[Tuple, object] = {}

    def _compile(self, key: Tuple):
        image_shape, table_shape = key
        model = self.model.clone()
        model.reshape({'image': list(image_shape), 'grid_table': list(table_shape)})
        hint = {'fp32': 'f32', 'bf16': 'bf16', 'fp16': 'f16'}[self.precision]
        config = {'INFERENCE_PRECISION_HINT': hint, 'PERFORMANCE_HINT': 'LATENCY'}
        if self.device == 'CPU':
            config['INFERENCE_NUM_THREADS'] = self.threads
        start = time.perf_counter()
        compiled = self.core.compile_model(model, self.device, config)
        self.on_event(f'openvino {runtime_version("openvino")}: compiled for input {list(image_shape)} ({self.device}, '
                      f'{self.precision}) in {time.perf_counter() - start:.2f} s')
        return compiled.create_infer_request()

    def run(self, image, table):
        key = (tuple(image.shape), tuple(table.shape))
        request = self._compiled.get(key)
        if request is None:
            if len(self._compiled) >= MAX_SHAPES:
                self._compiled.pop(next(iter(self._compiled)))
            request = self._compiled[key] = self._compile(key)
        request.infer({'image': _numpy(image), 'grid_table': _numpy(table)})
        return [torch.from_numpy(np.array(request.get_output_tensor(i).data, dtype=np.float32, copy=True))
                .to(image.device) for i in range(len(request.model_outputs))]


class TensorRtRuntime(Runtime):
    """TensorRT: one engine per GPU, input shape and precision, built from the ONNX file and cached on disk
    (``cache_dir``/<gpu>/...engine); inputs and outputs stay on the GPU as torch tensors."""

    backend = 'tensorrt'

    def __init__(self, *args, device: torch.device, **kwargs):
        super().__init__(*args, **kwargs)
        self.trt = _module('tensorrt')
        self.device = device
        self.logger = self.trt.Logger(self.trt.Logger.WARNING)
        self.runtime = self.trt.Runtime(self.logger)
        props = torch.cuda.get_device_properties(device)
        gpu = re.sub(r'[^A-Za-z0-9]+', '-', props.name).strip('-')
        self.gpu_dir = self.cache_dir / f'{gpu}-sm{props.major}{props.minor}'
        self._engines: Dict[Tuple, Tuple] = {}

    def _engine_path(self, key: Tuple) -> Path:
        shape = 'x'.join(str(s) for s in key[0])
        return self.gpu_dir / f'{self.onnx_path.stem}-{shape}-{self.precision}.engine'

    def _build(self, key: Tuple) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse_from_file(str(self.onnx_path)):
            errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendUnavailable(f'TensorRT could not parse {self.onnx_path}: {errors}')
        config = builder.create_builder_config()
        if self.precision == 'fp16':
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        for name, shape in zip(('image', 'grid_table'), key):
            profile.set_shape(name, shape, shape, shape)
        config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise BackendUnavailable(f'TensorRT could not build an engine for {self.onnx_path} at {list(key[0])}')
        return bytes(plan)

    def _load(self, key: Tuple):
        path = self._engine_path(key)
        if path.is_file():
            plan = path.read_bytes()
        else:
            start = time.perf_counter()
            plan = self._build(key)
            from talk2dino_ros.atomic_files import atomic_write_bytes
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, plan)
            self.on_event(f'tensorrt {self.trt.__version__}: built the {self.precision} engine for input '
                          f'{list(key[0])} in {time.perf_counter() - start:.1f} s ({path})')
        engine = self.runtime.deserialize_cuda_engine(plan)
        context = engine.create_execution_context()
        import onnx

        # the ONNX file's output order (the engine's own I/O order is not guaranteed to follow it)
        outputs = [o.name for o in onnx.load(str(self.onnx_path), load_external_data=False).graph.output]
        return engine, context, outputs

    def run(self, image, table):
        key = (tuple(image.shape), tuple(table.shape))
        entry = self._engines.get(key)
        if entry is None:
            if len(self._engines) >= MAX_SHAPES:
                self._engines.pop(next(iter(self._engines)))
            entry = self._engines[key] = self._load(key)
        engine, context, outputs = entry
        inputs = {'image': image.float().contiguous(), 'grid_table': table.to(image.device).float().contiguous()}
        for name, tensor in inputs.items():
            context.set_input_shape(name, tuple(tensor.shape))
            context.set_tensor_address(name, tensor.data_ptr())
        results = []
        for name in outputs:
            out = torch.empty(tuple(context.get_tensor_shape(name)), dtype=torch.float32, device=image.device)
            context.set_tensor_address(name, out.data_ptr())
            results.append(out)
        stream = torch.cuda.current_stream(image.device)
        if not context.execute_async_v3(stream.cuda_stream):
            raise Talk2DinoError(f'TensorRT failed to run the engine for input {list(image.shape)}')
        return results


def open_runtime(backend: str, onnx_path: Path, precision: str, cache_dir: Path, device: torch.device,
                 on_event: Optional[Callable[[str], None]] = None, threads: Optional[int] = None) -> Runtime:
    """Load ``onnx_path`` into ``backend`` (call :func:`check_backend` first for a one-line refusal)."""
    check_backend(backend, precision, device)
    args = (onnx_path, precision, Path(cache_dir), threads or torch.get_num_threads(), on_event or (lambda m: None))
    if backend == 'onnxruntime':
        return OnnxRuntime(*args, device=device)
    if backend == 'openvino':
        return OpenVinoRuntime(*args)
    if backend == 'tensorrt':
        return TensorRtRuntime(*args, device=device)
    raise BackendUnavailable(f'backend {backend} has no exported runtime')
