#!/usr/bin/env bash
# The GPU path end to end on a lent GPU, in one command of at most ~8 minutes (benchmarks/gpu_check.py:
# every loss in bf16 vs a bare forward+backward, GradCache memory, eval throughput vs bare encode, a
# `full`-preset subset with GPU utilization sampled). Results: $OUT/gpu_check.{md,json} (copy them to
# benchmarks/results/ and the summary rows to benchmarks/RESULTS.md, with the GPU name and date).
#
# Here, once:      bash benchmarks/gpu_pack.sh
# On the device:   run(command="bash benchmarks/gpu_check.sh", carry=[".gpu"], timeout_s=560)
# Extra arguments go to gpu_check.py (e.g. --sections losses eval, --only-losses infonce listwise).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .gpu/model ] || { echo "gpu_check: no .gpu/model; run benchmarks/gpu_pack.sh here first and carry .gpu" >&2; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl
export PYTHONPATH="$PWD/src:/tmp/site" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT="${OUT:-benchmarks/results/gpu}"
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
python3 - <<'PY'
from sentence_transformers import SentenceTransformer

model = SentenceTransformer(".gpu/model", device="cpu")
model.float().save("/tmp/minilm-fp32")  # train from fp32 weights (the fp16 copy only travels)
PY
set -o pipefail
timeout 480 python3 benchmarks/gpu_check.py --model /tmp/minilm-fp32 --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
