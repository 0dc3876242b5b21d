"""Benchmark: Stack Exchange dump ingestion throughput and peak memory vs dump size.

Generates a synthetic ``Posts.xml`` of each requested size (realistic rows: HTML bodies
with paragraphs, links, inline code and code blocks, entities; questions, answers (some
before their question), tag-wiki posts, orphan answers), then in a fresh subprocess per
measurement:

* ``baseline``: a bare ``lxml.etree.iterparse`` pass that clears each row (the floor:
  no cleaning, no grouping, no output);
* ``prepare``: ``qaembed.data.prepare.prepare_dataset`` on the site folder (stream,
  clean HTML, spill to SQLite, group, split, write JSONL + stats + manifest).

Reports MB/s (input bytes / wall time), the ratio to the baseline, and each process's
peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``): flat peak memory across sizes
is the claim being measured.

Run::

    python benchmarks/bench_parse.py --sizes-mb 250 1000 --workers 1 2 --results benchmarks/results/data.md
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape

SITE = "synthetic.stackexchange.com"
WORDS = ("the of and to in is that for it as with was on be by this are or an from at which but not have had "
         "stout lager yeast hops malt ferment barrel qubit gate circuit entangle measure lesson student proof "
         "coffee roast grind brew espresso model prompt token embedding gradient loss batch").split()


def _sentence(rng: random.Random, n: int) -> str:
    words = rng.choices(WORDS, k=n)
    return " ".join(words).capitalize() + "."


def _html_body(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 4)):
        text = " ".join(_sentence(rng, rng.randint(6, 20)) for _ in range(rng.randint(1, 4)))
        if rng.random() < 0.3:
            text += f' See <a href="https://example.com/{rng.randint(1, 10**6)}" rel="nofollow">this link</a>.'
        if rng.random() < 0.3:
            text += f" Use <code>{rng.choice(WORDS)}()</code> &amp; <em>check</em> it &gt; 0."
        parts.append(f"<p>{text}</p>")
        if rng.random() < 0.25:
            lines = [f"    {rng.choice(WORDS)} = {rng.randint(0, 99)}  # {rng.choice(WORDS)}" for _ in range(rng.randint(2, 8))]
            parts.append("<pre><code>def f():\n" + "\n".join(lines) + "\n</code></pre>")
        if rng.random() < 0.15:
            parts.append("<ul>" + "".join(f"<li>{_sentence(rng, 5)}</li>" for _ in range(3)) + "</ul>")
    return "\n\n".join(parts)


def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;", "\n": "&#xA;"})


def generate_site(folder: Path, size_bytes: int, seed: int = 0) -> dict[str, int]:
    """Write ``folder/Posts.xml`` of about ``size_bytes``; returns row counts."""
    rng = random.Random(seed)
    bodies = [_attr(_html_body(rng)) for _ in range(3000)]  # a pool keeps generation fast
    titles = [_attr(_sentence(rng, rng.randint(4, 12))[:-1] + "?") for _ in range(3000)]
    folder.mkdir(parents=True, exist_ok=True)
    counts = {"questions": 0, "answers": 0, "other": 0}
    next_id, open_questions, written = 1, [], 0
    with (folder / "Posts.xml").open("w", encoding="utf-8") as fh:
        fh.write('\ufeff<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        while written < size_bytes:
            kind = rng.random()
            created = f"20{rng.randint(10, 24):02d}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T12:00:00.000"
            if kind < 0.32 or not open_questions:
                tags = "".join(f"&lt;{rng.choice(WORDS)}&gt;" for _ in range(rng.randint(1, 4)))
                row = (f'  <row Id="{next_id}" PostTypeId="1" CreationDate="{created}" Score="{rng.randint(-3, 60)}" '
                       f'ViewCount="{rng.randint(10, 10**5)}" Body="{rng.choice(bodies)}" OwnerUserId="{rng.randint(1, 10**5)}" '
                       f'Title="{rng.choice(titles)}" Tags="{tags}" AnswerCount="2" ContentLicense="CC BY-SA 4.0" />\n')
                open_questions.append(next_id)
                open_questions = open_questions[-500:]
                counts["questions"] += 1
            elif kind < 0.97:
                parent = rng.choice(open_questions) if rng.random() < 0.995 else next_id + 10**9  # a few orphans
                row = (f'  <row Id="{next_id}" PostTypeId="2" ParentId="{parent}" CreationDate="{created}" '
                       f'Score="{rng.randint(-5, 120)}" Body="{rng.choice(bodies)}" OwnerUserId="{rng.randint(1, 10**5)}" '
                       f'ContentLicense="CC BY-SA 4.0" />\n')
                counts["answers"] += 1
            else:
                row = (f'  <row Id="{next_id}" PostTypeId="{rng.choice((4, 5))}" CreationDate="{created}" Score="0" '
                       f'Body="{rng.choice(bodies)}" />\n')
                counts["other"] += 1
            fh.write(row)
            written += len(row)
            next_id += 1
        fh.write("</posts>\n")
    return counts


def _child(mode: str, folder: str, out: str) -> None:
    """Run one measurement in this (fresh) process and print a JSON line."""
    start = time.perf_counter()
    if mode == "baseline":
        from lxml import etree

        rows = 0
        for _, element in etree.iterparse(str(Path(folder) / "Posts.xml"), events=("end",), tag="row", huge_tree=True):
            rows += 1
            element.clear(keep_tail=True)
            while element.getprevious() is not None:
                del element.getparent()[0]
        extra = {"rows": rows}
    else:
        from qaembed.data.prepare import prepare_dataset

        workers = int(mode.split(":")[1]) if ":" in mode else 1
        stats = prepare_dataset([folder], out, progress=False, workers=workers)
        extra = {"questions_written": sum(s["questions"] for s in stats["splits"].values()),
                 "orphans": stats["sources"][SITE]["notes"].get("orphan_answers", 0)}
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the worker processes (reaped at pool shutdown)
    peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
    # CPU-seconds are robust to other load on a shared box (they include imports)
    cpu_seconds = usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mb": peak_mb,
                      "children_peak_rss_mb": children.ru_maxrss / 1024, **extra}))


def _measure(mode: str, folder: Path, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(folder), str(out)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[250, 1000])
    parser.add_argument("--workdir", type=Path, default=None, help="Where to generate (default: a temp folder).")
    parser.add_argument("--results", type=Path, default=None, help="Append a markdown table here.")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="Worker counts of `prepare` to measure side by side (default 1 2).")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "FOLDER", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return

    workdir = Path(tempfile.mkdtemp(prefix="bench-parse-", dir=args.workdir))
    rows = []
    try:
        for size_mb in args.sizes_mb:
            folder = workdir / f"{size_mb}mb" / SITE
            t0 = time.perf_counter()
            counts = generate_site(folder, size_mb * 1_000_000)
            generation_s = time.perf_counter() - t0
            size = (folder / "Posts.xml").stat().st_size
            baseline = _measure("baseline", folder, workdir / "unused")
            prepared = {w: _measure(f"prepare:{w}", folder, workdir / f"{size_mb}mb" / "prepared")
                        for w in args.workers}
            row = {"size_mb": size / 1e6, **counts, "generation_s": generation_s, "baseline": baseline,
                   "prepare": prepared}
            rows.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(workdir / f"{size_mb}mb")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    lines = [
        f"### Stack Exchange dump ingestion ({datetime.now(timezone.utc):%Y-%m-%d}, 2-core CPU, no GPU, shared box)",
        "",
        f"Command: `python benchmarks/bench_parse.py --sizes-mb {' '.join(map(str, args.sizes_mb))} "
        f"--workers {' '.join(map(str, args.workers))}`",
        "",
        "| Posts.xml | rows (q / a / other) | baseline iterparse MB/s (wall) | workers | prepare MB/s (wall) "
        "| prepare MB per CPU-second | prepare / baseline (wall) | baseline peak RSS | prepare peak RSS (main / worker) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        base_speed = row["size_mb"] / row["baseline"]["seconds"]
        for workers, run in row["prepare"].items():
            prep_speed = row["size_mb"] / run["seconds"]
            lines.append(
                f"| {row['size_mb']:.0f} MB | {row['questions']:,} / {row['answers']:,} / {row['other']:,} "
                f"| {base_speed:.1f} | {workers} | {prep_speed:.2f} | {row['size_mb'] / run['cpu_seconds']:.2f} "
                f"| {prep_speed / base_speed:.3f} "
                f"| {row['baseline']['peak_rss_mb']:.0f} MB | {run['peak_rss_mb']:.0f} / {run['children_peak_rss_mb']:.0f} MB |"
            )
    table = "\n".join(lines) + "\n"
    print(table)
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with args.results.open("a", encoding="utf-8") as fh:
            fh.write(table + "\n")


if __name__ == "__main__":
    main()
