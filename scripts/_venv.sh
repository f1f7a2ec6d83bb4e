# Shared by scripts/serve and scripts/test: make .venv if needed and install the project.
# Usage: . scripts/_venv.sh EXTRAS   (EXTRAS: "" or "test")
#
# A .venv that cannot run (made on another machine, its interpreter gone or moved; a creation
# that was interrupted before pip was in place) is removed and made again, never trusted.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"

venv_works() {  # the venv's interpreter starts and has pip
  "$VENV/bin/python" -c 'import sys, pip' >/dev/null 2>&1
}

make_venv() {
  local log
  if ! command -v "$PY" >/dev/null 2>&1; then
    echo "scripts: no $PY on PATH; install Python 3.11 or newer (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
  fi
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "scripts: $("$PY" -V 2>&1) is too old; imapd needs Python 3.11 or newer (set PYTHON=...)" >&2
    exit 1
  fi
  if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "scripts: $PY has no venv/ensurepip module; on Debian: apt-get install python3-venv" >&2
    exit 1
  fi
  log="$(mktemp)"
  if ! "$PY" -m venv "$VENV" >"$log" 2>&1; then
    echo "scripts: '$PY -m venv $VENV' failed:" >&2
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}

if { [ -e "$VENV" ] || [ -L "$VENV" ]; } && ! venv_works; then
  echo "scripts: $VENV does not run here (made elsewhere or half-made); recreating it" >&2
  rm -rf "$VENV"
fi
if [ ! -e "$VENV" ]; then
  make_venv
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
