"""The loss-comparison report, generated from a suite folder alone.

:func:`build_report` reads ``suite.json`` and every run folder (see
:mod:`qaembed.suite.runner`) and writes, into the suite folder:

* ``report.md`` and a self-contained ``report.html`` (plots embedded as base64 PNG);
* ``results.csv`` (one row per run) and ``results.json`` (runs, per-loss intervals and tests);
* ``plots/metrics.png``, ``plots/loss_curves.png``, ``plots/dev_curves.png``, ``plots/cost.png``;
* on duplicate-question pair data (``docs/pairs.md``): MRR@10 as the headline, and a pair
  classification table (AP, F1 and accuracy at the dev thresholds, with seed x pair bootstrap
  intervals; :mod:`qaembed.report.pairs`);
* ``plots/maps/``: UMAP maps of the base model and the best loss on a bounded test sample
  (:mod:`qaembed.report.maps`), or a stated reason why they were skipped.

Statistics are described in :mod:`qaembed.report.analysis`. Regenerate at any time with
``qaembed suite report DIR``.

Example
-------
>>> from qaembed.report import build_report  # doctest: +SKIP
>>> paths = build_report("runs/suite")  # doctest: +SKIP
>>> paths.markdown.read_text()[:40]  # doctest: +SKIP
'# Loss comparison on Stack Exchange Q&A\\n'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from qaembed.data.dataset import SPLITS, read_split
from qaembed.jsonfiles import write_json
from qaembed.outputs import check_no_links, replace_text, replacing
from qaembed.report.analysis import Analysis, analyze, metrics_for, plain_summary
from qaembed.report.collect import SuiteData, load_suite
from qaembed.report.document import Block, Bullets, Code, Heading, Image, Paragraph, TableBlock, link, literal
from qaembed.report.html import render_html
from qaembed.report.markdown import render_markdown
from qaembed.report.plots import plot_cost, plot_dev_curves, plot_loss_curves, plot_metrics
from qaembed.report.tables import cost_table, failures_table, grid_table, main_table, run_rows, significance_table
from qaembed.suite.grid import BASELINE_NAME

TITLE = "Loss comparison on Q&A retrieval"
PAIR_TITLE = "Loss comparison on duplicate-question retrieval"
EXAMPLES_PER_SIDE = 3


@dataclass
class ReportPaths:
    markdown: Path
    html: Path
    csv: Path
    json: Path
    plots: list[Path]




def _setup_block(suite: SuiteData, analysis: Analysis) -> list[Block]:
    config, data = suite.config, suite.data
    counts = data.get("counts", {})
    split_text = ", ".join(f"{counts[s]} {s}" for s in SPLITS if s in counts)
    split = data.get("split", {}) or {}
    if split.get("test_after"):
        split_text += f"; date split: test questions created on/after {split['test_after']}"
        if split.get("dev_after"):
            split_text += f", dev on/after {split['dev_after']}"
    statuses = [r.status for r in suite.runs if r.status is not None and r.ok]
    documents = max((s.corpus_documents or 0 for s in statuses), default=0)
    evaluated = [len(r.per_question) for r in suite.runs if r.per_question is not None]
    caps = ", ".join(f"{name} {value}" for name, value in
                     (("dev", config.dev_questions), ("test", config.test_questions)) if value is not None)
    if config.corpus == "test":
        corpus = "the evaluated test questions' answers only"
    elif config.distractor_questions is not None:
        corpus = (f"the test answers plus the answers of {config.distractor_questions} other questions of the "
                  "prepared data (train first) as distractors with gain 0")
    else:
        corpus = "every answer of the prepared data (train, dev and test answers; other questions' answers have gain 0)"
        extra = max((s.extra_documents or 0 for s in statuses), default=0)
        if extra:
            corpus += f", plus {extra:,} documents no question owns (the dataset's corpus.jsonl, gain 0)"
    train_questions = (data.get("train_questions") or {}).get("description") or "train split"
    budget, unit = config.budget, config.budget_unit
    _, _, explanations = metrics_for(analysis.kind)
    pairs = analysis.kind == "pairs"
    unit_name = "pairs" if pairs else "questions"
    test_text = (f"test: **{max(evaluated) if evaluated else '?'} query questions** (those with a labelled duplicate "
                 f"in the test split), each ranked against the {int(documents):,} questions of the evaluated test "
                 "pairs (itself excluded); the same pairs for every run, the baseline included"
                 if pairs else
                 f"test: **{max(evaluated) if evaluated else '?'} questions**, each ranked against a corpus of "
                 f"{int(documents):,} documents: {corpus}")
    items = [
        f"base model: **{config.model}**; every run starts from the same weights",
        f"data: {data.get('description', 'prepared dataset')} — {unit_name} per split: {split_text or 'unknown'}"
        + (f"; caps (first N {unit_name} of a split): {caps}" if caps else ""),
        f"training {unit_name}: {train_questions}; the same seeded order for every entry",
        test_text,
        "metrics: " + "; ".join(f"**{analysis.metrics[m]}**: {text}" for m, text in explanations.items()),
        f"compute budget, equal for every loss: {budget:,} {unit} per run (the compute table shows what each run "
        f"spent); {config.batch_size} questions per batch, learning rate {config.learning_rate}, "
        f"linear warm-up over {config.warmup_ratio} of the steps, max sequence length {config.max_seq_length}",
        f"seeds: {config.seeds} (the same seeds, split and data order for every loss)",
        "intervals: 95% hierarchical bootstrap, resampling seeds and then questions (10,000 resamples), the same "
        "method for every row including the baseline; with one seed it is a bootstrap over questions",
        "significance: " + ("paired sign-flip permutation test over test questions (one seed: a test of this run, "
                            "not of the loss)" if analysis.n_seeds == 1 else
                            "paired seed t-test on per-question differences (variance "
                            "from seeds and questions; runs paired by seed)")
        + ", Holm-Bonferroni across the losses compared with the same reference on the same metric; MDE: the "
        "difference detectable with 80% power at α = 0.05 (docs/suite.md gives the formulas)",
    ]
    return [Heading("Setup"), Bullets(items)]


def _examples_and_sites(suite: SuiteData, analysis: Analysis) -> tuple[list[Block], set[str], list[str]]:
    """Quoted test questions where the best loss gained or lost most vs the baseline; the sites seen."""
    dataset_dir = suite.data.get("dataset_dir")
    if dataset_dir is None or not (suite.suite_dir / dataset_dir / "test.jsonl").is_file():
        return [], set(), []
    records = {r.id: r for r in read_split(suite.suite_dir / dataset_dir, "test")}
    sites = {r.provenance.site for r in records.values() if r.provenance and r.provenance.site}
    licenses = sorted({r.provenance.license for r in records.values() if r.provenance and r.provenance.license})
    baseline = analysis.row(BASELINE_NAME)
    primary = analysis.primary
    trained = [r for r in analysis.rows if r.label != BASELINE_NAME and primary in r.intervals
               and r.per_question is not None]
    if baseline is None or baseline.per_question is None or not trained:
        return [], sites, licenses
    best = max(trained, key=lambda r: r.intervals[primary].mean)
    paired = pd.concat([best.per_question[primary], baseline.per_question[primary]],
                       axis=1, join="inner", keys=["best", "baseline"]).dropna()
    gain = (paired["best"] - paired["baseline"]).sort_values(kind="stable")
    metric_name = analysis.metrics[primary]

    def quote(question_id: str) -> str:
        record = records[question_id]
        provenance = record.provenance
        text = link(literal(record.title), provenance.url if provenance else None)
        author = provenance.author if provenance else None
        if author is not None and (author.name or author.id):
            name = literal(author.name or f"user {author.id}")
            text += " by " + link(name, author.url)
        if provenance and provenance.license:
            text += f", {literal(provenance.license)}"
        row = paired.loc[question_id]
        return f"{text}: {metric_name} {row['baseline']:.3f} → {row['best']:.3f}"

    gained = [q for q in gain[gain > 0].index[::-1][:EXAMPLES_PER_SIDE] if q in records]
    lost = [q for q in gain[gain < 0].index[:EXAMPLES_PER_SIDE] if q in records]
    if not gained and not lost:
        return [], sites, licenses
    blocks: list[Block] = [
        Heading("Example questions"),
        Paragraph(f"Test questions where **{best.label}** (the best loss on {metric_name}) gained or lost most "
                  "against the baseline. Titles are quoted from Stack Exchange and link to the original question."),
    ]
    if gained:
        blocks += [Paragraph("Largest gains:"), Bullets([quote(q) for q in gained])]
    if lost:
        blocks += [Paragraph("Largest losses:"), Bullets([quote(q) for q in lost])]
    return blocks, sites, licenses


def _attribution(sites: set[str], licenses: list[str]) -> list[Block]:
    if not sites:
        return []
    links = ", ".join(link(literal(site), f"https://{site}") for site in sorted(sites))
    return [
        Heading("Data attribution"),
        Paragraph(
            f"The questions and answers are user content from Stack Exchange ({links}), licensed under "
            "Creative Commons BY-SA by post date: CC BY-SA 2.5 before 2011-04-08, 3.0 before 2018-05-02, 4.0 after"
            + (f" (licenses present in the test split: {', '.join(map(literal, licenses))})" if licenses else "")
            + ". Quoted questions link to their original page and name their author where known."
        ),
    ]


def _environment_block(suite: SuiteData) -> list[Block]:
    env = suite.environment
    git = env.get("git", {})
    versions = env.get("versions", {})
    hardware = env.get("hardware", {})
    lines = [
        f"git commit: {git.get('commit')} (uncommitted changes: {git.get('dirty')})",
        "versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "hardware: " + ", ".join(f"{k}={v}" for k, v in hardware.items()),
        f"data hash: {suite.data.get('hash')}",
    ]
    return [Heading("Environment"), Code("\n".join(lines))]


def build_report(suite_dir: str | Path) -> ReportPaths:
    """Write report.md, report.html, results.csv, results.json and plots/ into ``suite_dir``."""
    suite_dir = Path(suite_dir)
    suite = load_suite(suite_dir)
    analysis = analyze(suite)
    plots_dir = check_no_links(suite_dir, suite_dir / "plots" / "maps").parent  # the plots go nowhere else
    metrics_png = plot_metrics(analysis, plots_dir / "metrics.png")
    loss_png = plot_loss_curves(suite, plots_dir / "loss_curves.png")
    dev_png = plot_dev_curves(suite, plots_dir / "dev_curves.png", analysis.primary)
    cost_png = plot_cost(suite, plots_dir / "cost.png")

    examples, sites, licenses = _examples_and_sites(suite, analysis)
    failures = failures_table(suite)
    title = PAIR_TITLE if analysis.kind == "pairs" else TITLE
    blocks: list[Block] = [Heading(title, level=1), Heading("Summary"), Bullets(plain_summary(analysis))]
    blocks += [Heading("Main metrics"), TableBlock(main_table(analysis)),
               Image(metrics_png, "Test metrics per loss, mean and 95% interval")]
    blocks += [Heading("Significance"), TableBlock(significance_table(analysis, "baseline"))]
    if analysis.reference is not None:
        blocks.append(TableBlock(significance_table(analysis, "reference")))
    classification = None
    if analysis.kind == "pairs":
        from qaembed.report.pairs import pair_classification, pair_table

        classification = pair_classification(suite)
        blocks += [Heading("Pair classification"), TableBlock(pair_table(classification))]
        blocks += [Paragraph(note) for note in classification.notes]
    blocks += [Heading("Training curves"), Image(loss_png, "Training loss per step, every run"),
               Image(dev_png, f"Dev {analysis.primary} at each evaluation, every run")]
    blocks += [Heading("Compute"), TableBlock(cost_table(suite)), Image(cost_png, "Wall time and throughput per run")]
    from qaembed.report.maps import report_maps

    maps = report_maps(suite, analysis, plots_dir / "maps")
    blocks.append(Heading("Embedding maps"))
    if maps.skipped:
        blocks.append(Paragraph(maps.skipped + "."))
    else:
        blocks.append(Paragraph("Base model vs the best loss (by the headline metric) on the same bounded, seeded test "
                                "sample; each map is its own UMAP projection, so compare structure, not axes "
                                "(numbers per map in plots/maps/maps.json; `qaembed serve --maps` shows the folder)."))
        blocks += [Image(path, caption) for path, caption in maps.images]
    if failures.rows:
        blocks += [Heading("Failures"), TableBlock(failures)]
    blocks += _setup_block(suite, analysis) + [TableBlock(grid_table(suite))]
    blocks += examples + _attribution(sites, licenses) + _environment_block(suite)

    md_path, html_path = suite_dir / "report.md", suite_dir / "report.html"
    replace_text(md_path, render_markdown(blocks, suite_dir))  # a link planted at the name is replaced, not followed
    replace_text(html_path, render_html(blocks, title))

    metrics = list(analysis.metrics)
    records = run_rows(suite, metrics)
    csv_path = suite_dir / "results.csv"
    table = pd.DataFrame.from_records(records)
    counts = [c for c in ("seed", "steps", "texts", "tokens", "questions", "processes") if c in table]
    table[counts] = table[counts].astype("Int64")  # counts stay integers beside the baseline's empty cells (not 160.0)
    with replacing(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    json_path = suite_dir / "results.json"
    write_json(json_path, {
        "summary": plain_summary(analysis),
        "losses": [
            {
                "label": row.label, "runs": row.n_runs, "runs_ok": row.n_ok,
                "seeds": row.seeds, "spent": row.spent,
                "intervals": {m: i._asdict() for m, i in row.intervals.items()},
                "vs_baseline": {m: c.to_dict() for m, c in row.vs_baseline.items()},
                "vs_reference": {m: c.to_dict() for m, c in row.vs_reference.items()},
                "errors": row.errors,
            }
            for row in analysis.rows
        ],
        "runs": records,
        **({"pair_classification": classification.to_dict()} if classification is not None else {}),
        "data": suite.data,
        "environment": suite.environment,
    })
    return ReportPaths(md_path, html_path, csv_path, json_path,
                       [metrics_png, loss_png, dev_png, cost_png] + [path for path, _ in maps.images])
