# Shared by scripts/serve and scripts/test: make .venv if needed and install the project.
# Usage: . scripts/_venv.sh EXTRAS   (EXTRAS: "" or "test")
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV" || { echo "python3 -m venv failed: apt-get install python3-venv" >&2; exit 1; }
fi
stamp="$VENV/.installed-${1:-base}"
test_stamp="$VENV/.installed-test"
if [ -z "${1:-}" ] && [ -f "$test_stamp" ] && [ ! "$ROOT/pyproject.toml" -nt "$test_stamp" ]; then
  stamp="$test_stamp"  # the test install includes the base one (scripts/serve after scripts/test)
fi
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null
  if [ -n "${1:-}" ]; then spec="$ROOT[$1]"; else spec="$ROOT"; fi
  "$VENV/bin/python" -m pip install --quiet -e "$spec"
  touch "$stamp"
fi
