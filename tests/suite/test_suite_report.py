"""The report built from synthetic run folders: files, every loss, intervals, significance marks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from suite_fakes import FakeRun, tiny_config, write_tiny_dataset

from qaembed.report import ReportPaths, build_report
from qaembed.report.analysis import analyze, plain_summary
from qaembed.report.collect import load_suite
from qaembed.suite.runner import run_suite
from qaembed.suite.stats import BOOTSTRAP_METHOD, PERMUTATION_TEST, SEED_TEST


@pytest.fixture(scope="module")
def finished_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    dataset = write_tiny_dataset(root / "prepared")
    out = root / "suite"
    run_suite(tiny_config(dataset, seeds=[0, 1]), out, run_fn=FakeRun(fail={"triplet_hard/seed1"}))
    return out


@pytest.fixture(scope="module")
def report(finished_suite: Path) -> ReportPaths:
    return build_report(finished_suite)


def test_analysis_detects_true_effects_with_the_right_interval_method(finished_suite: Path):
    analysis = analyze(load_suite(finished_suite))
    infonce, listwise, triplet = (analysis.row(n) for n in ("infonce", "listwise", "triplet_hard"))
    metric = "retrieval/graded_ndcg@10"  # the headline
    assert infonce.vs_baseline[metric].direction == "better"
    assert infonce.vs_baseline[metric].mean_difference == pytest.approx(0.15, abs=0.03)
    assert listwise.vs_baseline[metric].direction == "n.s."
    assert triplet.vs_baseline[metric].direction == "worse"
    assert listwise.vs_reference[metric].direction == "worse"  # vs standard InfoNCE
    assert "infonce" not in {r.label for r in analysis.rows if r.vs_reference}
    # one interval method for every row, whatever its number of finished seeds
    assert {row.intervals[metric].method for row in analysis.rows} == {BOOTSTRAP_METHOD}
    assert infonce.intervals[metric].n_seeds == 2 and triplet.intervals[metric].n_seeds == 1 and triplet.n_ok == 1
    assert analysis.row("baseline").intervals[metric].n_seeds == 1
    # 2 seeds: the seed t-test (at least 1 df); the loss with one finished seed: a permutation test of that run
    assert infonce.vs_baseline[metric].test.method == SEED_TEST and infonce.vs_baseline[metric].test.df >= 1
    assert triplet.vs_baseline[metric].test.method == PERMUTATION_TEST
    assert listwise.vs_reference[metric].test.n_seeds == 2  # paired by seed with InfoNCE
    # Kendall tau is NaN for every 10th question: those are left out of its test
    assert infonce.vs_baseline["within/kendall_tau"].test.n_questions == 108
    assert triplet.errors == ["triplet_hard/seed1: RuntimeError: boom in triplet_hard/seed1"]


def test_report_files_contain_every_loss_baseline_cis_and_marks(report: ReportPaths):
    paths = report
    for path in [paths.markdown, paths.html, paths.csv, paths.json, *paths.plots]:
        assert path.is_file() and path.stat().st_size > 0
    for plot in paths.plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = paths.markdown.read_text()
    html = paths.html.read_text()
    for label in ("baseline", "infonce", "listwise", "triplet_hard"):
        assert f"| {label} |" in markdown
        assert f"<td>{label}</td>" in html
    summary = markdown.split("## Main metrics")[0]
    assert "1 of 3 losses beat it significantly: infonce (+0.15" in summary
    assert "Significantly worse than the baseline: triplet_hard" in summary
    assert "▲" in markdown and "▼" in markdown and "[95% CI]" in markdown
    assert "hierarchical bootstrap" in markdown and "seed t-test" in markdown and "MDE" in markdown
    assert "graded NDCG@10" in summary and "With 2 seeds per loss" in summary
    assert "boom in triplet_hard/seed1" in markdown  # failures table
    assert "data:image/png;base64," in html and "<img" in html and 'src="plots/' not in html
    # attribution: site link, license, and quoted questions linked to their page with author
    assert "[beer.stackexchange.com](https://beer.stackexchange.com)" in markdown
    assert "CC BY-SA" in markdown
    assert "(https://beer.stackexchange.com/questions/test" in markdown and "by [user" in markdown
    assert "git commit:" in markdown and "data hash:" in markdown

    table = pd.read_csv(paths.csv)
    assert len(table) == 1 + 3 * 2
    assert set(table["status"]) == {"ok", "failed"}
    results = json.loads(paths.json.read_text())
    labels = [row["label"] for row in results["losses"]]
    assert labels == ["baseline", "infonce", "listwise", "triplet_hard"]
    infonce = results["losses"][1]
    assert infonce["vs_baseline"]["retrieval/graded_ndcg@10"]["significant"] is True
    assert infonce["vs_baseline"]["retrieval/graded_ndcg@10"]["mde"] > 0
    ci = infonce["intervals"]["retrieval/graded_ndcg@10"]
    assert ci["low"] < ci["mean"] < ci["high"]


def test_summary_names_losses_compared_on_fewer_seeds(finished_suite: Path):
    # triplet_hard finished 1 of 2 seeds: its tests are one-seed permutation tests, not the seed t-test of the others
    summary = " ".join(plain_summary(analyze(load_suite(finished_suite))))
    assert ("Compared on fewer runs than the others (failed or missing runs; a comparison with one seed is a "
            "permutation test of that run, without seed variance): triplet_hard (1 of 2 seeds vs baseline; "
            "1 of 2 seeds vs infonce).") in summary
    assert "a permutation test over questions where a comparison has one seed" in summary


def test_summary_says_two_seeds_are_a_limitation(finished_suite: Path):
    summary = plain_summary(analyze(load_suite(finished_suite)))
    assert any(line.startswith("With 2 seeds the seed-to-seed variance rests on one degree of freedom") and
               "can reach about 10%" in line for line in summary)


def test_summary_names_a_loss_whose_runs_all_failed(tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "suite"
    run_suite(tiny_config(tiny_dataset, seeds=[0, 1]), out, run_fn=FakeRun(fail={"listwise/seed0", "listwise/seed1"}))
    summary = plain_summary(analyze(load_suite(out)))
    assert "No finished run, so not compared: listwise." in summary
    assert any("1 of 2 losses beat it significantly: infonce" in line for line in summary)
    assert not any("Compared on fewer runs" in line for line in summary)  # the others have both seeds


def test_report_is_reproducible_and_regenerated_from_folders(finished_suite: Path, report: ReportPaths):
    first = report.markdown.read_text()
    report.markdown.unlink()
    assert build_report(finished_suite).markdown.read_text() == first  # seeded statistics


def test_not_yet_run_entries_are_reported_as_missing(tiny_dataset: Path, tmp_path: Path):
    out = tmp_path / "suite"
    with pytest.raises(KeyboardInterrupt):
        run_suite(tiny_config(tiny_dataset), out, run_fn=FakeRun(interrupt={"listwise/seed0"}))
    markdown = build_report(out).markdown.read_text()
    assert "listwise/seed0 | not run (or interrupted)" in markdown
    assert "triplet_hard/seed0 | not run (or interrupted)" in markdown


def test_html_inline_markup_escapes_text_and_keeps_links():
    from qaembed.report.html import _inline

    assert _inline("see [a & b](https://x.org/?a=1&b=2) **bold** <tag>") == (
        'see <a href="https://x.org/?a=1&amp;b=2">a &amp; b</a> <strong>bold</strong> &lt;tag&gt;')


@pytest.fixture()
def small_suite(tiny_dataset: Path, tmp_path: Path) -> Path:
    out = tmp_path / "suite"
    run_suite(tiny_config(tiny_dataset), out, run_fn=FakeRun())
    return out


def test_a_truncated_per_question_table_is_an_error_naming_the_file(small_suite: Path):
    from typer.testing import CliRunner

    from qaembed.cli import app
    from qaembed.errors import DataError

    table = small_suite / "runs" / "infonce" / "seed0" / "eval" / "per_question.parquet"
    table.write_bytes(table.read_bytes()[:500])
    with pytest.raises(DataError) as info:
        load_suite(small_suite)
    assert info.value.path == str(table)
    assert info.value.message.startswith("unreadable (corrupt or truncated: ArrowInvalid: ")
    assert info.value.message.endswith("; rerun that run")
    result = CliRunner().invoke(app, ["suite", "report", str(small_suite)])
    assert isinstance(result.exception, DataError) and str(result.exception) == str(info.value)


def test_a_garbage_per_pair_table_is_an_error_naming_the_file(small_suite: Path):
    from qaembed.errors import DataError
    from qaembed.report.pairs import pair_classification

    table = small_suite / "runs" / "listwise" / "seed0" / "eval" / "per_pair.parquet"
    table.write_bytes(b"not a parquet file")
    with pytest.raises(DataError, match="unreadable \\(corrupt or truncated: ") as info:
        pair_classification(load_suite(small_suite))
    assert info.value.path == str(table)


def test_a_garbage_map_sample_skips_the_maps_with_its_file_named(small_suite: Path):
    """The maps' own way of reporting what they cannot show: the report says why, with the file."""
    import numpy as np

    from qaembed.embedding_maps import load_sample_embeddings
    from qaembed.errors import DataError

    samples = sorted(small_suite.glob("runs/**/eval"))
    for folder in samples:
        (folder / "map_sample.npz").write_bytes(b"garbage, not an npz archive")
    pickled = samples[0] / "pickled.npz"
    np.savez(pickled, ids=np.array([{"a": 1}], dtype=object), embeddings=np.eye(2))
    with pytest.raises(DataError, match="Object arrays cannot be loaded when allow_pickle=False") as info:
        load_sample_embeddings(pickled, None)
    assert info.value.path == str(pickled)

    baseline = small_suite / "runs" / "baseline" / "eval" / "map_sample.npz"
    markdown = build_report(small_suite).markdown.read_text()
    assert f"embedding maps skipped: {baseline}: unreadable (corrupt or truncated: " in markdown
    assert "; rerun that run" in markdown


def test_printed_p_values_agree_with_the_significance_call():
    import numpy as np

    from qaembed.report.analysis import Comparison, _difference
    from qaembed.report.tables import _comparison_cell
    from qaembed.suite.stats import seed_aware_test

    test = seed_aware_test(np.array([[0.6, 0.7, 0.8], [0.62, 0.69, 0.85]]), np.array([[0.5, 0.7, 0.7]]))
    significant = Comparison("baseline", "retrieval/graded_ndcg@10", test, p_holm=0.0496)
    assert significant.significant
    assert "p=0.0496 ▲" in _comparison_cell(significant) and _difference(significant).endswith("p=0.0496")
    assert _difference(Comparison("baseline", "m", test, p_holm=0.0504)).endswith("p=0.05")  # 0.05 is not < 0.05
    assert _difference(Comparison("baseline", "m", test, p_holm=0.0012345)).endswith("p=0.0012")



def test_a_comparison_on_one_question_says_it_has_no_interval():
    import numpy as np

    from qaembed.report.analysis import Comparison
    from qaembed.report.tables import _comparison_cell
    from qaembed.suite.stats import seed_aware_test

    test = seed_aware_test(np.array([[0.6]]), np.array([[0.5]]))  # one seed, one question: no standard error
    assert _comparison_cell(Comparison("baseline", "m", test, p_holm=1.0)) == (
        "+0.100 [no interval: 1 question and 1 seed] p=1")


class _UnchangedListwise(FakeRun):
    """listwise's runs score exactly what the baseline scores on every question (fine-tuning changed nothing)."""

    def __call__(self, spec, context, run_dir: Path, resume: bool):
        if spec.label == "listwise":
            spec = spec.model_copy(update={"entry": None, "kind": "baseline", "seed": 0})  # the baseline's values
        return super().__call__(spec, context, run_dir, resume)


def test_a_loss_identical_to_the_baseline_is_said_so_not_given_an_mde_of_zero(tiny_dataset: Path, tmp_path: Path):
    from qaembed.report.tables import significance_table

    out = tmp_path / "suite"
    run_suite(tiny_config(tiny_dataset, seeds=[0, 1]), out, run_fn=_UnchangedListwise())
    analysis = analyze(load_suite(out))
    comparison = analysis.row("listwise").vs_baseline["retrieval/graded_ndcg@10"]
    assert comparison.identical and comparison.test.mde == 0 and comparison.p_holm == 1
    summary = plain_summary(analysis)
    assert ("Identical to the baseline on every test question in every run (fine-tuning changed no graded NDCG@10 "
            "value): listwise.") in summary
    resolution = next(line for line in summary if line.startswith("Resolution:"))
    assert "0.000" not in resolution  # the MDE is sized from the losses that vary, not from listwise's zero variance
    assert "MDE 0.000" not in significance_table(analysis, "baseline").note
