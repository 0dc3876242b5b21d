"""The real runner's fairness on a tiny model: equal budget, same questions and order, same test, final weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qaembed.batching import build_strategy
from qaembed.data.dataset import read_split, write_jsonl_records
from qaembed.records import Answer, QARecord
from qaembed.report import build_report
from qaembed.suite.grid import GridEntry, SuiteConfig
from qaembed.suite.runner import TRAIN_QUESTIONS_FILE, read_status, run_suite

BUDGET = 120  # texts per run
BATCH = 6


def _record(index: int, n_answers: int) -> QARecord:
    answers = [Answer(id=f"f:{index}-{k}", text=f"answer {k} of {index} on topic {index % 7} " + "word " * (k + index % 5),
                      score=float(n_answers - k)) for k in range(n_answers)]
    return QARecord(id=f"f:{index}", title=f"question {index} about topic {index % 7}?", body="Some details.",
                    answers=answers)


@pytest.fixture(scope="module")
def fair_suite(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SuiteConfig]:
    root = tmp_path_factory.mktemp("fair")
    data = root / "data"
    records = [_record(i, 1 + i % 3) for i in range(90)]  # 1, 2 or 3 answers
    write_jsonl_records(data / "train.jsonl", records[:60])
    write_jsonl_records(data / "dev.jsonl", records[60:70])
    write_jsonl_records(data / "test.jsonl", records[70:])
    config = SuiteConfig(
        model=str(tiny_model_dir), data=str(data), seeds=[0], budget=BUDGET, budget_unit="texts", batch_size=BATCH,
        learning_rate=1e-3, max_seq_length=32, eval_every=None, train_questions=None, dev_questions=None,
        test_questions=15, keep_models=True,
        entries=[
            GridEntry(name="infonce_top", loss="infonce", strategy="infonce"),
            GridEntry(name="infonce_random", loss="infonce", strategy="infonce", strategy_options={"take_top": False}),
            GridEntry(name="listwise", loss="listwise", strategy="listwise"),
        ],
    )
    out = root / "suite"
    result = run_suite(config, out)
    assert not result.failed, [s.error for s in result.failed]
    return out, config


def test_every_run_spends_the_budget_within_one_batch(fair_suite):
    out, config = fair_suite
    data = Path(config.data[0])
    common = [r for r in read_split(data, "train") if len(r.answers) >= 2]
    for entry in config.entries:
        status = read_status(out / "runs" / entry.name / "seed0")
        strategy = build_strategy(entry.strategy, entry.strategy_options)
        largest = max(b.num_queries + b.num_docs for b in strategy.batches(common, BATCH, seed=0, drop_last=True))
        assert BUDGET <= status.texts < BUDGET + largest, entry.name
        assert status.tokens > status.texts and status.questions == BATCH * status.steps
    steps = {e.name: read_status(out / "runs" / e.name / "seed0").steps for e in config.entries}
    assert steps["listwise"] < steps["infonce_top"]  # more texts per question: fewer steps for the same budget


def test_every_entry_trains_on_the_common_questions_in_the_same_order(fair_suite):
    out, config = fair_suite
    listed = (out / TRAIN_QUESTIONS_FILE).read_text().split()
    assert listed == [r.id for r in read_split(Path(config.data[0]), "train") if len(r.answers) >= 2]
    for entry in config.entries:
        train_config = (out / "runs" / entry.name / "seed0" / "train" / "config.yaml").read_text()
        assert TRAIN_QUESTIONS_FILE in train_config
    top, random = (read_status(out / "runs" / name / "seed0") for name in ("infonce_top", "infonce_random"))
    assert top.question_order == random.question_order and top.questions == random.questions


def test_same_test_questions_final_weights_and_no_head_on_the_baseline(fair_suite):
    import pandas as pd
    from sentence_transformers import SentenceTransformer

    from qaembed.evaluate import EvalConfig, evaluate_model
    from qaembed.suite.runner import evaluation_records

    out, config = fair_suite
    baseline = pd.read_parquet(out / "runs" / "baseline" / "eval" / "per_question.parquet")
    assert len(baseline) == 15
    base_modules = json.loads((Path(config.model) / "modules.json").read_text())
    for entry in config.entries:
        run = out / "runs" / entry.name / "seed0"
        per_question = pd.read_parquet(run / "eval" / "per_question.parquet")
        assert list(per_question.index) == list(baseline.index)
        # the trained model has the base model's modules (no projection head), and the test
        # evaluation is of its final weights, not of the best dev checkpoint
        assert [m["type"] for m in json.loads((run / "train" / "model" / "modules.json").read_text())] == \
            [m["type"] for m in base_modules]
        final = SentenceTransformer(str(run / "train" / "model"), device="cpu")
        final.max_seq_length = config.max_seq_length
        evaluated, distractors = evaluation_records(config, Path(config.data[0]))
        again = evaluate_model(final, evaluated, distractors=distractors, config=EvalConfig(seed=0))
        summary = json.loads((run / "eval" / "summary.json").read_text())
        recorded = summary.get("summary", summary)
        assert again.summary["retrieval/graded_ndcg@10"] == pytest.approx(recorded["retrieval/graded_ndcg@10"])
    # the corpus holds every answer of the prepared data (train and dev answers as distractors)
    assert again.counts["retrieval/documents"] == sum(len(r.answers) for s in ("train", "dev", "test")
                                                        for r in read_split(Path(config.data[0]), s))


def test_report_shows_the_budget_and_the_question_set(fair_suite):
    out, _ = fair_suite
    markdown = build_report(out).markdown.read_text()
    assert "| steps | texts | tokens | questions |" in markdown
    assert "40 train questions, the same for every entry" in markdown
    assert "ranked against a corpus of 180 documents" in markdown  # every answer of the 90 questions
    assert "graded NDCG@10" in markdown.split("## Main metrics")[0]
    assert "This run (one seed per loss" in markdown
