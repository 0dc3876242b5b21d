"""Rebuilding a pair suite's report from damaged ``per_pair.parquet`` files: each is a DataError naming the file
(and column), never a traceback, and no run's pairs are silently left out of the pair-classification bootstrap."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from suite_fakes import FakeRun

from qaembed.errors import DataError
from qaembed.report import build_report
from qaembed.suite.grid import build_suite_config, pair_entries
from qaembed.suite.runner import run_suite

PER_PAIR = Path("runs/infonce/seed0/eval/per_pair.parquet")
N_PAIRS = 40


class PairFakeRun(FakeRun):
    """FakeRun plus the ``per_pair.parquet`` a pair evaluation writes (the same test pairs for every run)."""

    def __call__(self, spec, context, run_dir: Path, resume: bool):
        outcome = super().__call__(spec, context, run_dir, resume)
        rng = np.random.default_rng(7)
        labels = np.arange(N_PAIRS) % 2
        scores = np.clip(0.5 + 0.3 * (labels - 0.5) + rng.normal(0, 0.2, N_PAIRS), -1, 1).astype(np.float32)
        table = pd.DataFrame({"score": scores, "label": labels, "predicted_at_accuracy_threshold": (scores > 0.5) * 1,
                              "predicted_at_f1_threshold": (scores > 0.4) * 1},
                             index=pd.Index([f"pair:{i}" for i in range(N_PAIRS)], name="pair_id"))
        table.to_parquet(run_dir / "eval" / "per_pair.parquet")
        return outcome


@pytest.fixture(scope="module")
def finished_suite(tiny_pair_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = build_suite_config(preset="quick", overrides={"data": str(tiny_pair_dataset), "seeds": [0]})
    config = config.model_copy(update={"entries": [e for e in pair_entries() if e.name == "infonce"], "budget": 4,
                                       "budget_unit": "steps"})
    out = tmp_path_factory.mktemp("pair_damaged") / "suite"
    run_suite(config, out, run_fn=PairFakeRun())
    return out


@pytest.fixture()
def suite(finished_suite: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "suite"
    shutil.copytree(finished_suite, copy)
    return copy


def test_the_undamaged_pair_suite_reports_pair_classification(suite: Path):
    assert "Pair classification" in build_report(suite).markdown.read_text()


def _drop(column):
    return lambda t: t.drop(columns=[column])


def _set(column, row, value):
    def edit(table):
        table.iloc[row, table.columns.get_loc(column)] = value
        return table
    return edit


def _reindex(table):
    table.index = pd.Index([f"other:{i}" for i in range(len(table))], name=table.index.name)
    return table


def _flip_label(table):
    table.iloc[0, table.columns.get_loc("label")] = 1 - table["label"].iloc[0]
    return table


@pytest.mark.parametrize(("edit", "message"), [
    (_drop("score"), r"per_pair.parquet, field 'score': no such column"),  # was a KeyError
    (_drop("label"), r"per_pair.parquet, field 'label': no such column"),  # was silently the baseline's labels
    (_set("score", 0, np.nan), r"field 'score': 1 value\(s\) that are not finite \(first: nan at pair 'pair:0'\)"),
    (_set("score", 3, np.inf), r"field 'score': 1 value\(s\) that are not finite \(first: inf at pair 'pair:3'\)"),
    (lambda t: t.assign(label=3), r"field 'label': 40 value\(s\) that are not 0 or 1 \(first: 3 at pair 'pair:0'\)"),
    (lambda t: t.assign(label="dup"), r"field 'label': holds .* values, not numbers"),
    (lambda t: t.iloc[:20], r"per_pair.parquet: its 20 test pairs are not those of run baseline \(40; 20 of them "
                            r"missing here, 0 here"),  # was silently the 20 shared pairs
    (_reindex, r"its 40 test pairs are not those of run baseline \(40; 40 of them missing here, 40 here"),
    (lambda t: pd.concat([t, t.iloc[:2]]), r"per_pair.parquet: 2 pair id\(s\) appear more than once"),
    (_flip_label, r"per_pair.parquet, field 'label': 1 pair label\(s\) differ from run baseline's"),
])
def test_a_damaged_per_pair_table_is_named(suite: Path, edit, message: str):
    path = suite / PER_PAIR
    edit(pd.read_parquet(path)).to_parquet(path)
    with pytest.raises(DataError, match=r"runs/infonce/seed0/eval/" + message if message.startswith("per_pair")
                       else message):
        build_report(suite)
