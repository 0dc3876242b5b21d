"""Peak memory of ``qaembed data chunk`` on synthetic Markdown folders of growing size (bounded growth).

Run from the repository root::

    python benchmarks/bench_chunking_memory.py --sizes-mb 10 100 --results benchmarks/results/chunking_memory.md
    python benchmarks/bench_chunking_memory.py --sizes-mb 10 100 --distinct-sentences 50000   # memory, not encoder speed

For each size, writes a folder of Markdown files (50 KB each: headings and paragraphs of random
sentences, seeded; nearly every sentence distinct, the worst case for the sentence cache) and a
Q&A CSV naming one document in ten, then runs ``qaembed data chunk`` in a fresh process under
``/usr/bin/time -v`` and records peak RSS, wall time, MB/s and sentences/s. The encoder is a
randomly initialised 2-layer BERT (hidden size 32) saved as a sentence-transformers folder: the
point is memory, and with MiniLM on a CPU 100 MB would take hours (chunking speed is the
encoder's speed; see ``bench_chunking.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _output import print_and_save  # noqa: E402

WORDS = ("beer hops malt yeast lager stout barrel cork foam bottle coffee roast grind brew espresso water "
         "temperature time taste bitter sweet acid body aroma cold warm fresh stale store keep open glass").split()


def tiny_model(folder: Path) -> Path:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from qaembed.model import resolve_model

    if (folder / "modules.json").is_file():
        return folder
    import torch

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    torch.manual_seed(0)
    hf = folder.parent / (folder.name + "-hf")
    BertModel(config).save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    model = SentenceTransformer(modules=[Transformer(str(hf), max_seq_length=512), Pooling(32), Normalize()], device="cpu")
    model.save(str(folder))
    return folder


def write_corpus(folder: Path, megabytes: float, seed: int = 0, pool: int | None = None) -> tuple[int, Path]:
    """Documents of random sentences; ``pool``: draw them from that many distinct sentences (else all distinct)."""
    rng = random.Random(seed)

    def fresh_sentence() -> str:
        return " ".join(rng.choices(WORDS, k=rng.randint(6, 18))).capitalize() + "."

    sentence_pool = [fresh_sentence() for _ in range(pool)] if pool else None
    docs = folder / "docs"
    docs.mkdir(parents=True)
    target, written, number = int(megabytes * 1e6), 0, 0
    while written < target:
        parts = []
        size = 0
        while size < 50_000:
            if rng.random() < 0.1:
                parts.append(f"## {' '.join(rng.choices(WORDS, k=3)).title()}")
            count = rng.randint(2, 6)
            sentences = rng.choices(sentence_pool, k=count) if sentence_pool else [fresh_sentence() for _ in range(count)]
            parts.append(" ".join(sentences))
            size += len(parts[-1]) + 2
        text = "\n\n".join(parts) + "\n"
        (docs / f"doc{number:05d}.md").write_text(text, encoding="utf-8")
        written += len(text.encode())
        number += 1
    qa = folder / "qa.csv"
    with qa.open("w", encoding="utf-8") as fh:
        fh.write("question,answer,document\n")
        for i in range(0, number, 10):
            fh.write(f"How long does beer {i} keep?,It keeps cold.,doc{i:05d}.md\n")
    return number, qa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[10, 100])
    parser.add_argument("--work", type=Path, default=Path("benchmarks/_work/chunking_memory"))
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--distinct-sentences", type=int, default=None,
                        help="draw sentences from a pool of this many distinct ones: each is encoded once (the sentence "
                             "cache), so the run measures the pipeline's memory, not the encoder's speed")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    model = tiny_model(args.work / "tiny-model")
    rows = []
    pool_text = (f"sentences drawn from {args.distinct_sentences:,} distinct ones" if args.distinct_sentences
                 else "every sentence distinct (worst case for the sentence cache)")
    for megabytes in args.sizes_mb:
        with tempfile.TemporaryDirectory(dir=args.work) as tmp:
            folder = Path(tmp)
            documents, qa = write_corpus(folder, megabytes, pool=args.distinct_sentences)
            command = ["/usr/bin/time", "-v", sys.executable, "-m", "qaembed", "data", "chunk", str(folder / "docs"),
                       "--qa", str(qa), "--out", str(folder / "out"), "--model", str(model)]  # chunks up to 510 tokens: what the model reads whole
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                raise SystemExit(done.stderr[-3000:])
            peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
            wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", done.stderr).group(1)
            seconds = sum(float(part) * 60 ** i for i, part in enumerate(reversed(wall.split(":"))))
            stats = json.loads((folder / "out" / "stats.json").read_text())
            rows.append((megabytes, documents, stats["sentences"], stats["chunks"], peak_kb / 1024, seconds,
                         (folder / "out" / "sentences.sqlite").stat().st_size / 1e6))
    lines = ["# Chunking memory on synthetic Markdown", "",
             f"Command: `python benchmarks/bench_chunking_memory.py --sizes-mb {' '.join(f'{s:g}' for s in args.sizes_mb)}"
             f"{f' --distinct-sentences {args.distinct_sentences}' if args.distinct_sentences else ''}`. "
             f"{os.cpu_count()} CPUs; encoder: random 2-layer BERT (hidden 32); {pool_text}; documents chunked in groups of "
             "~4 M characters.", "",
             "| input MB | documents | sentences | chunks | peak RSS MB | wall s | MB/s | sentences/s | sentence cache MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for megabytes, documents, sentences, chunks, peak, seconds, cache_mb in rows:
        lines.append(f"| {megabytes:g} | {documents:,} | {sentences:,} | {chunks:,} | {peak:.0f} | {seconds:.0f} | "
                     f"{megabytes / seconds:.2f} | {sentences / seconds:,.0f} | {cache_mb:.0f} |")
    print_and_save("\n".join(lines) + "\n", args.results)


if __name__ == "__main__":
    main()
