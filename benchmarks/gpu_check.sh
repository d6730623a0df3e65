#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py) on a lent device, from the repository root:
#   bash benchmarks/gpu_check.sh [--dry-run]
# writes benchmarks/results/overhead/gpu_check.json (the dry run: gpu_check_dry_run.json).
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results/overhead/gpu_check.json
case "${1:-}" in --dry-run) out=benchmarks/results/overhead/gpu_check_dry_run.json ;; esac
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 300 python benchmarks/gpu_check.py "$@" --out "$out"
