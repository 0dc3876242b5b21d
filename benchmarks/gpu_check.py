"""The GPU path end to end, measured in one run (what ``benchmarks/gpu_check.sh`` runs on a lent GPU).

Sections (each writes its numbers into ``OUT/gpu_check.json`` and a line into ``OUT/gpu_check.md``):

1. **Every loss in bf16** — ``train()`` of each default grid entry for ``--steps`` steps (batch
   ``--batch-size`` questions, ``--max-seq-length`` tokens, ``mixed_precision: bf16``): the median
   step time (from the per-step log; the first two steps are warm-up) against a bare
   forward + backward of the encoder on as many real texts, drawn to hold as many tokens as a
   step's (``matched_texts``), under the same autocast (target ≤ 1.10), and the peak GPU memory.
2. **GradCache memory** — peak GPU memory of one training run with an effective batch of
   ``8 × batch`` texts in GradCache chunks of ``batch`` texts against a plain batch of ``batch``
   texts (and the plain large batch, when it fits).
3. **Evaluation throughput** — ``evaluate_model`` texts/s against a bare ``model.encode`` of the
   same texts (target ≥ 0.9).
4. **A ``full``-preset subset** — ``qaembed suite --preset full`` restricted to ``--suite-losses``
   and one seed, timed, with ``nvidia-smi`` sampling GPU utilization every 0.5 s: the share of
   samples with the GPU busy (target ≥ 80 %), and the whole preset's time extrapolated from the
   measured per-run time (target ≤ 10 minutes).

``--smoke`` runs every section on the CPU with a few tiny steps (no bf16, no nvidia-smi), so the
script itself is checked where no GPU is lent; its numbers mean nothing.

Run (see gpu_check.sh for the device tool's command)::

    python benchmarks/gpu_check.py --model PATH --out OUT
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import torch


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _peak_reset() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_mib() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


class Report:
    def __init__(self, out: Path):
        self.out, self.data, self.lines = out, {}, []
        out.mkdir(parents=True, exist_ok=True)

    def add(self, key: str, value, line: str) -> None:
        self.data[key] = value
        self.lines.append(line)
        print(line, flush=True)
        self.save()

    def save(self) -> None:
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        (self.out / "gpu_check.md").write_text("\n".join(self.lines) + "\n")


def environment(report: Report) -> None:
    info = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    report.add("environment", info, f"# GPU check {info['date']}\n\n{info['gpu'] or 'no GPU (smoke run)'}, "
               f"torch {info['torch']}, CUDA {info['cuda']}, Python {info['python']}\n")


def _train_config(args, data: Path, entry, *, steps: int, batch_size: int, mini_batch_size: int | None = None) -> dict:
    return {
        "model": {"base": args.model, "max_seq_length": args.max_seq_length},
        "data": {"dataset": str(data)},
        "strategy": {"name": entry.strategy, "options": entry.strategy_options},
        "loss": {"name": entry.loss, "options": entry.loss_options},
        "training": {"batch_size": batch_size, "mini_batch_size": mini_batch_size, "max_steps": steps,
                     "lr": 2e-5, "log_every": 1, "save_every": None, "seed": 0,
                     "mixed_precision": "no" if args.smoke else "bf16"},
    }


def _step_seconds(run_dir: Path) -> tuple[list[float], list[int], list[int]]:
    """Per-step wall seconds, texts and tokens from the run's per-step log (log_every 1)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in records if "loss" in r and "texts_per_s" in r]
    start = [{"texts": 0, "tokens": 0}] + steps[:-1]
    texts = [b["texts"] - a["texts"] for a, b in zip(start, steps)]
    tokens = [b.get("tokens", 0) - a.get("tokens", 0) for a, b in zip(start, steps)]
    return [t / r["texts_per_s"] for t, r in zip(texts, steps)], texts, tokens


def matched_texts(pool: list[str], lengths: list[int], n: int, tokens: int, tries: int = 400) -> list[str]:
    """``n`` texts of ``pool`` whose token count (``lengths``, truncated as the model does) is closest to ``tokens``
    (seeded draws): the bare pass then encodes as much text as a training step did, not just as many texts."""
    import random

    rng = random.Random(0)
    best, best_gap = None, None
    for _ in range(tries):
        picked = rng.sample(range(len(pool)), n)
        gap = abs(sum(lengths[i] for i in picked) - tokens)
        if best_gap is None or gap < best_gap:
            best, best_gap = picked, gap
    return [pool[i] for i in best]


def bare_forward_backward(args, texts: list[str], repeats: int = 5) -> float:
    """Median seconds of the encoder's forward + backward of ``embeddings.sum()`` on ``texts``."""
    from sentence_transformers import SentenceTransformer

    device = "cpu" if args.smoke else "cuda"
    model = SentenceTransformer(args.model, device=device)
    model.max_seq_length = args.max_seq_length
    model.train()
    features = (model.preprocess if hasattr(model, "preprocess") else model.tokenize)(texts)
    features = {k: v.to(device) for k, v in features.items() if isinstance(v, torch.Tensor)}
    times = []
    for i in range(repeats + 2):
        _sync()
        start = time.perf_counter()
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=not args.smoke):
            embeddings = model(features)["sentence_embedding"]
        embeddings.float().sum().backward()
        model.zero_grad(set_to_none=True)
        _sync()
        if i >= 2:
            times.append(time.perf_counter() - start)
    del model
    return statistics.median(times)


def losses_in_bf16(args, report: Report, data: Path, work: Path) -> None:
    from transformers import AutoTokenizer

    from qaembed.data.dataset import read_split
    from qaembed.records import question_text
    from qaembed.suite.grid import default_entries
    from qaembed.train import train
    from qaembed.train.config import parse_config

    records = read_split(data, "train")
    pool = [question_text(r) for r in records] + [a.text for r in records for a in r.answers]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    lengths = [min(len(ids), args.max_seq_length) for ids in tokenizer(pool, truncation=False)["input_ids"]]
    rows = []
    for entry in default_entries():
        if args.only_losses and entry.name not in args.only_losses:
            continue
        run = work / "losses" / entry.name
        shutil.rmtree(run, ignore_errors=True)
        _peak_reset()
        train(parse_config(_train_config(args, data, entry, steps=args.steps, batch_size=args.batch_size)), run,
              progress_bar=False)
        seconds, texts, tokens = _step_seconds(run)
        step = statistics.median(seconds[2:] or seconds)
        n_texts, n_tokens = int(statistics.median(texts)), int(statistics.median(tokens))
        bare_texts = matched_texts(pool, lengths, n_texts, n_tokens)
        bare = bare_forward_backward(args, bare_texts)
        rows.append({"loss": entry.name, "step_s": step, "bare_s": bare, "ratio": step / bare, "texts": n_texts,
                     "tokens": n_tokens, "bare_tokens": sum(lengths[pool.index(t)] for t in bare_texts),
                     "peak_mib": _peak_mib()})
        print(rows[-1], flush=True)
    table = ["| entry | texts/step | tokens/step (bare) | step s | bare fwd+bwd s | ratio (≤ 1.10) | peak GPU MiB |",
             "|---|---|---|---|---|---|---|"]
    table += [f"| {r['loss']} | {r['texts']} | {r['tokens']} ({r['bare_tokens']}) | {r['step_s']:.4f} | "
              f"{r['bare_s']:.4f} | {r['ratio']:.3f} | {r['peak_mib'] or 0:.0f} |" for r in rows]
    report.add("losses", rows, f"## 1. Every loss, bf16, batch {args.batch_size}, length {args.max_seq_length}\n\n"
               + "\n".join(table) + "\n")


def gradcache_memory(args, report: Report, data: Path, work: Path) -> None:
    from qaembed.suite.grid import default_entries
    from qaembed.train import train
    from qaembed.train.config import parse_config

    entry = next(e for e in default_entries() if e.name == "infonce")
    small, large = args.batch_size, args.batch_size * 8
    result = {}
    for label, batch, chunk in (("plain_small", small, None), ("gradcache_large", large, 2 * small),
                                ("plain_large", large, None)):
        run = work / "gradcache" / label
        shutil.rmtree(run, ignore_errors=True)
        _peak_reset()
        try:
            train(parse_config(_train_config(args, data, entry, steps=3, batch_size=batch, mini_batch_size=chunk)),
                  run, progress_bar=False)
            result[label] = _peak_mib()
        except torch.cuda.OutOfMemoryError:
            result[label] = "out of memory"
    ratio = (result["gradcache_large"] / result["plain_small"]
             if isinstance(result.get("gradcache_large"), float) and result.get("plain_small") else None)
    report.add("gradcache", {**result, "ratio": ratio},
               f"## 2. GradCache memory (InfoNCE, {large} questions in chunks of {2 * small} texts vs {small} "
               f"questions plain)\n\npeak MiB: plain {result['plain_small']}, GradCache {result['gradcache_large']}, "
               f"plain large {result['plain_large']}; GradCache / plain small = "
               f"{ratio if ratio is None else round(ratio, 3)}\n")


def eval_throughput(args, report: Report, data: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from qaembed.data.dataset import read_split
    from qaembed.evaluate.qa import EvalConfig, evaluate_model
    from qaembed.records import question_text

    device = "cpu" if args.smoke else "cuda"
    model = SentenceTransformer(args.model, device=device)
    model.max_seq_length = args.max_seq_length
    records = [r for r in read_split(data, "test") if r.answers]
    if args.smoke:
        records = records[:20]
    texts = list(dict.fromkeys([question_text(r) for r in records] + [a.text for r in records for a in r.answers]))
    rates = {"evaluate_model": [], "bare_encode": []}
    for _ in range(3):
        _sync()
        start = time.perf_counter()
        model.encode(texts, batch_size=args.encode_batch_size, convert_to_numpy=True, normalize_embeddings=True)
        _sync()
        rates["bare_encode"].append(len(texts) / (time.perf_counter() - start))
        _sync()
        start = time.perf_counter()
        evaluate_model(model, records, config=EvalConfig(encode_batch_size=args.encode_batch_size, show_progress=False))
        _sync()
        rates["evaluate_model"].append(len(texts) / (time.perf_counter() - start))
    medians = {k: statistics.median(v) for k, v in rates.items()}
    ratio = medians["evaluate_model"] / medians["bare_encode"]
    report.add("eval", {**medians, "ratio": ratio, "texts": len(texts)},
               f"## 3. Evaluation throughput ({len(texts)} texts, batch {args.encode_batch_size})\n\n"
               f"evaluate_model {medians['evaluate_model']:.0f} texts/s vs bare encode "
               f"{medians['bare_encode']:.0f} texts/s: ratio {ratio:.3f} (≥ 0.9)\n")


class _Utilization(threading.Thread):
    """Samples ``nvidia-smi``'s GPU utilization every 0.5 s until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[int] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        if shutil.which("nvidia-smi") is None:
            return
        while not self._stop_event.is_set():
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True).stdout.split()
            if out and out[0].isdigit():
                self.samples.append(int(out[0]))
            self._stop_event.wait(0.5)

    def stop(self) -> list[int]:
        self._stop_event.set()
        self.join()
        return self.samples


def full_preset_subset(args, report: Report, work: Path) -> None:
    from qaembed.suite.grid import PRESETS

    out = work / "suite"
    shutil.rmtree(out, ignore_errors=True)
    config = work / "suite.yaml"
    smoke = ("budget: 48\nbatch_size: 4\nmax_seq_length: 32\ntrain_questions: 40\ndev_questions: 8\n"
             "test_questions: 12\ndistractor_questions: 12\nmine_negatives: false\neval_every: null\nentries:\n"
             "  - {name: infonce, loss: infonce, strategy: hard_negative}\n"
             "  - {name: listwise, loss: listwise, strategy: listwise}\n")  # no mining on a CPU
    config.write_text("preset: full\n" + (smoke if args.smoke else ""))
    command = [sys.executable, "-m", "qaembed", "suite", "--config", str(config), "--model", args.model,
               "--losses", ",".join(args.suite_losses), "--seeds", "1", "--out", str(out)]
    sampler = _Utilization()
    sampler.start()
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    samples = sampler.stop()
    (work / "suite.log").write_text(proc.stdout + proc.stderr)
    runs = 1 + len(args.suite_losses)  # the baseline and one seed of each loss
    full_runs = len(PRESETS["full"].entries) * len(PRESETS["full"].seeds)
    busy = sum(s > 0 for s in samples) / len(samples) if samples else None
    estimate = wall / runs * (full_runs + 1) if proc.returncode == 0 else None
    failed = "" if proc.returncode == 0 else "\n\nthe suite failed:\n\n    " + "\n    ".join(
        (proc.stdout + proc.stderr).strip().splitlines()[-8:])
    report.add("suite", {"command": " ".join(command), "returncode": proc.returncode, "wall_s": wall, "runs": runs,
                         "gpu_busy_share": busy, "mean_utilization": statistics.mean(samples) if samples else None,
                         "full_preset_runs": full_runs, "full_preset_estimate_s": estimate},
               f"## 4. `full` preset subset ({', '.join(args.suite_losses)}, seed 0, plus the baseline)\n\n"
               f"exit {proc.returncode}, {wall:.0f} s wall for {runs} runs; GPU busy in "
               f"{'n/a' if busy is None else f'{busy:.0%}'} of the samples (≥ 80 %); the whole preset "
               f"({full_runs} runs + baseline) extrapolates to "
               f"{'n/a' if estimate is None else f'{estimate / 60:.1f} min'} (≤ 10 min){failed}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a sentence-transformers model folder (MiniLM)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/qaembed-gpu-check"))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--encode-batch-size", type=int, default=256)
    parser.add_argument("--only-losses", nargs="*", default=None, help="grid entries of section 1 (default: all)")
    parser.add_argument("--suite-losses", nargs="+", default=["infonce", "listwise"])
    parser.add_argument("--sections", nargs="+", default=["losses", "gradcache", "eval", "suite"])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: checks the script, not the GPU")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.batch_size, args.max_seq_length, args.encode_batch_size = 3, 4, 32, 32
    elif not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU visible (use --smoke to check the script on a CPU)")

    from qaembed.data.prepare import prepare_dataset

    report = Report(args.out)
    environment(report)
    data = args.work / "data"
    if not (data / "manifest.json").is_file():
        prepare_dataset(None, data, progress=False, overwrite=True)  # the shared sites, else the embedded sample
    sections = {"losses": lambda: losses_in_bf16(args, report, data, args.work),
                "gradcache": lambda: gradcache_memory(args, report, data, args.work),
                "eval": lambda: eval_throughput(args, report, data),
                "suite": lambda: full_preset_subset(args, report, args.work)}
    for name in args.sections:
        started = time.perf_counter()
        sections[name]()
        print(f"[{name}: {time.perf_counter() - started:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
