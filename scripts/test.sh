#!/usr/bin/env bash
# Run the test suite in the project venv (created by scripts/setup.sh). Extra args go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${T2D_VENV:-$ROOT/.venv}"
cd "$ROOT"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
exec "$VENV/bin/python" -m pytest -q -rs "$@"
