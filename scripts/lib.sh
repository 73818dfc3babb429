# Shared by scripts/demo.sh and scripts/test.sh (sourced, not run).
# Creates the two Python environments the project needs, each only once:
#   .venv/          the tap, the sandbox and the test tools (pip install -e '.[test,dev]' -e sandbox)
#   .meltano-venv/  Meltano itself, pinned in scripts/meltano-requirements.txt; kept apart
#                   from .venv so the two never fight over shared dependencies.
# Meltano then keeps each plugin's own environment under .meltano/ (`meltano install`).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
MELTANO="$ROOT/.meltano-venv/bin/meltano"
export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '==> %s\n' "$*" >&2; }

check_python() {
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "error: $PYTHON is missing or older than Python 3.10 (set PYTHON=/path/to/python3.11)" >&2
    exit 1
  fi
}

# .venv with the tap and the sandbox (its own package, never in the tap's wheel) installed
# editable, plus the test and dev tools.
ensure_venv() {
  check_python
  if [ ! -x "$ROOT/.venv/bin/python" ]; then
    say "creating .venv"
    "$PYTHON" -m venv "$ROOT/.venv"
  fi
  say "installing tap-voluum and voluum-sandbox into .venv (pip install -e '.[test,dev]' -e sandbox)"
  "$ROOT/.venv/bin/python" -m pip install --quiet -e "$ROOT[test,dev]" -e "$ROOT/sandbox"
}

# .meltano-venv with the pinned Meltano.
ensure_meltano() {
  check_python
  local wanted
  wanted="$(sed -n 's/^meltano==//p' "$ROOT/scripts/meltano-requirements.txt")"
  if [ -x "$MELTANO" ] && "$MELTANO" --version 2>/dev/null | grep -qF "version $wanted"; then
    return 0
  fi
  say "installing Meltano $wanted into .meltano-venv"
  [ -x "$ROOT/.meltano-venv/bin/python" ] || "$PYTHON" -m venv "$ROOT/.meltano-venv"
  "$ROOT/.meltano-venv/bin/python" -m pip install --quiet -r "$ROOT/scripts/meltano-requirements.txt"
}
