"""Benchmark: every bad input of the generated corpus through ``qaembed data prepare``.

Generates the bad-input corpus (``tests/data/bad_inputs/make_corpus.py``: Stack Exchange
dumps, Kaggle CSV pairs, ``ranked_qa.json``, canonical JSONL, Hugging Face datasets),
runs ``qaembed data prepare`` on every case strict and with ``--skip-bad`` (in this
process, exactly as ``qaembed.cli.main`` handles errors), and tabulates per source kind:
runs, clear errors (exit 2 with a message naming the file or option), successes
(exit 0), counted skips (bad records + answers counted in notes), tracebacks and silent
losses (answers written + counted < answers in the input), and the runs whose outcome
differs from what the case expects. The claim: **tracebacks = 0, silent losses = 0**.

Run::

    python benchmarks/bench_bad_inputs.py --results benchmarks/results/bad_inputs.md
    python benchmarks/bench_bad_inputs.py --huge   # the issue's 24 MB body instead of 10.5 MB
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data" / "bad_inputs"))
from _output import print_and_save  # noqa: E402
from make_corpus import make_corpus, run_case  # noqa: E402

COLUMNS = ("runs", "clear errors (exit 2)", "exit 0", "counted skips", "tracebacks", "silent losses", "unexpected outcome")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, help="also write the markdown table here")
    parser.add_argument("--huge", action="store_true", help="make the big-body case 24 million characters")
    args = parser.parse_args()

    started = time.perf_counter()
    rows: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))
    unexpected: list[str] = []
    with tempfile.TemporaryDirectory(prefix="qaembed-bad-inputs-") as tmp:
        root = Path(tmp) / "corpus"
        cases = make_corpus(root, huge=args.huge)
        for index, case in enumerate(cases):
            for skip in (False, True):
                outcome = run_case(root, case, skip=skip, out=Path(tmp) / f"out-{index}-{int(skip)}")
                for key in (case.kind, "all"):
                    row = rows[key]
                    row["runs"] += 1
                    row["clear errors (exit 2)"] += outcome.exit_code == 2 and not outcome.problems
                    row["exit 0"] += outcome.exit_code == 0
                    row["counted skips"] += outcome.counted
                    row["tracebacks"] += outcome.traceback or outcome.exit_code not in (0, 2)
                    row["silent losses"] += outcome.silent_loss
                    row["unexpected outcome"] += bool(outcome.problems)
                if outcome.problems:
                    unexpected.append(f"{case.name} ({'--skip-bad' if skip else 'strict'}): {'; '.join(outcome.problems)}")
    seconds = time.perf_counter() - started

    lines = [
        "# Bad inputs through `qaembed data prepare`",
        "",
        f"{len(cases)} generated bad inputs (`tests/data/bad_inputs/make_corpus.py`), each run strict and with "
        f"`--skip-bad` ({2 * len(cases)} runs); {seconds:.0f} s.",
        "",
        f"Command: `python benchmarks/bench_bad_inputs.py{' --huge' if args.huge else ''}`. "
        f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}. "
        f"Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        "| source | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for key in sorted(k for k in rows if k != "all") + ["all"]:
        label = "**all**" if key == "all" else key
        lines.append(f"| {label} | " + " | ".join(str(rows[key][c]) for c in COLUMNS) + " |")
    lines += ["", "Clear errors: exit 2 with `error: ...` naming the file (or the option). Counted skips: bad "
              "records skipped with `--skip-bad` plus answers counted in notes (empty after cleaning, orphans, answers "
              "of skipped questions). Silent loss: exit 0 with answers written + counted < answers in the input.", ""]
    if unexpected:
        lines += ["Unexpected outcomes:", ""] + [f"* {line}" for line in unexpected] + [""]
    print_and_save("\n".join(lines), args.results)
    sys.exit(1 if rows["all"]["tracebacks"] or rows["all"]["silent losses"] else 0)


if __name__ == "__main__":
    main()
