#!/usr/bin/env bash
# The real-time table on a CUDA machine, in one command: exactness of the fast path, PAMR alone, then
# `benchmark` for Talk2DINO and CLIP-DINOiser on published-size random weights, then the exported backends
# (TensorRT fp16/fp32 beside torch on the CUDA graph: backbone alone, whole plain, whole full); the summary
# table comes last.
#
#   scripts/gpu_check.sh [--site DIR] [--python PY] [--repeats N] [--fp32] [--out DIR]
#   scripts/gpu_check.sh --smoke          # the same steps on the CPU with tiny weights (checks the script)
#
# --site DIR: wheels for what the machine's python lacks (open_clip_torch and its pure-python deps, e.g. from
#   `pip download open_clip_torch==3.3.0 --no-deps ftfy regex wcwidth -d DIR`): they are installed without
#   network into a venv that sees the system's torch/timm/opencv/numpy. A DIR without wheels is put on
#   PYTHONPATH as an already unpacked site directory.
# The repository itself is used through PYTHONPATH: nothing is built.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=python3
SITE=""
REPEATS=30
FP32=0
SMOKE=0
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --site) SITE=$2; shift 2 ;;
    --python) PY=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --fp32) FP32=1; shift ;;
    --smoke) SMOKE=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-$(mktemp -d /tmp/t2d_gpu_check.XXXXXX)}
mkdir -p "$OUT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# ---------------------------------------------------------------- python with open_clip
if [ -n "$SITE" ]; then
  if ls "$SITE"/*.whl >/dev/null 2>&1; then
    if [ ! -x "$OUT/venv/bin/python" ]; then
      "$PY" -m venv --system-site-packages "$OUT/venv"
      "$OUT/venv/bin/python" -m pip install --quiet --no-index --find-links "$SITE" open_clip_torch
    fi
    PY="$OUT/venv/bin/python"
  else
    export PYTHONPATH="$PYTHONPATH:$SITE"
  fi
fi
if ! "$PY" -c 'import open_clip' 2>/dev/null; then
  echo "error: $PY cannot import open_clip; pass --site DIR with its wheels (see --help)" >&2
  exit 2
fi
if [ "$SMOKE" = 1 ]; then
  DEVICE=cpu; WIDTH=tiny; SIZE=60x80; REPEATS=2; MEM=3,30; FP16=(); CAMERAS=2; FAST=off
else
  DEVICE=cuda; WIDTH=vitb; SIZE=480x640; MEM=10,100,1000; FP16=(--fp16); CAMERAS=4; FAST=auto
  "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || {
    echo "error: no CUDA device visible to $PY (use --smoke for a CPU run of the script)" >&2; exit 2; }
fi
VOCAB=person,car,tree,road,sky,building
VARIANTS=vitb,dinov3_vitb  # DINOv3-B against DINOv2-B, one run
echo "# gpu_check: output in $OUT" >&2

# ---------------------------------------------------------------- 1. exactness and PAMR alone
"$PY" - "$DEVICE" "$WIDTH" "$OUT" <<'EOF' | tee "$OUT/exactness.txt"
import dataclasses, sys, time
import numpy as np
import torch
from talk2dino_ros.model.random_weights import write_random_weights, tiny_segmenter_config
from talk2dino_ros.model.segmenter import Segmenter
from talk2dino_ros.model.types import InferenceOptions
from talk2dino_ros.model.pamr import pamr
from talk2dino_ros.cli.speed_benchmark import synthetic_scene

device, width, out = sys.argv[1:4]
paths = write_random_weights(out + '/weights', method='talk2dino', width=width)
names = ['person', 'car', 'tree', 'road', 'sky', 'building']
img = synthetic_scene(480, 640)
full = InferenceOptions(bg_clean=True, background=True, pamr=True)

def run(dev, fast, fp16=False, mode='whole', options=None):
    cfg = tiny_segmenter_config(paths, device=dev, mode=mode, fast_path=fast, fp16=fp16)
    cfg = dataclasses.replace(cfg, variant='vitb')
    s = Segmenter.from_config(cfg)
    vocab = s.build_vocabulary(names, background=bool(options and options.background))
    s.prepare([img.shape[:2]], options=options)
    r = s.segment(img, vocabulary=vocab, options=options)
    return r.scores, r.labels, s.fast_path_status()

for mode, options in (('whole', None), ('whole', full), ('slide', None)):
    ref_s, ref_l, _ = run('cpu', 'off', mode=mode, options=options)
    eager_s, eager_l, _ = run(device, 'off', mode=mode, options=options)
    fast_s, fast_l, states = run(device, 'auto', mode=mode, options=options)
    tag = f'{mode}{"+clean+bg+pamr" if options else ""}'
    print(f'exactness {tag}: {device} eager fp32 vs cpu fp32 max|d| {np.abs(eager_s - ref_s).max():.2e}, '
          f'labels identical {np.array_equal(eager_l, ref_l)}')
    print(f'exactness {tag}: {device} fast path fp32 vs eager max|d| {np.abs(fast_s - eager_s).max():.2e}, '
          f'labels identical {np.array_equal(fast_l, eager_l)}; fast path states {sorted(set(map(str, states.values())))}')
    if device == 'cuda':
        h_s, h_l, _ = run(device, 'auto', fp16=True, mode=mode, options=options)
        print(f'exactness {tag}: cuda fast path fp16 vs cpu fp32 max|d| {np.abs(h_s - ref_s).max():.2e}, '
              f'label agreement {(h_l == ref_l).mean():.5f}')

dev = torch.device(device)
g = torch.Generator().manual_seed(0)
image = (torch.rand(1, 3, 448, 448, generator=g) * 255).to(dev)
masks = torch.rand(1, 6, 448, 448, generator=g).to(dev)
for _ in range(3):
    pamr(image, masks)
times = []
for _ in range(10 if device == 'cuda' else 2):
    if device == 'cuda':
        torch.cuda.synchronize()
    t = time.perf_counter()
    pamr(image, masks)
    if device == 'cuda':
        torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
print(f'pamr alone: 6 classes at 448x448 on {device}, fp32: median {1e3 * float(np.median(times)):.2f} ms')
EOF

# ---------------------------------------------------------------- 2. benchmark runs
bench() {  # bench NAME args...
  local name=$1; shift
  echo "# benchmark $name ..." >&2
  "$PY" -m talk2dino_ros.cli.speed_benchmark --random-weights "$WIDTH" --devices "$DEVICE" --sizes "$SIZE" \
    --vocab "$VOCAB" --repeats "$REPEATS" --warmup 3 --fast-path "$FAST" --quiet --json "$OUT/$name.json" "$@" \
    | tee "$OUT/$name.txt"
}
bench t2d_fp16 "${FP16[@]}" --cameras "$CAMERAS" --memory-classes "$MEM"
bench cd_fp16 --method clip_dinoiser "${FP16[@]}" --pipelines whole-plain --cameras 1 --memory-classes none \
  --no-first-frame
# DINOv3-B against DINOv2-B in one run (whole plain and full, each at its own published size)
echo "# benchmark dinov3_vs_dinov2 ..." >&2
"$PY" -m talk2dino_ros.cli.speed_benchmark --random-weights "$WIDTH" --variants "$VARIANTS" --devices "$DEVICE" \
  --sizes "$SIZE" --vocab "$VOCAB" --repeats "$REPEATS" --warmup 3 --fast-path "$FAST" --quiet \
  --pipelines whole-plain,whole-full --cameras 1 --memory-classes none --no-first-frame "${FP16[@]}" \
  --json "$OUT/dinov3_vs_dinov2.json" | tee "$OUT/dinov3_vs_dinov2.txt"
if [ "$FP32" = 1 ]; then
  bench t2d_fp32 --cameras "$CAMERAS" --memory-classes none
  bench cd_fp32 --method clip_dinoiser --pipelines whole-plain --cameras 1 --memory-classes none --no-first-frame
fi

# ---------------------------------------------------------------- 2b. exported backends beside the torch path
# TensorRT fp16 (and fp32) against torch fp32 / fp16 on the CUDA graph, interleaved: backbone alone, whole
# plain, whole full. The smoke run uses the CPU runtimes that are installed (TensorRT needs a GPU).
TRT_NOTE=""
if [ "$SMOKE" = 1 ]; then
  BACKENDS=torch:fp32
  "$PY" -c 'import onnxruntime' 2>/dev/null && BACKENDS="$BACKENDS,onnxruntime:fp32"
elif "$PY" -c 'import tensorrt' 2>/dev/null; then
  BACKENDS=torch:fp32,torch:fp16,tensorrt:fp16,tensorrt:fp32
else
  BACKENDS=torch:fp32,torch:fp16
  TRT_NOTE="TensorRT rows SKIPPED: $PY cannot import tensorrt (pip install 'talk2dino_ros[tensorrt]' on a desktop GPU; on Jetson JetPack's python3-libnvinfer)"
  echo "# $TRT_NOTE" >&2
fi
echo "# benchmark backends ($BACKENDS) ..." >&2
"$PY" -m talk2dino_ros.cli.speed_benchmark --random-weights "$WIDTH" --device "$DEVICE" --backends "$BACKENDS" \
  --pipelines whole-plain,whole-full --sizes "$SIZE" --vocab "$VOCAB" --repeats "$REPEATS" --warmup 3 \
  --fast-path "$FAST" --quiet --json "$OUT/backends.json" | tee "$OUT/backends.txt"

# ---------------------------------------------------------------- 3. the summary table, last
"$PY" - "$OUT" "$SIZE" <<'EOF'
import json, os, sys

out, size = sys.argv[1:3]
TARGETS = [  # (label, json, stage, target seconds or None)
    ('whole, plain', 't2d', 'pipeline whole-plain', 2.5e-3),
    ('whole, cleaning + background', 't2d', 'pipeline whole-clean-bg', 3e-3),
    ('whole, cleaning + background + PAMR', 't2d', 'pipeline whole-full', 5e-3),
    ('slide, plain', 't2d', 'pipeline slide-plain', 4e-3),
    ('CLIP-DINOiser, whole', 'cd', 'pipeline whole-plain', 3e-3),
    ('100 new vocabulary names', 't2d', 'vocabulary 100 new names', 50e-3),
    ('first frame (fresh model)', 't2d', 'first frame', None),
    ('fast path ready after first frame', 't2d', 'fast path ready', None),
    ('backbone alone, B=1 (ceiling)', 't2d', 'backbone alone B=1', None),
    ('cameras batched (4 on the GPU), per frame', 't2d', 'cameras x', 1 / 800),
]

def rows(name):
    path = os.path.join(out, name + '.json')
    return json.load(open(path))['rows'] if os.path.exists(path) else []

def find(rs, stage):
    return next((r for r in rs if r['stage'].startswith(stage) and r['size'] in (size, '-')), None)

def fmt(s):
    return '-' if s is None else (f'{s * 1e3:.2f} ms' if s < 1 else f'{s:.2f} s')

precisions = ['fp16'] + (['fp32'] if os.path.exists(os.path.join(out, 't2d_fp32.json')) else [])
print(f'\n## issue-15 table ({size}, 6 classes, random published-size weights)')
print('| pipeline | ' + ' | '.join(precisions) + ' | target (fp16) | met |')
print('|---|' + '---|' * len(precisions) + '---|---|')
for label, src, stage, target in TARGETS:
    vals = [find(rows(f'{src}_{p}'), stage) for p in precisions]
    meds = [None if v is None else v['median_s'] for v in vals]
    met = '-' if target is None or meds[0] is None else ('yes' if meds[0] <= target else 'NO')
    fps = '' if meds[0] in (None, 0) else f' ({1 / meds[0]:.0f} fps)'
    print(f'| {label} | ' + ' | '.join(fmt(m) + (fps if i == 0 else '') for i, m in enumerate(meds))
          + f' | {fmt(target)} | {met} |')
mem = [r for r in rows('t2d_fp16') if r['stage'].startswith('memory')]
for r in mem:
    peak = r['cuda_peak_mb'] if r['cuda_peak_mb'] is not None else r['rss_peak_mb']
    print(f'| peak frame memory, {r["stage"][7:]} | {"-" if peak is None else f"{peak:.0f} MB"} | | |')
notes = json.load(open(os.path.join(out, 't2d_fp16.json')))['meta'].get('notes', [])
for n in notes:
    print(f'# {n}')
print()
print(open(os.path.join(out, 'exactness.txt')).read().strip())
print()
print('## backends (TensorRT beside the CUDA-graph torch path)')
print(open(os.path.join(out, 'backends.txt')).read().strip())
EOF
[ -z "$TRT_NOTE" ] || echo "# $TRT_NOTE"
