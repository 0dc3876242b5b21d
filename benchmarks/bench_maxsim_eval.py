"""MaxSim evaluation: throughput vs bare token encoding, peak memory at 10k vs 50k documents, ANN recall@100.

Run from the repository root (prints Markdown; ``--results FILE`` also writes it)::

    qaembed data prepare --out /tmp/se                       # the shared Stack Exchange sites
    python benchmarks/bench_maxsim_eval.py throughput --data /tmp/se --distractors dev --repeats 2
    python benchmarks/bench_maxsim_eval.py memory --docs 10000 50000
    python benchmarks/bench_maxsim_eval.py ann --data /tmp/se

* ``throughput``: the split's unique query and answer texts (plus ``--distractors``' answers) encoded
  with bare ``model.encode(output_value="token_embeddings")`` (the baseline), against the whole
  ``evaluate_model(..., scorer="maxsim")`` (encode into the fp16 store, exact MaxSim over the whole
  corpus, within-question and in-batch sections), alternating ``--repeats`` times after a warm-up;
  median texts/s and their ratio (issue 12's target: >= 0.9). Model: MiniLM + a seeded 384 -> 128
  token projection (what ``scorer: maxsim`` trains), ``--max-seq-length`` tokens.
* ``memory``: a synthetic store of N documents (random unit tokens, 16-80 tokens each, dim 128) and
  ``--queries`` queries of 32 tokens; exact MaxSim top-100 for every query in a fresh process per
  N; peak RSS (``VmHWM``, which counts pages of the memory-mapped store that were read) and peak
  anonymous RSS (sampled every 5 ms: what the search itself allocates) and the store's size.
* ``ann``: test questions against every answer of the prepared data (train, dev and test), MiniLM +
  projection; the exact MaxSim top-100 vs the FAISS token-ANN candidates at a few settings:
  recall@100 of the candidates, mean candidates per query, search seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import print_and_save  # noqa: E402


def _model(max_seq_length: int):
    import torch

    from qaembed.late_interaction import add_token_projection
    from qaembed.model import load_encoder

    torch.manual_seed(0)
    model = add_token_projection(load_encoder("minilm", device="cpu"), 128, option="projection")
    model.max_seq_length = max_seq_length
    return model


def throughput(args) -> list[str]:
    from qaembed.data.dataset import read_split
    from qaembed.evaluate import EvalConfig, evaluate_model
    from qaembed.records import question_text

    model = _model(args.max_seq_length)
    records = read_split(args.data, args.split)
    distractors = read_split(args.data, args.distractors) if args.distractors else []
    config = EvalConfig(scorer="maxsim", encode_batch_size=args.batch_size, query_length=32)
    queries = list(dict.fromkeys(question_text(r, config.query_mode) for r in records if r.answers))
    docs = list(dict.fromkeys(a.text for r in [*records, *distractors] for a in r.answers))
    texts = queries + docs

    def baseline() -> float:
        t0 = time.perf_counter()
        model.encode(queries, batch_size=args.batch_size, output_value="token_embeddings")
        model.encode(docs, batch_size=args.batch_size, output_value="token_embeddings")
        return len(texts) / (time.perf_counter() - t0)

    def evaluation() -> tuple[float, dict]:
        t0 = time.perf_counter()
        result = evaluate_model(model, records, config=config, distractors=distractors)
        return result.info["texts_encoded"] / (time.perf_counter() - t0), result.info

    baseline(), evaluation()  # warm-up
    base_rates, eval_rates = [], []
    for _ in range(args.repeats):
        base_rates.append(baseline())
        rate, info = evaluation()
        eval_rates.append(rate)
    base, ours = statistics.median(base_rates), statistics.median(eval_rates)
    return [
        f"| data | {args.data} ({args.split}{', distractors ' + args.distractors if args.distractors else ''}), "
        f"max_seq_length {args.max_seq_length}, query_length 32 |",
        f"| texts (unique queries + documents) | {len(queries)} + {len(docs)} "
        f"({info['maxsim']['stored_tokens']} stored document tokens, dim {info['maxsim']['token_dim']}) |",
        f"| bare `encode(output_value='token_embeddings')`, texts/s (median of {args.repeats}) | {base:.1f} |",
        f"| `evaluate_model(scorer='maxsim')`, exact, texts/s (median of {args.repeats}) | {ours:.1f} |",
        f"| ratio evaluate / encode | {ours / base:.3f} (samples: encode {[round(r, 1) for r in base_rates]}, "
        f"evaluate {[round(r, 1) for r in eval_rates]}) |",
    ]


def _memory_child(n_docs: int, n_queries: int, folder: str) -> None:
    """One measurement in this (fresh) process: prints a JSON line."""
    import numpy as np
    import torch

    from qaembed.evaluate.maxsim import TokenStore, exact_search, pad_tokens

    rng = np.random.default_rng(0)

    def encode(texts):
        out = []
        for _ in texts:
            tokens = rng.standard_normal((int(rng.integers(16, 81)), 128)).astype(np.float32)
            out.append(tokens / np.linalg.norm(tokens, axis=1, keepdims=True))
        return out

    peak = {"anon": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    peak["anon"] = max(peak["anon"], int(line.split()[1]))
            time.sleep(0.005)

    store = TokenStore.build(folder, [str(i) for i in range(n_docs)], encode, key=f"synthetic-{n_docs}",
                             slice_texts=2048)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    q_tok, q_mask = pad_tokens(encode(range(n_queries)), 32)
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    exact_search(q_tok, q_mask, store, np.arange(n_docs), 100)
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    hwm = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM:"))
    print(json.dumps({"docs": n_docs, "tokens": int(store.offsets[-1]), "store_mb": store.tokens.nbytes / 2**20,
                      "hwm_mb": hwm / 1024, "anon_peak_mb": peak["anon"] / 1024, "search_s": seconds}))


def memory(args) -> list[str]:
    rows = ["| documents | stored tokens | store file | peak RSS (VmHWM) | peak anonymous RSS | exact search |",
            "|---|---|---|---|---|---|"]
    for n_docs in args.docs:
        with tempfile.TemporaryDirectory() as folder:
            run = subprocess.run([sys.executable, __file__, "_memory_child", str(n_docs), str(args.queries), folder],
                                 capture_output=True, text=True, check=True)
        m = json.loads(run.stdout.strip().splitlines()[-1])
        rows.append(f"| {m['docs']:,} | {m['tokens']:,} | {m['store_mb']:.0f} MB | {m['hwm_mb']:.0f} MB | "
                    f"{m['anon_peak_mb']:.0f} MB | {m['search_s']:.1f} s ({args.queries} queries) |")
    return rows


def ann(args) -> list[str]:
    import numpy as np
    import torch

    from qaembed.data.dataset import read_split
    from qaembed.evaluate import EvalConfig
    from qaembed.evaluate.maxsim import ann_search, build_ranker, candidate_recall, exact_search
    from qaembed.records import question_text

    model = _model(args.max_seq_length)
    test = [r for r in read_split(args.data, "test") if r.answers]
    corpus = [a.text for split in ("test", "train", "dev") for r in read_split(args.data, split) for a in r.answers]
    config = EvalConfig(scorer="maxsim", query_length=32, encode_batch_size=args.batch_size)
    store_dir = Path(args.store or tempfile.mkdtemp())
    t0 = time.perf_counter()
    ranker = build_ranker(model, [question_text(r, "title_body") for r in test], corpus, config, store_dir=store_dir)
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, exact = exact_search(ranker.q_tok, ranker.q_mask, ranker.store, ranker.doc_rows, 100)
    exact_s = time.perf_counter() - t0
    rows = [f"| corpus | {len(corpus):,} answers ({int(ranker.store.offsets[-1]):,} tokens, dim {ranker.store.dim}); "
            f"{len(test)} test questions; encode {encode_s:.0f} s{' (store reused)' if not ranker.store.encoded else ''}"
            f"; exact MaxSim top-100 {exact_s:.1f} s |", "",
            "| ann_tokens | nprobe | nlist | recall@100 | mean candidates | candidates / corpus | ANN search + re-rank |",
            "|---|---|---|---|---|---|---|"]
    torch.manual_seed(0)
    for tokens, nprobe in ((8, 4), (16, 8), (32, 16), (64, 16)):
        t0 = time.perf_counter()
        result = ann_search(ranker.q_tok, ranker.q_mask, ranker.store, ranker.doc_rows, 100, ann_tokens=tokens,
                            nprobe=nprobe)
        seconds = time.perf_counter() - t0
        recall = float(np.mean(candidate_recall(exact, result.candidates)))
        rows.append(f"| {tokens} | {nprobe} | {result.info['nlist']} | {recall:.4f} | "
                    f"{result.info['mean_candidates']:.0f} | {result.info['mean_candidates'] / len(corpus):.2f} | "
                    f"{seconds:.1f} s |")
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_memory_child":
        _memory_child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("throughput", "memory", "ann"))
    parser.add_argument("--data", help="prepared dataset folder (throughput, ann)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--distractors", default=None)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--store", default=None, help="ann: token store folder to reuse between runs")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args()
    rows = {"throughput": throughput, "memory": memory, "ann": ann}[args.what](args)
    header = (f"{args.what}: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
              f"`python benchmarks/bench_maxsim_eval.py {' '.join(sys.argv[1:])}`\n")
    table = rows if args.what != "throughput" else ["| measure | value |", "|---|---|", *rows]
    print_and_save(header + "\n" + "\n".join(table) + "\n", args.results)


if __name__ == "__main__":
    main()
