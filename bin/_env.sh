# Shared by bin/console and bin/test: find Python 3.12+, make .venv, install the project.
# Usage: . bin/_env.sh [extra]   (extra: "dev" installs the test tools too)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
  for candidate in python3.13 python3.12 /root/.pyenv/versions/3.12.1/bin/python3.12 \
                   /root/.pyenv/versions/3.13.0/bin/python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  echo "Appstrate needs Python 3.12 or newer; none found on PATH." >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  "$(find_python)" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
extra="${1:-}"
stamp=".venv/.installed${extra:+-$extra}"
# Reinstall only when pyproject.toml changed since the last install.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install --quiet -e ".${extra:+[$extra]}"
  touch "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
