#!/usr/bin/env bash
# One-command environment (pip-only path, no apt ROS 2): venv + pinned deps + this package's interfaces
# (CMakeLists.txt, built with the pip rosidl toolchain into the venv) + this package (pip install .).
# Usage: bash scripts/setup.sh            (CPU torch, venv in ./.venv)
#        T2D_TORCH=cuda bash scripts/setup.sh   (CUDA build of torch 2.13.0 from the PyTorch index)
#        T2D_VENV=/path/to/venv bash scripts/setup.sh
#        T2D_EXTRAS=openvino,onnxruntime bash scripts/setup.sh   (optional extras of setup.py: the exported
#          backends' runtimes openvino / onnxruntime / tensorrt, plots; comma-separated)
# Idempotent: a second run only re-checks and rebuilds/reinstalls the package if its sources changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${T2D_VENV:-$ROOT/.venv}"
TORCH_FLAVOUR="${T2D_TORCH:-cpu}"
EXTRAS="$(echo "${T2D_EXTRAS:-}" | tr -d ' ')"
PY="${PYTHON:-python3}"
say() { echo "[setup] $*"; }
pipq() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" 2>&1 | grep -v "is ignored" || true; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating venv $VENV"
  "$PY" -m venv "$VENV"
fi
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

STAMP="$VENV/.t2d_stamp"
req_hash="$(cat "$ROOT"/requirements*.txt "$ROOT/scripts/setup.sh" "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)-$TORCH_FLAVOUR-$EXTRAS"
src_hash="$(cd "$ROOT" && find CMakeLists.txt cmake setup.py setup.cfg package.xml talk2dino_ros launch config msg srv resource \
  -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
old_req=""; old_src=""
[ -f "$STAMP" ] && { old_req="$(sed -n 1p "$STAMP")"; old_src="$(sed -n 2p "$STAMP")"; }

if [ "$req_hash" != "$old_req" ]; then
  say "installing pinned dependencies (torch: $TORCH_FLAVOUR)"
  if [ "$TORCH_FLAVOUR" = "cuda" ]; then
    pipq --index-url "${T2D_TORCH_INDEX:-https://download.pytorch.org/whl/cu128}" torch==2.13.0
  else
    pipq torch==2.13.0
  fi
  pipq -r "$ROOT/requirements.txt" -r "$ROOT/requirements-dev.txt"
  if [ -n "$EXTRAS" ]; then
    # the extras' packages as setup.py lists them (the package itself is reinstalled below)
    say "installing the optional extras: $EXTRAS"
    pipq "$ROOT[$EXTRAS]"
    rm -rf "$ROOT/build" "$ROOT"/*.egg-info
  fi
  # any later change of the dependencies must rebuild the interfaces
  old_src=""
else
  say "dependencies up to date"
fi

if [ "$src_hash" != "$old_src" ]; then
  # The interfaces used to live in a separate talk2dino_ros_msgs package: remove what it left in the venv,
  # so that nothing keeps importing the old module by accident.
  rm -rf "$SITE"/talk2dino_ros_msgs "$SITE"/talk2dino_ros_msgs-*.egg-info "$VENV/share/talk2dino_ros_msgs" \
    "$VENV/include/talk2dino_ros_msgs" "$VENV/share/ament_index/resource_index/packages/talk2dino_ros_msgs" \
    "$VENV"/lib/libtalk2dino_ros_msgs__*.so
  # A fresh copy of the package: files deleted from the sources must not linger in the venv.
  rm -rf "$SITE/talk2dino_ros"
  say "building the interfaces (CMakeLists.txt: talk2dino_ros/msg, talk2dino_ros/srv) into $VENV"
  BUILD="$(mktemp -d)"
  (
    export AMENT_PREFIX_PATH="$VENV"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF >"$BUILD/configure.log" 2>&1 \
      || { cat "$BUILD/configure.log"; exit 1; }
    cmake --build "$BUILD" -j"$(nproc)" >"$BUILD/build.log" 2>&1 || { tail -50 "$BUILD/build.log"; exit 1; }
    cmake --install "$BUILD" >/dev/null
  )
  rm -rf "$BUILD"
  # The CMake install wrote an egg-info for talk2dino_ros (from the generated interface modules); pip owns
  # the package's metadata on this path (dist-info with the console scripts), two would confuse it.
  rm -rf "$SITE"/talk2dino_ros-*.egg-info
  say "installing talk2dino_ros (pip install .)"
  pipq --no-deps --force-reinstall "$ROOT"
  rm -rf "$ROOT/build" "$ROOT"/*.egg-info
else
  say "package and interfaces up to date"
fi
printf '%s\n%s\n' "$req_hash" "$src_hash" > "$STAMP"
# Step: torchvision start-up hook (talk2dino_ros/_compat.py). A one-line .pth in the venv's site-packages
# makes `import timm / open_clip / torchvision` work in any script of this venv on the CPU torch build,
# without importing talk2dino_ros first; torch is not imported at interpreter start. Idempotent.
(cd / && "$VENV/bin/python" -c "from talk2dino_ros._compat import install_pth; install_pth()")
(cd / && "$VENV/bin/python" -c "import talk2dino_ros, talk2dino_ros.msg, talk2dino_ros.srv")
say "ready: source $VENV/bin/activate  (AMENT_PREFIX_PATH=$VENV for launch/ament lookups)"
