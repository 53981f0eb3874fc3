#!/usr/bin/env bash
# The modern-cell table (benchmarks/modern.py) on one GPU, as one prepared run: JSON to $OUT.
#
# From the repository root on a machine with JAX for CUDA (no network needed; the peers,
# recurrentgemma 1.0.1 and mlstm-kernels 2.0.6, are timed where installed, else their rows
# say "not installed"):
#
#   OUT=/some/folder bash benchmarks/modern_gpu.sh
#
# Budget: under 8 minutes on one H100/H200. The timing table gets 330 s, the memory table
# 90 s; each step is cut by `timeout` so that a slow one cannot eat the other's time, and the
# JSON of a finished step is kept.
set -u
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
export XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/modern-gpu-device.txt" 2>&1
python3 -c "import jax; print(jax.__version__, jax.devices())" >> "$OUT/modern-gpu-device.txt" 2>&1
timeout 330 python3 benchmarks/modern.py --rounds 7 --chunks 32,128 \
  --json "$OUT/modern-gpu.json" 2>&1 | tee "$OUT/modern-gpu.log"
timeout 90 python3 benchmarks/modern.py --memory-only --memory-steps 1024,4096,16384 \
  --json "$OUT/modern-gpu-memory.json" 2>&1 | tee "$OUT/modern-gpu-memory.log"
