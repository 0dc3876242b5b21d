"""qaembed ``train`` + ``evaluate`` against sentence-transformers' trainer + InformationRetrievalEvaluator, same work.

Run from the repository root (a prepared dataset from ``qaembed data prepare``)::

    python benchmarks/bench_vs_sentence_transformers.py --data DIR --out benchmarks/results/vs_st.md

The work, identical on both sides: one epoch of InfoNCE / MultipleNegativesRankingLoss (scale 20 =
temperature 0.05) on (question title + body, top answer) pairs of the train split, in-batch
negatives only, batch 16, max length 128, AdamW lr 2e-5 with 10 % linear warm-up, no
checkpoints, no dev evaluation (qaembed: ``training.dev_evaluation: false``), then retrieval on the
test split: its questions against all its answers (relevant: the question's own answers).
qaembed runs first, then sentence-transformers (``--st-first``: the other way round), each in this
process after one warm-up encode.
Reports wall time of training, of evaluation and of both, their ratio (target <= 1.0 for
qaembed / sentence-transformers), and the NDCG@10 of each model under both evaluators (equal
quality). The qaembed evaluation computes more (graded and binary metrics, within-question
ranking, in-batch accuracy) in the same pass; sentence-transformers' computes binary metrics.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from _output import print_and_save  # benchmarks/ is on sys.path when run as a script

from qaembed.data.dataset import read_split
from qaembed.evaluate import EvalConfig, evaluate_model
from qaembed.model import load_encoder, resolve_model
from qaembed.records import question_text
from qaembed.train import train
from qaembed.train.config import parse_config

BATCH, LENGTH, LR, TEMPERATURE = 16, 128, 2e-5, 0.05


def qaembed_run(data: Path, out: Path) -> tuple[float, float, Path, float]:
    config = parse_config({
        "model": {"base": "minilm", "max_seq_length": LENGTH},
        "data": {"dataset": str(data)},
        "strategy": {"name": "infonce"},
        "loss": {"name": "infonce", "options": {"temperature": TEMPERATURE}},
        "training": {"batch_size": BATCH, "epochs": 1, "lr": LR, "warmup_ratio": 0.1, "dev_evaluation": False,
                     "save_every": None, "log_every": 50, "seed": 42},
    })
    started = time.perf_counter()
    result = train(config, out, progress_bar=False)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    model = load_encoder(result.model_dir, device="cpu")
    model.max_seq_length = LENGTH
    ndcg = evaluate_model(model, read_split(data, "test"), config=EvalConfig()).summary["retrieval/ndcg@10"]
    return train_s, time.perf_counter() - started, Path(result.model_dir), ndcg


def st_evaluator(data: Path):
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    records = [r for r in read_split(data, "test") if r.answers]
    queries = {r.id: question_text(r, "title_body") for r in records}
    corpus, relevant = {}, {}
    for r in records:
        for index, answer in enumerate(r.answers):
            doc_id = answer.id or f"{r.id}#{index}"
            corpus[doc_id] = answer.text
            relevant.setdefault(r.id, set()).add(doc_id)
    return InformationRetrievalEvaluator(queries, corpus, relevant, name="test", write_csv=False)


def st_run(data: Path, out: Path) -> tuple[float, float, Path, float]:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    train_records = [r for r in read_split(data, "train") if r.answers]
    pairs = Dataset.from_dict({"anchor": [question_text(r, "title_body") for r in train_records],
                               "positive": [max(r.answers, key=lambda a: a.score).text for r in train_records]})
    started = time.perf_counter()
    model = SentenceTransformer(resolve_model("minilm"), device="cpu")
    model.max_seq_length = LENGTH
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out), num_train_epochs=1, per_device_train_batch_size=BATCH, learning_rate=LR,
        warmup_ratio=0.1, save_strategy="no", logging_steps=50, report_to="none", dataloader_drop_last=True,
        seed=42, use_cpu=True, disable_tqdm=True)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=pairs,
                                         loss=MultipleNegativesRankingLoss(model, scale=1 / TEMPERATURE))
    trainer.train()
    model.save(str(out / "model"))
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    scores = st_evaluator(data)(model)
    ndcg = next(v for k, v in scores.items() if k.endswith("ndcg@10"))
    return train_s, time.perf_counter() - started, out / "model", ndcg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--st-first", action="store_true", help="run sentence-transformers first (order effects)")
    args = parser.parse_args()
    load_encoder("minilm", device="cpu").encode(["warm-up"])
    with tempfile.TemporaryDirectory() as scratch:
        if args.st_first:
            s_train, s_eval, s_model, s_ndcg = st_run(args.data, Path(scratch) / "st")
        q_train, q_eval, q_model, q_ndcg = qaembed_run(args.data, Path(scratch) / "qaembed")
        if not args.st_first:
            s_train, s_eval, s_model, s_ndcg = st_run(args.data, Path(scratch) / "st")
        # each model under the other's evaluator too (quality check; not timed)
        q_by_st = next(v for k, v in st_evaluator(args.data)(load_encoder(str(q_model), device="cpu")).items()
                       if k.endswith("ndcg@10"))
        s_model_loaded = load_encoder(str(s_model), device="cpu")
        s_by_q = evaluate_model(s_model_loaded, read_split(args.data, "test"), config=EvalConfig()).summary[
            "retrieval/ndcg@10"]
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, CPU"
    lines = [
        f"# qaembed vs sentence-transformers: one epoch of InfoNCE + test retrieval ({args.data.name})", "",
        f"{datetime.now(timezone.utc):%Y-%m-%d}, {machine}; batch {BATCH}, max length {LENGTH}, lr {LR}, "
        f"no dev evaluation, no checkpoints; {'sentence-transformers' if args.st_first else 'qaembed'} ran first.", "",
        "| | qaembed | sentence-transformers | ratio |", "|---|---:|---:|---:|",
        f"| train s | {q_train:.1f} | {s_train:.1f} | {q_train / s_train:.2f} |",
        f"| test evaluation s | {q_eval:.1f} | {s_eval:.1f} | {q_eval / s_eval:.2f} |",
        f"| total s | {q_train + q_eval:.1f} | {s_train + s_eval:.1f} | {(q_train + q_eval) / (s_train + s_eval):.2f} |",
        f"| NDCG@10, qaembed evaluator | {q_ndcg:.4f} | {s_by_q:.4f} | |",
        f"| NDCG@10, ST evaluator | {q_by_st:.4f} | {s_ndcg:.4f} | |",
    ]
    print_and_save("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
