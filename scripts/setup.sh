#!/usr/bin/env bash
# One-command environment: venv + pinned deps + messages + this package (non-editable).
# Usage: bash scripts/setup.sh            (CPU torch, venv in ./.venv)
#        T2D_TORCH=cuda bash scripts/setup.sh   (CUDA build of torch 2.13.0 from the PyTorch index)
#        T2D_VENV=/path/to/venv bash scripts/setup.sh
# Idempotent: a second run only re-checks and reinstalls the package if its sources changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${T2D_VENV:-$ROOT/.venv}"
TORCH_FLAVOUR="${T2D_TORCH:-cpu}"
PY="${PYTHON:-python3}"
say() { echo "[setup] $*"; }
pipq() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" 2>&1 | grep -v "is ignored" || true; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating venv $VENV"
  "$PY" -m venv "$VENV"
fi

STAMP="$VENV/.t2d_stamp"
req_hash="$(cat "$ROOT/requirements.txt" "$ROOT/scripts/setup.sh" | sha256sum | cut -d' ' -f1)-$TORCH_FLAVOUR"
src_hash="$(cd "$ROOT" && find setup.py setup.cfg package.xml talk2dino_ros launch config msg resource talk2dino_ros_msgs -type f \
  ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
old_req=""; old_src=""
[ -f "$STAMP" ] && { old_req="$(sed -n 1p "$STAMP")"; old_src="$(sed -n 2p "$STAMP")"; }

if [ "$req_hash" != "$old_req" ]; then
  say "installing pinned dependencies (torch: $TORCH_FLAVOUR)"
  if [ "$TORCH_FLAVOUR" = "cuda" ]; then
    pipq --index-url "${T2D_TORCH_INDEX:-https://download.pytorch.org/whl/cu128}" torch==2.13.0
  else
    pipq torch==2.13.0
  fi
  pipq -r "$ROOT/requirements.txt"
  # any later change of messages must rebuild them
  old_src=""
else
  say "dependencies up to date"
fi

if [ "$src_hash" != "$old_src" ]; then
  say "building messages (talk2dino_ros_msgs) into $VENV"
  BUILD="$(mktemp -d)"
  (
    export AMENT_PREFIX_PATH="$VENV"
    cmake -S "$ROOT/talk2dino_ros_msgs" -B "$BUILD" -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF >"$BUILD/configure.log" 2>&1 \
      || { cat "$BUILD/configure.log"; exit 1; }
    cmake --build "$BUILD" -j"$(nproc)" >"$BUILD/build.log" 2>&1 || { tail -50 "$BUILD/build.log"; exit 1; }
    cmake --install "$BUILD" >/dev/null
  )
  rm -rf "$BUILD"
  say "installing talk2dino_ros (pip install .)"
  pipq --no-deps --force-reinstall "$ROOT"
  rm -rf "$ROOT/build" "$ROOT"/*.egg-info
else
  say "package and messages up to date"
fi
printf '%s\n%s\n' "$req_hash" "$src_hash" > "$STAMP"
# Step: torchvision start-up hook (talk2dino_ros/_compat.py). A one-line .pth in the venv's site-packages
# makes `import timm / open_clip / torchvision` work in any script of this venv on the CPU torch build,
# without importing talk2dino_ros first; torch is not imported at interpreter start. Idempotent.
(cd / && "$VENV/bin/python" -c "from talk2dino_ros._compat import install_pth; install_pth()")
"$VENV/bin/python" -c "import talk2dino_ros, talk2dino_ros_msgs.msg" 
say "ready: source $VENV/bin/activate  (AMENT_PREFIX_PATH=$VENV for launch/ament lookups)"
