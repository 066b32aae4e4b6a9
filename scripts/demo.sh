#!/usr/bin/env bash
# The whole loop without a camera: a synthetic scene -> segment_node -> overlays saved as PNGs.
#
# Weights: the published Talk2DINO ViT-B files in $T2D_WEIGHTS_DIR (default ~/.cache/talk2dino_ros). When some
# are missing, fetch_weights downloads them first (about 1 GB, with progress). When that is not possible (no
# network, or T2D_DEMO_OFFLINE=1), RANDOM test weights are written instead: the log says so, every saved overlay
# carries a red "RANDOM WEIGHTS" banner, and the background class is switched off so that every pixel gets a
# class and the plumbing is visible (the masks themselves mean nothing).
# At the end it prints a summary: frames in and out, the output rate and where the overlays are.
# Usage: bash scripts/demo.sh [seconds]   (default 30; Ctrl-C stops it earlier)
# Environment: T2D_WEIGHTS_DIR, T2D_DEMO_OUT (default ./demo_out), T2D_DEMO_OFFLINE=1, T2D_VENV.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${T2D_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
SECONDS_TO_RUN="${1:-30}"
WEIGHTS_DIR="${T2D_WEIGHTS_DIR:-$HOME/.cache/talk2dino_ros}"
OUT="${T2D_DEMO_OUT:-$ROOT/demo_out}"
CAMERA=/camera/image_raw
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
say() { echo "[demo] $*"; }

have_published_weights() {
  "$PY" - "$WEIGHTS_DIR" <<'PYEOF'
import sys
from pathlib import Path
from talk2dino_ros.catalog import published_bundle
folder = Path(sys.argv[1]).expanduser()
sys.exit(0 if all((folder / f.filename).is_file() for f in published_bundle('talk2dino', 'vitb').values()) else 1)
PYEOF
}

RANDOM_WEIGHTS=0
if have_published_weights; then
  say "using the published weights in $WEIGHTS_DIR"
elif [ "${T2D_DEMO_OFFLINE:-0}" != 1 ] && \
     { say "published weights missing in $WEIGHTS_DIR: fetching them (fetch_weights, about 1 GB)"; \
       "$PY" -m talk2dino_ros.cli.fetch_weights --dir "$WEIGHTS_DIR"; }; then
  say "fetched; using the published weights in $WEIGHTS_DIR"
else
  RANDOM_WEIGHTS=1
  WEIGHTS_DIR="$(mktemp -d)/random_weights"
  say "!!! no published weights and no download: using RANDOM test weights; the masks are meaningless !!!"
  "$PY" -m talk2dino_ros.cli.make_random_weights "$WEIGHTS_DIR" | sed 's/^/[demo]   /'
fi

# large frames over best-effort UDP lose fragments on a default loopback; the demo publisher is reliable.
# The node takes its vocabulary on /t2d/vocab (its relative t2d/vocab in the root namespace).
NODE_ARGS=(-p mode:=whole -p image_reliability:=reliable -p "weights_dir:=$WEIGHTS_DIR")
SAVER_ARGS=(--out "$OUT" --every 2 --input-topic "$CAMERA")
if [ "$RANDOM_WEIGHTS" = 1 ]; then
  # no background class (threshold <= 0): every pixel gets one of the classes, so the overlay shows regions
  # the node itself puts its RANDOM WEIGHTS banner on every overlay (above the legend)
  NODE_ARGS+=(-p allow_random_weights:=true -p background_threshold:=0.0)
fi

LOGS="$(mktemp -d)"
node_pid=""; pub_pid=""; saver_pid=""
stop() {  # $1 = pid, $2 = what it is: SIGINT (Ctrl-C), then SIGTERM after 20 s and SIGKILL after 5 more
  [ -n "$1" ] || return 0
  kill -INT "$1" 2>/dev/null || true
  local tick
  for tick in $(seq 200); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2>/dev/null; then  # a demo must end even when a process ignores Ctrl-C; say which one
    say "the $2 did not stop within 20 s of Ctrl-C: terminating it"
    kill -TERM "$1" 2>/dev/null || true
    for tick in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
  fi
  wait "$1" 2>/dev/null || true
}
cleanup() {
  stop "$pub_pid" publisher; stop "$saver_pid" "output saver"; stop "$node_pid" "segmentation node"
  pub_pid=""; saver_pid=""; node_pid=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT"
"$PY" -m talk2dino_ros.ros.segment_node --ros-args --params-file "$ROOT/config/params.yaml" \
  -r image:="$CAMERA" "${NODE_ARGS[@]}" & node_pid=$!
"$PY" -m talk2dino_ros.cli.output_saver "${SAVER_ARGS[@]}" >"$LOGS/saver.out" & saver_pid=$!
sleep 3  # let the saver subscribe before the first frame, so that "frames in" counts them all
"$PY" -m talk2dino_ros.cli.image_folder_publisher --rate 2 --topic "$CAMERA" \
  --vocab "red circle, green square, blue triangle, sky, grass" & pub_pid=$!
say "running for ${SECONDS_TO_RUN}s; overlays go to $OUT (RViz: rviz2 -d config/talk2dino.rviz)"
sleep "$SECONDS_TO_RUN"

# camera first, then the saver (it prints the counts), then the node
stop "$pub_pid" publisher; pub_pid=""
sleep 1
stop "$saver_pid" "output saver"; saver_pid=""
stop "$node_pid" "segmentation node"; node_pid=""
grep '^summary:' "$LOGS/saver.out" | sed 's/^summary:/[demo] summary:/' || say "summary: the output saver printed none"
say "overlays: $OUT ($(find "$OUT" -name 'overlay_*.png' | wc -l) PNG files)"
if [ "$RANDOM_WEIGHTS" = 1 ]; then
  say "note: these overlays come from RANDOM weights; fetch the real ones with fetch_weights (then rerun the demo)"
fi
rm -rf "$LOGS"
