#!/usr/bin/env bash
# Create .venv and install the project with its dev extra. Safe to run again: it only adds
# what is missing. Needs nothing but Python 3.11+.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check uv
fi
.venv/bin/uv pip install --quiet --python .venv/bin/python -e '.[dev]'
# Compile installed packages' bytecode once, here: otherwise a process whose environment sets
# PYTHONDONTWRITEBYTECODE (or cannot write .venv) compiles every module it imports, every time
# (about half the CPU of `airflow version` and of `datashare run`). Skips what is up to date.
.venv/bin/python -m compileall -q -j 0 .venv/lib/python*/site-packages >/dev/null 2>&1 || true
