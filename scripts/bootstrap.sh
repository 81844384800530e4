#!/usr/bin/env bash
# Set up .venv with every package (editable), torch (CPU build) and the dev tools, at the versions
# pinned in constraints.txt (the set CI tests). Idempotent: it reinstalls only when requirements.txt,
# constraints.txt or a package's pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.evspan-installed
want="$(cat requirements.txt constraints.txt packages/*/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt -c constraints.txt
  echo "$want" > "$stamp"
fi
echo "evspan environment ready: $(.venv/bin/python -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__}")')"
