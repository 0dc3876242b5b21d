"""Embedding maps: bounded seeded samples, deterministic UMAP, `qaembed map` output, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from qaembed.cli import app
from qaembed.data.pairs import read_pair_split
from qaembed.embedding_maps import pair_sample, qa_sample


def test_pair_sample_is_bounded_seeded_and_takes_whole_pairs(tiny_pair_dataset):
    pairs = read_pair_split(tiny_pair_dataset, "test")
    sample = pair_sample(pairs, max_points=20, seed=3)
    assert 10 <= len(sample.ids) <= 20 and len(set(sample.ids)) == len(sample.ids)
    by_id = {p.id: p for p in pairs}
    labelled = {(p.question1.id, p.question2.id): p.label for p in by_id.values()}
    for i, j, label in sample.segments:  # every segment is a labelled pair of two sampled questions
        assert labelled[(sample.ids[i], sample.ids[j])] == label
    assert {0, 1} == {s[2] for s in sample.segments}
    assert sample == pair_sample(list(reversed(pairs)), max_points=20, seed=3)  # input order does not matter
    assert sample.ids != pair_sample(pairs, max_points=20, seed=4).ids
    assert len(pair_sample(pairs, max_points=10_000, seed=0).ids) == sample.available


def test_qa_sample_colours_by_site_or_tag(tmp_path):
    from qaembed.records import Answer, Provenance, QARecord

    records = [QARecord(id=f"s:{i}", title=f"q {i}", body="b", tags=["x" if i % 3 else "y"],
                        answers=[Answer(id=f"a{i}", text="a", score=1.0)],
                        provenance=Provenance(source="t", site="a.example" if i % 2 else "b.example")) for i in range(30)]
    sample = qa_sample(records, max_points=12, seed=0)
    assert len(sample.ids) == 12 and sample.color_by == "site" and set(sample.groups) == {"a.example", "b.example"}
    tags = qa_sample(records, max_points=12, seed=0, color_by="tag")
    assert tags.ids == sample.ids and set(tags.groups) <= {"x", "y"}


def test_umap_projection_is_deterministic_for_a_seed():
    pytest.importorskip("umap")
    from qaembed.embedding_maps import project

    x = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    a, b, c = project(x, seed=1), project(x, seed=1), project(x, seed=2)
    assert a.shape == (40, 2) and np.array_equal(a, b) and not np.array_equal(a, c)


def test_map_command_writes_pngs_and_sidecar_that_serve_lists(tiny_model_dir, tiny_pair_dataset, tmp_path):
    pytest.importorskip("umap")
    from qaembed.serve.app import _map_files

    out = tmp_path / "maps"
    result = CliRunner().invoke(app, ["map", "--data", str(tiny_pair_dataset), "--base", str(tiny_model_dir),
                                      "--model", str(tiny_model_dir), "--max-points", "30", "--seed", "5",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    sidecar = json.loads((out / "maps.json").read_text())
    assert sidecar["sample"]["points"] <= 30 and sidecar["sample"]["seed"] == 5
    assert sorted(sidecar["models"]) == ["base", tiny_model_dir.name]
    assert sidecar["models"]["base"]["duplicate_mean_cosine"] == pytest.approx(
        sidecar["models"][tiny_model_dir.name]["duplicate_mean_cosine"])  # the same model twice
    assert sorted(_map_files(out)) == sorted(["base.png", f"{tiny_model_dir.name}.png"])
    assert (out / "base.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_map_is_replaced_only_with_overwrite_and_then_whole(tiny_model_dir, tiny_pair_dataset, tmp_path):
    """A second map into a folder holding one is refused; with --overwrite the earlier map's PNGs go (serve --maps
    shows every PNG there, so one of a model no longer mapped would pass for part of the new map), nothing else."""
    pytest.importorskip("umap")
    from qaembed.serve.app import _map_files

    out = tmp_path / "maps"
    common = ["map", "--data", str(tiny_pair_dataset), "--max-points", "20", "--out", str(out)]
    first = CliRunner().invoke(app, [*common, "--base", str(tiny_model_dir), "--model", str(tiny_model_dir)])
    assert first.exit_code == 0, first.output + repr(first.exception)
    (out / "notes.txt").write_text("mine")
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    again = CliRunner().invoke(app, [*common, "--no-base", "--model", str(tiny_model_dir)])
    assert again.exit_code != 0 and "folder is not empty (holds a map" in str(again.exception)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    replaced = CliRunner().invoke(app, [*common, "--no-base", "--model", str(tiny_model_dir), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output + repr(replaced.exception)
    assert sorted(_map_files(out)) == [f"{tiny_model_dir.name}.png"]  # base.png went with the earlier map
    assert sorted(json.loads((out / "maps.json").read_text())["models"]) == [tiny_model_dir.name]
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("args, message", [
    (["--data", "{missing}"], "no such folder"),
    (["--data", "{pairs}", "--color-by", "tag"], "pair data maps colour by duplicate cluster"),
    (["--data", "{pairs}", "--max-points", "5"], "at least 10"),
    (["--data", "{pairs}", "--split", "holdout"], "allowed: train, dev, test"),
    (["--data", "{qa}"], "not a prepared dataset"),
])
def test_map_command_bad_input_is_a_clear_error(args, message, tiny_pair_dataset, tmp_path, monkeypatch):
    import qaembed.embedding_maps as maps

    monkeypatch.setattr(maps, "umap_available", lambda: True)  # the checks come first either way
    (tmp_path / "qa").mkdir()
    filled = [a.format(missing=tmp_path / "nope", pairs=tiny_pair_dataset, qa=tmp_path / "qa") for a in args]
    result = CliRunner().invoke(app, ["map", *filled, "--out", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert message in str(result.exception) + result.output


def test_map_command_without_umap_names_the_extra(tiny_pair_dataset, tmp_path, monkeypatch):
    import qaembed.embedding_maps as maps

    monkeypatch.setattr(maps, "umap_available", lambda: False)
    result = CliRunner().invoke(app, ["map", "--data", str(tiny_pair_dataset), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "pip install 'qaembed[maps]'" in str(result.exception)


def test_a_dollar_sign_in_a_tag_or_model_name_is_drawn_as_written(tmp_path):
    from qaembed.embedding_maps import MapSample, plot_map

    groups = ["$x^$", "c$", "\\frac{$"] * 4
    sample = MapSample([f"q{i}" for i in range(12)], ["t"] * 12, groups, "tag", available=12)
    coords = np.random.default_rng(0).normal(size=(12, 2))
    path = plot_map(coords, sample, "base: /models/$\\frac{$", tmp_path / "m.png", seed=0)  # was a mathtext ValueError
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("embeddings", "message"), [
    (np.ones((9, 4)), r"'embeddings' is a float64 array of shape \(9, 4\), not one row of numbers per sample point"),
    (np.ones(48), r"'embeddings' is a float64 array of shape \(48,\)"),
    (np.array(["a"] * 12), r"'embeddings' is a <U1 array"),
    (np.full((12, 4), np.nan), r"'embeddings' holds NaN or infinite values"),
])
def test_a_damaged_stored_map_sample_is_named(tmp_path, embeddings, message):
    from qaembed.embedding_maps import MapSample, load_sample_embeddings
    from qaembed.errors import DataError

    sample = MapSample([f"q{i}" for i in range(12)], ["t"] * 12, [""] * 12, "tag", available=12)
    path = tmp_path / "map_sample.npz"
    np.savez(path, ids=np.array(sample.ids), embeddings=embeddings)
    with pytest.raises(DataError, match=r"map_sample.npz: " + message):  # was a ValueError from the map or UMAP
        load_sample_embeddings(path, sample)
