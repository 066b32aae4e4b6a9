#!/usr/bin/env bash
# The whole loop without a camera: a synthetic scene -> segment_node -> overlays saved as PNGs.
# Real weights are used when `fetch_weights` put them in $T2D_WEIGHTS_DIR (default ~/.cache/talk2dino_ros);
# otherwise RANDOM test weights are written and the node is told so (its masks are then meaningless).
# Usage: bash scripts/demo.sh [seconds]   (default 30; Ctrl-C stops it earlier)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${T2D_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
SECONDS_TO_RUN="${1:-30}"
WEIGHTS_DIR="${T2D_WEIGHTS_DIR:-$HOME/.cache/talk2dino_ros}"
OUT="${T2D_DEMO_OUT:-$ROOT/demo_out}"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"

# large frames over best-effort UDP lose fragments on a default loopback; the demo publisher is reliable
NODE_ARGS=(-p mode:=whole -p image_reliability:=reliable -p "weights_dir:=$WEIGHTS_DIR")
if [ ! -f "$WEIGHTS_DIR/dinov2_vitb14_reg4_pretrain.pth" ] || [ ! -f "$WEIGHTS_DIR/vitb_mlp_infonce.pth" ]; then
  RW="$(mktemp -d)/random_weights"
  echo "[demo] no published weights in $WEIGHTS_DIR (run fetch_weights); using RANDOM tiny weights: outputs are meaningless"
  "$PY" -m talk2dino_ros.cli.make_random_weights "$RW" >/dev/null
  NODE_ARGS=(-p mode:=whole -p image_reliability:=reliable -p "weights_dir:=$RW" -p allow_random_weights:=true)
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$PY" -m talk2dino_ros.ros.segment_node --ros-args --params-file "$ROOT/config/params.yaml" \
  -r image:=/camera/image_raw "${NODE_ARGS[@]}" & pids+=($!)
"$PY" -m talk2dino_ros.ros.image_folder_publisher --rate 2 \
  --vocab "red circle, green square, blue triangle, sky, grass" & pids+=($!)
"$PY" -m talk2dino_ros.ros.output_saver --out "$OUT" --every 2 & pids+=($!)
echo "[demo] running for ${SECONDS_TO_RUN}s; overlays go to $OUT (RViz: rviz2 -d config/talk2dino.rviz)"
sleep "$SECONDS_TO_RUN"
