"""Every case of the generated bad-input corpus through ``qaembed data prepare``, strict and ``--skip-bad``.

For each case (see ``bad_inputs/make_corpus.py``): exit 0 or 2 only (never a traceback),
the exit code the case expects, an error message that names the file (or the option),
and on success no silent loss (answers written + counted skips and notes >= answers in
the input; with ``--skip-bad`` the exact number of answers written).
"""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "bad_inputs"))
from make_corpus import make_corpus, run_case  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs")
    return root, make_corpus(root)


@pytest.mark.parametrize("skip", [False, True], ids=["strict", "skip-bad"])
def test_every_bad_input_is_a_clear_error_or_a_counted_skip(corpus, tmp_path, skip):
    root, cases = corpus
    assert len(cases) >= 100
    failures = []
    for index, case in enumerate(cases):
        outcome = run_case(root, case, skip=skip, out=tmp_path / f"out-{index}")
        if outcome.problems:
            failures.append(f"{case.name} ({case.what}): {'; '.join(outcome.problems)}\n{outcome.output[-1500:]}")
    assert not failures, "\n\n".join(failures)


def test_corpus_covers_every_source_kind(corpus):
    _, cases = corpus
    kinds = {case.kind for case in cases}
    assert {"Posts.xml", "Kaggle CSV", "ranked_qa.json", "JSONL"} <= kinds
    assert len({case.name for case in cases}) == len(cases)


@pytest.mark.parametrize("name", ["se_invalid_utf8_byte", "kg_unclosed_quote", "rq_score_nan", "jl_created_1e20"])
def test_real_command_line_exits_2_without_a_traceback(corpus, tmp_path, name):
    """The in-process runner mirrors ``qaembed.cli.main``; a few cases through the real entry point."""
    root, cases = corpus
    case = next(c for c in cases if c.name == name)
    proc = subprocess.run([sys.executable, "-m", "qaembed", "data", "prepare", str(root / case.source),
                           "--out", str(tmp_path / "out"), *case.args], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")
    assert case.source.split("/")[0] in proc.stderr
