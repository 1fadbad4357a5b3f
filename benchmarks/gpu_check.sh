#!/usr/bin/env bash
# The GPU check (benchmarks/README.md): about 5 minutes on one H100/H200, writing
# benchmarks/results-gpu-<date>.json and the rows for RESULTS.md beside it (.md). `--smoke` tests it on a CPU.
# It needs only torch, transformers, numpy and safetensors: the library is read from lib/, nothing installed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="lib:benchmarks${PYTHONPATH:+:$PYTHONPATH}"
export STYLEPROBE_CACHE="${STYLEPROBE_CACHE:-build/cache}"
export TOKENIZERS_PARALLELISM=false
exec "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
