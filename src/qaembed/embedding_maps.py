"""Embedding maps: seeded UMAP 2-D projections of a bounded sample, base vs fine-tuned, as PNGs.

Used by ``qaembed map`` (:func:`write_maps`), by the suite (each run stores the embeddings of
the same sample, :func:`save_sample_embeddings`) and by its report (base vs best loss).

* **Sample** (bounded, seeded): pair data — whole test pairs drawn in a seeded order while the
  distinct questions stay within ``max_points`` (:func:`pair_sample`); the points are questions
  coloured by duplicate cluster (the ten largest clusters of the sample, the rest grey) and every
  sampled pair is a segment, green for duplicates, red for labelled non-duplicates. Q&A data — a
  seeded subset of the questions (:func:`qa_sample`), coloured by site when the sample holds
  several sites, else by tag (the nine commonest, the rest "other").
* **Projection**: ``umap.UMAP(n_components=2, random_state=seed)`` (umap-learn, the optional
  extra ``qaembed[maps]``), cosine metric, ``n_neighbors = min(15, n - 1)``; the same seed gives
  the same map. Each model's embeddings are projected on their own, so the axes of two maps are
  not comparable — the structure (clusters, how far duplicates lie apart) is.
* **Output**: ``<label>.png`` per model (what ``qaembed serve --maps DIR`` lists) and a
  ``maps.json`` sidecar: sample size, seed, colouring, settings and, for pairs, the mean cosine and
  mean 2-D distance of duplicate and non-duplicate pairs per model.

Example
-------
>>> from qaembed.data.pairs import PairQuestion, PairRecord
>>> q = lambda i: PairQuestion(id=f"q{i}", text=f"question {i}")
>>> pairs = [PairRecord(id=f"p{i}", question1=q(2 * i), question2=q(2 * i + 1), label=i % 2, source="t")
...          for i in range(20)]
>>> sample = pair_sample(pairs, max_points=13, seed=0)
>>> len(sample.ids), len(sample.segments), sample == pair_sample(pairs, max_points=13, seed=0)
(12, 6, True)
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qaembed.errors import ConfigError, DataError, QaembedError
from qaembed.figures import save_figure

MAX_POINTS = 1000  # default bound on the points of one map
MIN_POINTS = 10  # UMAP needs a neighbourhood
SAMPLE_FILE = "map_sample.npz"  # a suite run's sample embeddings (eval/)
SIDECAR = "maps.json"
INSTALL_HINT = "pip install 'qaembed[maps]' (or pip install umap-learn)"
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
            "#7f7f7f"]
_OTHER = "#cccccc"


class MapsUnavailable(QaembedError):
    """umap-learn is not installed."""


@dataclass
class MapSample:
    ids: list[str]  # point ids (question ids)
    texts: list[str]  # what is embedded
    groups: list[str]  # colour group of each point ("" = other)
    color_by: str  # "cluster", "site" or "tag"
    segments: list[tuple[int, int, int]] = field(default_factory=list)  # pairs: (point i, point j, label)
    available: int = 0  # questions the sample was drawn from

    def describe(self) -> dict[str, Any]:
        return {"points": len(self.ids), "drawn_from": self.available, "color_by": self.color_by,
                "pairs": len(self.segments), "duplicate_pairs": sum(1 for s in self.segments if s[2] == 1)}


def pair_sample(pairs: Sequence[Any], max_points: int = MAX_POINTS, seed: int = 0) -> MapSample:
    """Whole pairs in a seeded order while the distinct questions stay within ``max_points``."""
    from qaembed.data.pairs import duplicate_clusters

    if max_points < MIN_POINTS:
        raise ConfigError(f"--max-points {max_points}: a map needs at least {MIN_POINTS} points")
    ordered = sorted(pairs, key=lambda p: p.id)
    order = np.random.default_rng(seed).permutation(len(ordered))
    position: dict[str, int] = {}
    texts: list[str] = []
    segments: list[tuple[int, int, int]] = []
    for index in order:
        pair = ordered[int(index)]
        new = [q for q in {pair.question1.id: pair.question1, pair.question2.id: pair.question2}.values()
               if q.id not in position]
        if len(position) + len(new) > max_points:
            continue
        for question in new:
            position[question.id] = len(texts)
            texts.append(question.text)
        segments.append((position[pair.question1.id], position[pair.question2.id], int(pair.label)))
    ids = list(position)
    all_ids = sorted({q.id for p in pairs for q in (p.question1, p.question2)})
    clusters = duplicate_clusters(all_ids, ((p.question1.id, p.question2.id) for p in pairs if p.label == 1))
    sizes = Counter(clusters[i] for i in ids)
    top = {c for c, n in sorted(sizes.items(), key=lambda item: (-item[1], item[0]))[: len(_PALETTE)] if n > 1}
    groups = [clusters[i] if clusters[i] in top else "" for i in ids]
    return MapSample(ids, texts, groups, "cluster", segments, available=len(all_ids))


def qa_sample(records: Sequence[Any], max_points: int = MAX_POINTS, seed: int = 0, color_by: str = "auto",
              query_text: str = "title_body") -> MapSample:
    """A seeded subset of ``max_points`` questions, coloured by site (several sites) or tag."""
    from qaembed.records import question_text

    if color_by not in ("auto", "site", "tag"):
        raise ConfigError(f"--color-by {color_by!r}: Q&A maps colour by auto, site or tag")
    if max_points < MIN_POINTS:
        raise ConfigError(f"--max-points {max_points}: a map needs at least {MIN_POINTS} points")
    ordered = sorted(records, key=lambda r: r.id)
    chosen = sorted(np.random.default_rng(seed).permutation(len(ordered))[:max_points].tolist())
    sample = [ordered[i] for i in chosen]
    sites = [(r.provenance.site if r.provenance and r.provenance.site else "") for r in sample]
    if color_by == "auto":
        color_by = "site" if len(set(sites)) > 1 else "tag"
    if color_by == "site":
        groups = sites
    else:
        counts = Counter(tag for r in sample for tag in r.tags)
        top = [tag for tag, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: len(_PALETTE) - 1]]
        groups = [next((tag for tag in top if tag in r.tags), "") for r in sample]
    return MapSample([r.id for r in sample], [question_text(r, query_text) for r in sample], groups, color_by,
                     available=len(records))


def embed(model: Any, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """(n, dim) unit-norm float32 embeddings."""
    embeddings = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                              show_progress_bar=False)
    return np.asarray(embeddings, dtype=np.float32)


def save_sample_embeddings(path: Path, sample: MapSample, embeddings: np.ndarray) -> None:
    """A suite run's sample embeddings (ids, float16 embeddings) for the report's maps."""
    from qaembed.outputs import replacing

    with replacing(path, tmp_name=path.stem + ".tmp.npz") as tmp:  # numpy adds .npz to a name without it
        np.savez_compressed(tmp, ids=np.array(sample.ids), embeddings=embeddings.astype(np.float16))


def load_sample_embeddings(path: Path, sample: MapSample) -> np.ndarray:
    """The embeddings of ``sample``'s points from a run's ``map_sample.npz`` (DataError if damaged or they differ)."""
    from qaembed.arrayfiles import load_npz

    data = load_npz(path, ("ids", "embeddings"))
    ids, embeddings = data["ids"].tolist(), data["embeddings"]
    if ids != sample.ids:
        raise DataError("the stored map sample is not this suite's sample (re-run the suite)", path=str(path))
    if embeddings.ndim != 2 or embeddings.shape[0] != len(ids) or not np.issubdtype(embeddings.dtype, np.number):
        raise DataError(f"'embeddings' is a {embeddings.dtype} array of shape {embeddings.shape}, not one row of "
                        f"numbers per sample point ({len(ids)}); re-run the suite", path=str(path))
    embeddings = embeddings.astype(np.float32)
    if not np.isfinite(embeddings).all():
        raise DataError("'embeddings' holds NaN or infinite values; re-run the suite", path=str(path))
    return embeddings


def project(embeddings: np.ndarray, seed: int = 0) -> np.ndarray:
    """Seeded UMAP to 2-D: (n, dim) -> (n, 2)."""
    try:
        import umap
    except ImportError as exc:
        raise MapsUnavailable(f"embedding maps need umap-learn, which is not installed: {INSTALL_HINT}") from exc
    import warnings

    n = embeddings.shape[0]
    if n < MIN_POINTS:
        raise DataError(f"a map needs at least {MIN_POINTS} points, the sample has {n}")
    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), metric="cosine", random_state=seed,
                        n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state" and numba notices
        return np.asarray(reducer.fit_transform(embeddings), dtype=np.float64)


def _pair_stats(sample: MapSample, embeddings: np.ndarray, coords: np.ndarray) -> dict[str, float]:
    stats: dict[str, float] = {}
    for label, name in ((1, "duplicate"), (0, "non_duplicate")):
        rows = np.array([(i, j) for i, j, y in sample.segments if y == label], dtype=np.int64).reshape(-1, 2)
        if len(rows):
            stats[f"{name}_pairs"] = int(len(rows))
            stats[f"{name}_mean_cosine"] = float(np.einsum("ij,ij->i", embeddings[rows[:, 0]],
                                                           embeddings[rows[:, 1]]).mean())
            stats[f"{name}_mean_map_distance"] = float(np.linalg.norm(coords[rows[:, 0]] - coords[rows[:, 1]],
                                                                      axis=1).mean())
    return stats


def _plain(text: str) -> str:
    """Text matplotlib draws as written: a ``$`` would start mathtext (a tag or model name holding ``$x^$`` failed
    the whole map with a parse error)."""
    return text.replace("$", r"\$")


def plot_map(coords: np.ndarray, sample: MapSample, title: str, path: Path, seed: int) -> Path:
    """One PNG: points coloured by group; for pairs, segments by label. The sample size is in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    handles = []
    if sample.segments:
        for label, color, name in ((0, "#d62728", "non-duplicate pair"), (1, "#2ca02c", "duplicate pair")):
            lines = [(coords[i], coords[j]) for i, j, y in sample.segments if y == label]
            if lines:
                ax.add_collection(LineCollection(lines, colors=color, linewidths=0.7, alpha=0.55, zorder=1))
                handles.append(Line2D([0], [0], color=color, label=f"{name} ({len(lines)})"))
    groups = sorted({g for g in sample.groups if g})
    colors = {g: _PALETTE[k % len(_PALETTE)] for k, g in enumerate(groups)}
    point_colors = [colors.get(g, _OTHER) for g in sample.groups]
    ax.scatter(coords[:, 0], coords[:, 1], s=9, c=point_colors, linewidths=0, zorder=2)
    legend_groups = groups[: len(_PALETTE)]
    handles += [Line2D([0], [0], marker="o", linestyle="", color=colors[g], label=_plain(g[-28:])) for g in legend_groups]
    if any(not g for g in sample.groups):
        other = {"cluster": "other clusters", "site": "unknown site", "tag": "other tags"}[sample.color_by]
        handles.append(Line2D([0], [0], marker="o", linestyle="", color=_OTHER, label=other))
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5),
              title=f"colour: {sample.color_by}", title_fontsize=8)
    ax.set_title(f"{_plain(title)}\nUMAP of {len(sample.ids)} questions (bounded sample of {sample.available}; seed {seed})",
                 fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return save_figure(fig, path)


def write_maps(embeddings: dict[str, np.ndarray], sample: MapSample, out_dir: Path, seed: int = 0,
               titles: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> list[Path]:
    """``<label>.png`` for every model's embeddings of ``sample`` and the ``maps.json`` sidecar."""
    import re

    out_dir.mkdir(parents=True, exist_ok=True)
    paths, models = [], {}
    for label, vectors in embeddings.items():
        if vectors.shape[0] != len(sample.ids):
            raise ValueError(f"{label}: {vectors.shape[0]} embeddings for {len(sample.ids)} sample points")
        coords = project(vectors, seed)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "model"
        path = plot_map(coords, sample, (titles or {}).get(label, label), out_dir / f"{name}.png", seed)
        paths.append(path)
        models[label] = {"png": path.name, **(_pair_stats(sample, vectors, coords) if sample.segments else {})}
    sidecar = {"sample": {**sample.describe(), "seed": seed}, "method": {
        "projection": "umap-learn UMAP, n_components=2, metric=cosine, n_neighbors=min(15, n-1), random_state=seed",
        "note": "each model is projected on its own: compare structure, not axes"}, "models": models, **(extra or {})}
    from qaembed.outputs import replace_text

    replace_text(out_dir / SIDECAR, json.dumps(sidecar, indent=2) + "\n")
    return paths


def umap_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("umap") is not None
