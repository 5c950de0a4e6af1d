# Shared by bin/console and bin/test: find Python 3.12+, make .venv, install the project.
# Usage: . bin/_env.sh [extra]   (extra: "dev" installs the test tools too)
# APPSTRATE_VENV=/path/to/venv uses an existing virtualenv as it is and installs nothing
# (the quickstart test reuses the repository's .venv this way).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
  for candidate in python3.12 python3.13 /root/.pyenv/versions/3.12.1/bin/python3.12 \
                   /root/.pyenv/versions/3.13.0/bin/python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  echo "Appstrate needs Python 3.12 or newer; none found on PATH." >&2
  echo "Install one (e.g. apt-get install python3.12 or pyenv install 3.12) and retry." >&2
  return 1
}

if [ -n "${APPSTRATE_VENV:-}" ]; then
  VENV="$(cd "$APPSTRATE_VENV" && pwd)"
  [ -x "$VENV/bin/python" ] || { echo "APPSTRATE_VENV=$VENV has no bin/python" >&2; exit 1; }
else
  VENV="$ROOT/.venv"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating the virtualenv in .venv ..."
    python="$(find_python)"
    # The pip that comes with Python 3.12 installs this project as it is: upgrading it first
    # cost most of a minute on a fresh machine for nothing.
    "$python" -m venv "$VENV"
  fi
  extra="${1:-}"
  stamp="$VENV/.installed${extra:+-$extra}"
  # Reinstall only when pyproject.toml changed since the last install.
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "Installing Appstrate${extra:+ with its $extra tools} into .venv (first run: a few minutes) ..."
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -e ".${extra:+[$extra]}"
    touch "$stamp"
  fi
fi
export PATH="$VENV/bin:$PATH"
