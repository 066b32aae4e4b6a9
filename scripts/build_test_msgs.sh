#!/usr/bin/env bash
# Build the TEST-ONLY vision_msgs stand-in (test_support/vision_msgs_test) into a private prefix.
# It is never installed into the venv: tests that need it put the prefix on PYTHONPATH,
# LD_LIBRARY_PATH and AMENT_PREFIX_PATH of a child process (see test/field/test_label_info.py).
# Usage: bash scripts/build_test_msgs.sh          -> prints the prefix on its last line
#   T2D_VENV=/path/to/venv        venv with the rosidl toolchain (default ./.venv, made by setup.sh)
#   T2D_TEST_MSGS_PREFIX=/path    where to install (default <venv>/t2d_test_msgs, outside every search path)
# Idempotent: skipped when the prefix was built from the same sources with the same venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${T2D_VENV:-$ROOT/.venv}"
PREFIX="${T2D_TEST_MSGS_PREFIX:-$VENV/t2d_test_msgs}"
SRC="$ROOT/test_support/vision_msgs_test"
say() { echo "[build_test_msgs] $*" >&2; }

command -v cmake >/dev/null || { say "cmake not found"; exit 3; }
[ -x "$VENV/bin/python" ] || { say "no venv at $VENV (run scripts/setup.sh first)"; exit 3; }

STAMP="$PREFIX/.t2d_test_msgs_stamp"
hash="$( (cd "$SRC" && find . -type f -print0 | sort -z | xargs -0 sha256sum; \
          sha256sum "$ROOT/scripts/build_test_msgs.sh"; readlink -f "$VENV/bin/python") | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$hash" ]; then
  say "up to date: $PREFIX"
  echo "$PREFIX"
  exit 0
fi

say "building the test-only vision_msgs into $PREFIX"
BUILD="$(mktemp -d)"
trap 'rm -rf "$BUILD"' EXIT
rm -rf "$PREFIX"
(
  export AMENT_PREFIX_PATH="$VENV"
  cmake -S "$SRC" -B "$BUILD" -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$PREFIX" \
    -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF >"$BUILD/configure.log" 2>&1 \
    || { cat "$BUILD/configure.log" >&2; exit 1; }
  cmake --build "$BUILD" -j"$(nproc)" >"$BUILD/build.log" 2>&1 || { tail -50 "$BUILD/build.log" >&2; exit 1; }
  cmake --install "$BUILD" >/dev/null
)
echo "$hash" > "$STAMP"
say "done"
echo "$PREFIX"
