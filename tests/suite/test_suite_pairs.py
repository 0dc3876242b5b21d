"""The suite on duplicate-question pair data: pair grid, pair evaluation, AP/F1 bootstrap, report."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from qaembed.errors import ConfigError
from qaembed.report import build_report
from qaembed.suite.grid import GridEntry, build_suite_config, pair_entries
from qaembed.suite.runner import read_status, run_suite


def test_pair_data_gets_the_pair_grid_and_keeps_a_files_own_entries(tiny_pair_dataset, tmp_path):
    config = build_suite_config(preset="quick", overrides={"data": str(tiny_pair_dataset)})
    assert [e.name for e in config.entries] == ["infonce", "cosine_pair", "pair_bce", "multitask"]
    assert {e.strategy for e in config.entries} == {"pairs"}
    file = tmp_path / "suite.yaml"
    file.write_text("entries:\n  - {name: mine, loss: infonce, strategy: pairs}\n")
    assert [e.name for e in build_suite_config(file=file, overrides={"data": str(tiny_pair_dataset)}).entries] == ["mine"]
    assert "listwise" in [e.name for e in build_suite_config(preset="quick").entries]  # Q&A default unchanged


def test_a_q_and_a_entry_on_pair_data_fails_before_any_run(tiny_pair_dataset, tiny_dataset, tmp_path):
    config = build_suite_config(preset="quick", overrides={"data": str(tiny_pair_dataset)})
    config = config.model_copy(update={"entries": [GridEntry(name="lw", loss="listwise", strategy="listwise")]})
    with pytest.raises(ConfigError, match=r"suite entry 'lw': strategy 'listwise' batches Q&A records.*pairs"):
        run_suite(config, tmp_path / "a")
    assert not (tmp_path / "a" / "runs").exists()
    qa = build_suite_config(preset="quick", overrides={"data": str(tiny_dataset)})
    qa = qa.model_copy(update={"entries": pair_entries()[:1]})
    with pytest.raises(ConfigError, match=r"strategy 'pairs' batches duplicate-question pairs, but the data is Q&A"):
        run_suite(qa, tmp_path / "b")


def test_pair_suite_trains_evaluates_and_reports_ap_with_seed_aware_intervals(tiny_model_dir, tiny_pair_dataset,
                                                                              tmp_path):
    entries = [e for e in pair_entries() if e.name in ("infonce", "multitask")]
    config = build_suite_config(preset="quick", overrides={
        "data": str(tiny_pair_dataset), "model": str(tiny_model_dir), "seeds": [0, 1]})
    config = config.model_copy(update={"entries": entries, "budget": 3, "budget_unit": "steps", "batch_size": 6,
                                       "max_seq_length": 32, "eval_every": 2, "map_points": 30})
    out = tmp_path / "suite"
    result = run_suite(config, out)
    assert [s.status for s in result.statuses] == ["ok"] * 5, [s.error for s in result.statuses]
    suite = json.loads((out / "suite.json").read_text())
    n_test = json.loads((tiny_pair_dataset / "manifest.json").read_text())["files"]["test"]["pairs"]
    assert suite["data"]["kind"] == "pairs" and suite["data"]["counts"]["test"] == n_test
    assert "train pairs" in suite["data"]["train_questions"]["description"]
    run_ids = ["baseline", "infonce/seed0", "infonce/seed1", "multitask/seed0", "multitask/seed1"]
    queries, pair_ids = set(), set()
    for run_id in run_ids:
        eval_dir = out / "runs" / run_id / "eval"
        queries.add(tuple(pd.read_parquet(eval_dir / "per_question.parquet").index))
        per_pair = pd.read_parquet(eval_dir / "per_pair.parquet")
        pair_ids.add(tuple(per_pair.index))
        assert {"score", "label", "predicted_at_f1_threshold"} <= set(per_pair.columns)
    assert len(queries) == 1 and len(pair_ids) == 1  # the same questions and pairs for every run
    status = read_status(out / "runs" / "infonce" / "seed1")
    assert status.steps == 3 and 0 <= status.summary["retrieval/mrr@10"] <= 1
    assert "classification/average_precision" in status.summary
    curve = [json.loads(line) for line in (out / "runs/infonce/seed0/train/metrics.jsonl").open()]
    assert [r["step"] for r in curve if "dev/retrieval/mrr@10" in r] == [0, 2, 3]

    paths = build_report(out)
    markdown = paths.markdown.read_text()
    assert markdown.startswith("# Loss comparison on duplicate-question retrieval")
    assert "MRR@10 [95% CI]" in markdown and "graded NDCG" not in markdown
    assert "Pair classification" in markdown and "resamples seeds and then test pairs" in markdown
    results = json.loads(paths.json.read_text())
    rows = results["pair_classification"]["rows"]
    assert set(rows) == {"baseline", "infonce", "multitask"}
    for label, metrics in rows.items():
        ap = metrics["average_precision"]
        assert ap["low"] <= ap["mean"] <= ap["high"]
        assert ap["n_seeds"] == (1 if label == "baseline" else 2) and ap["n_pairs"] == n_test
        assert (ap["difference"] is None) == (label == "baseline")
    # the AP of a row is the mean over its seeds of each run's own AP (summary.json of the run)
    seeds = [read_status(out / "runs" / "multitask" / f"seed{k}").summary["classification/average_precision"]
             for k in (0, 1)]
    assert rows["multitask"]["average_precision"]["mean"] == pytest.approx(np.mean(seeds), rel=1e-12)
    # embedding maps: base vs the best loss on the stored bounded sample (or the reason they are skipped)
    assert "## Embedding maps" in markdown
    if importlib.util.find_spec("umap") is not None:
        sidecar = json.loads((out / "plots" / "maps" / "maps.json").read_text())
        assert sidecar["sample"]["points"] <= 30 and sidecar["best"]["label"] in ("infonce", "multitask")
        assert sorted(sidecar["models"]) == sorted(["base", f"best_{sidecar['best']['label']}"])
        assert "plots/maps/base.png" in markdown
    import qaembed.embedding_maps as maps

    original, maps.umap_available = maps.umap_available, lambda: False
    try:
        assert "umap-learn is not installed (pip install 'qaembed[maps]'" in build_report(out).markdown.read_text()
    finally:
        maps.umap_available = original
    main = {r["label"]: r for r in results["losses"]}
    assert main["infonce"]["intervals"]["retrieval/mrr@10"]["n_seeds"] == 2
    assert "retrieval/mrr@10" in main["infonce"]["vs_baseline"]


def test_weighted_average_precision_equals_sklearn_on_resamples():
    from sklearn.metrics import average_precision_score

    from qaembed.suite.stats import weighted_average_precision

    rng = np.random.default_rng(0)
    scores = np.round(rng.uniform(size=200), 2)  # ties included
    labels = (rng.uniform(size=200) < 0.4).astype(np.int64)
    weights = rng.multinomial(200, np.full(200, 1 / 200), size=6).astype(np.float64)
    ours = weighted_average_precision(scores, labels, weights)
    for row, w in zip(ours, weights):
        assert row == pytest.approx(average_precision_score(labels, scores, sample_weight=w), abs=1e-12)
        repeated = w.astype(np.int64)
        assert row == pytest.approx(average_precision_score(np.repeat(labels, repeated), np.repeat(scores, repeated)),
                                    abs=1e-12)


def test_pair_bootstrap_resamples_seeds_then_pairs_and_pairs_the_reference():
    from qaembed.suite.stats import pair_classification_bootstrap

    rng = np.random.default_rng(1)
    labels = (rng.uniform(size=300) < 0.4).astype(np.int64)
    base = labels * 0.3 + rng.uniform(size=300)
    same = pair_classification_bootstrap(base[None], labels, base[None] > 0.6, base[None] > 0.6,
                                         reference=(base[None], base[None] > 0.6, base[None] > 0.6), n_resamples=500)
    ap = same["average_precision"]
    assert ap.difference == 0 and ap.difference_low == ap.difference_high == 0 and ap.p_value == 1
    assert ap.low < ap.mean < ap.high and ap.n_pairs == 300
    # a system better on every resample: p is the smallest a 500-resample bootstrap can give, not 0
    better = pair_classification_bootstrap(base[None] + labels, labels, base[None] > 0.6, base[None] > 0.6,
                                           reference=(base[None], base[None] > 0.6, base[None] > 0.6), n_resamples=500)
    assert better["average_precision"].difference_low > 0 and better["average_precision"].p_value == 2 / 501
    # three seeds that differ from each other: a wider interval than one seed on the same pairs
    seeds = np.stack([base + labels * shift for shift in (0.0, 0.4, 0.8)])
    wide = pair_classification_bootstrap(seeds, labels, seeds > 0.6, seeds > 0.6, n_resamples=500)
    one = pair_classification_bootstrap(seeds[1:2], labels, seeds[1:2] > 0.6, seeds[1:2] > 0.6, n_resamples=500)
    width = lambda b: b["average_precision"].high - b["average_precision"].low  # noqa: E731
    assert width(wide) > width(one)
    with pytest.raises(ValueError, match="same seeds and pairs"):
        pair_classification_bootstrap(seeds, labels[:10], seeds > 0.6, seeds > 0.6)
