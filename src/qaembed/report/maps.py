"""The report's embedding maps: the base model vs the best loss, on the suite's bounded sample.

Every suite run stores its embeddings of the same seeded test sample (``eval/map_sample.npz``,
``map_points`` questions; :func:`qaembed.suite.runner.map_sample`), so the maps need no kept
model: the report projects the baseline's and the best loss's embeddings (its first finished
seed) with seeded UMAP into ``plots/maps/`` (PNGs and ``maps.json``, readable by
``qaembed serve --maps``). They are skipped, with the reason in the report, when umap-learn is
not installed, when ``map_points`` is null or when the runs hold no sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qaembed.report.analysis import Analysis
from qaembed.report.collect import SuiteData
from qaembed.suite.grid import BASELINE_NAME
from qaembed.suite.runner import EVAL_SUBDIR


@dataclass
class ReportMaps:
    images: list[tuple[Path, str]] = field(default_factory=list)  # (PNG, caption)
    skipped: str | None = None  # why there are no maps


def report_maps(suite: SuiteData, analysis: Analysis, out_dir: Path) -> ReportMaps:
    from qaembed.embedding_maps import (
        INSTALL_HINT,
        SAMPLE_FILE,
        MapsUnavailable,
        load_sample_embeddings,
        umap_available,
        write_maps,
    )
    from qaembed.errors import QaembedError
    from qaembed.suite.runner import map_sample

    config = suite.config
    if config.map_points is None:
        return ReportMaps(skipped="embedding maps are off (map_points: null)")
    if not umap_available():
        return ReportMaps(skipped=f"embedding maps skipped: umap-learn is not installed ({INSTALL_HINT})")
    trained = [r for r in analysis.rows if r.label != BASELINE_NAME and analysis.primary in r.intervals]
    baseline = next((r for r in suite.runs if r.label == BASELINE_NAME and r.ok), None)
    if baseline is None or not trained:
        return ReportMaps(skipped="embedding maps need the baseline and at least one finished loss")
    best = max(trained, key=lambda r: r.intervals[analysis.primary].mean)
    best_run = next(r for r in suite.runs if r.label == best.label and r.ok and r.seed == best.seeds[0])
    runs = {f"base ({config.model})": baseline, f"{best.label} seed {best_run.seed}": best_run}
    paths = {label: suite.suite_dir / "runs" / run.run_id / EVAL_SUBDIR / SAMPLE_FILE for label, run in runs.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        return ReportMaps(skipped=f"embedding maps skipped: the runs hold no map sample ({missing[0]}; runs made "
                                  "before maps existed: re-run them)")
    if suite.data.get("dataset_dir") is None:
        return ReportMaps(skipped=f"embedding maps skipped: {suite.suite_dir / 'suite.json'} names no dataset folder "
                                  "(data.dataset_dir) to draw the sample from")
    dataset_dir = suite.suite_dir / suite.data["dataset_dir"]
    try:
        sample = map_sample(config, dataset_dir)
        embeddings = {label: load_sample_embeddings(path, sample) for label, path in paths.items()}
        names = {label: ("base" if run.label == BASELINE_NAME else f"best_{run.label}") for label, run in runs.items()}
        written = write_maps({names[label]: vectors for label, vectors in embeddings.items()}, sample, out_dir,
                             seed=0, titles={names[label]: label for label in runs},
                             extra={"best": {"label": best.label, "seed": best_run.seed, "metric": analysis.primary}})
    except MapsUnavailable as exc:
        return ReportMaps(skipped=str(exc))
    except QaembedError as exc:
        return ReportMaps(skipped=f"embedding maps skipped: {exc}")
    what = ("points: test questions coloured by duplicate cluster (10 largest clusters of the sample); segments: "
            "sampled test pairs, green duplicates, red labelled non-duplicates" if sample.segments else
            f"points: test questions coloured by {sample.color_by}")
    captions = [f"{label}: UMAP of {len(sample.ids)} sampled test questions (seed 0); {what}" for label in runs]
    return ReportMaps(images=list(zip(written, captions)))
