#!/usr/bin/env bash
# Does PyLate's models.ColBERT load qaembed's maxsim/combined models with the same token embeddings?
# Builds PyLate 1.6's own environment beside qaembed's (it pins sentence-transformers 5.3, transformers <= 5.3):
# a venv that reuses the system's torch/numpy (--system-site-packages) and pins only what PyLate needs.
# Usage: scripts/verify_pylate.sh [WORK_DIR]     (run from the repository root; qaembed importable in `python`)
set -euo pipefail
work="${1:-/tmp/qaembed-pylate-check}"
env="$work/env"
mkdir -p "$work"
python scripts/verify_pylate.py make "$work/models"
if [ ! -x "$env/bin/python" ]; then
  python -m venv --system-site-packages "$env"
  "$env/bin/pip" install -q --no-deps pylate==1.6.0 sentence-transformers==5.3.0 transformers==5.3.0 \
    "tokenizers>=0.22,<=0.23.0" "huggingface-hub>=1.3,<2" ujson
fi
cd "$work"  # not the repository: PyLate's env must not import this checkout's qaembed
"$env/bin/python" "$OLDPWD/scripts/verify_pylate.py" check "$work/models"
