#!/usr/bin/env bash
# Set everything up and run tonight's submission on the demo data: a SQLite database of
# synthetic programs (./datashare.db), local demo keys (./.datashare), and the local folder
# destinations ./out/demo, ./out/mo-dese-demo and ./out/nm-ececd-demo. Needs only Python
# 3.11+. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
export DATASHARE_DATABASE_URL="${DATASHARE_DATABASE_URL:-sqlite:///$PWD/datashare.db}"
DEMO_DATE=2026-11-27
.venv/bin/datashare demo seed
.venv/bin/datashare keys init-demo
.venv/bin/datashare run demo --date "$DEMO_DATE"           # Vermont: audit/evaluation agreement
.venv/bin/datashare run mo-dese-demo --date "$DEMO_DATE"   # Missouri: parental consent
.venv/bin/datashare run nm-ececd-demo --date "$DEMO_DATE"  # New Mexico: counts only, AIAN opt-ins
