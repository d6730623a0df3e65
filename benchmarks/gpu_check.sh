#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py) on a lent device, from the repository root:
#   bash benchmarks/gpu_check.sh           # writes benchmarks/results/gpu_check/gpu_check.json
#   bash benchmarks/gpu_check.sh --quick   # the CPU dry run, under the quick form's run folder
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout 300 python -m benchmarks gpu_check "${@:---full}"
