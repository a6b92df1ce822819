#!/usr/bin/env bash
# The GPU path in one short run: training in fp32, bf16 and compiled, a one-process torchrun over
# NCCL, extraction and the torch generation path on CUDA; one table (benchmarks/gpu_check.py).
#
#   bash benchmarks/gpu_check.sh [--out DIR]   # on a GPU machine: under 8 minutes
#   bash benchmarks/gpu_check.sh --dry-run     # CPU, tiny sizes: what the test suite runs
set -euo pipefail
exec python "$(dirname "$0")/gpu_check.py" "$@"
