"""Check that PyLate's ``models.ColBERT`` loads qaembed's late-interaction models with the same token embeddings.

PyLate 1.6 pins sentence-transformers 5.3 and transformers <= 5.3, so it cannot live in qaembed's
environment; ``scripts/verify_pylate.sh`` builds a separate one and runs this file twice:

    python scripts/verify_pylate.py make  DIR   # qaembed's env: save a maxsim and a combined model + expected tokens
    python scripts/verify_pylate.py check DIR   # PyLate's env: load both with pylate.models.ColBERT, compare (<= 1e-5)

``make`` uses the default model (all-MiniLM-L6-v2) with a seeded 384 -> 128 token projection.
The result (max abs difference per model and text side, or the load error) is printed and written to
DIR/result.json; the exit status is 0 when the maxsim model loads and matches (the combined layout is
sentence-transformers 6's own and is only reported).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

QUERIES = ["How do I store hops for a long time?", "Is espresso stronger than drip coffee?"]
DOCS = ["Keep hops cold and away from oxygen: vacuum-sealed bags in a freezer keep them for a year or more.",
        "Per cup, drip coffee usually has more caffeine; espresso is only more concentrated.", "Yes."]


def make(out: Path) -> None:
    import numpy as np
    import torch

    from qaembed.late_interaction import add_token_projection, save_model, token_embeddings
    from qaembed.model import build_encoder

    torch.manual_seed(0)
    model = build_encoder("minilm", max_seq_length=128)
    add_token_projection(model, 128, option="scorer.projection_dim")
    model.eval()
    expected = {}
    for side, texts in (("query", QUERIES), ("document", DOCS)):
        features = model.tokenize(texts)
        with torch.no_grad():
            tokens, mask = token_embeddings(model(features))
        expected[side] = [tokens[i][mask[i]].numpy() for i in range(len(texts))]
    for scorer in ("maxsim", "combined"):
        save_model(model, out / scorer, scorer, query_length=32)
    np.savez(out / "expected.npz", **{f"{side}_{i}": array for side, arrays in expected.items()
                                      for i, array in enumerate(arrays)})
    print(f"saved {out / 'maxsim'}, {out / 'combined'} and expected token embeddings")


def check(out: Path) -> int:
    import numpy as np
    import pylate
    import sentence_transformers
    from pylate import models

    expected = np.load(out / "expected.npz")
    result: dict = {"pylate": pylate.__version__, "sentence_transformers": sentence_transformers.__version__}
    worst = 0.0
    for scorer in ("maxsim", "combined"):
        try:
            model = models.ColBERT(str(out / scorer), device="cpu")
        except Exception as exc:  # recorded: the combined layout is not expected to load in PyLate 1.6
            result[scorer] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"{scorer}: PyLate cannot load it: {type(exc).__name__}: {exc}")
            continue
        result[scorer] = {"modules": [type(m).__name__ for m in model]}
        for side, texts in (("query", QUERIES), ("document", DOCS)):
            encoded = model.encode(texts, is_query=side == "query", batch_size=8)
            diffs = []
            for i, array in enumerate(encoded):
                reference = expected[f"{side}_{i}"]
                if array.shape != reference.shape:
                    diffs.append(float("inf"))
                    print(f"{scorer} {side} {i}: shape {array.shape} != {reference.shape}")
                    continue
                diffs.append(float(np.abs(array - reference).max()))
            result[scorer][side] = max(diffs)
            worst = max(worst, max(diffs))
    # the maxsim layout is the one meant for PyLate; it must load and match
    result["ok"] = "error" not in result["maxsim"] and worst <= 1e-5
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "check"):
        sys.exit(__doc__)
    folder = Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    if sys.argv[1] == "make":
        make(folder)
    else:
        sys.exit(check(folder))
