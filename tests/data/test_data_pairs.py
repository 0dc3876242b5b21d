"""Pair sources, the split by duplicate cluster, bad input, and ``data prepare --format`` (see docs/pairs.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qaembed.data.dataset import SPLITS
from qaembed.data.pairs import (
    DelimitedPairs,
    JsonlPairs,
    StackExchangeDuplicates,
    duplicate_clusters,
    is_pair_dataset,
    parse_pair_columns,
    prepare_pairs,
    read_pair_split,
    split_pairs,
    strip_duplicate_notice,
)
from qaembed.errors import ConfigError, DataError

FIXTURES = Path(__file__).parent / "fixtures" / "pairs"
ENGLISH_COLUMNS = "qid1=q1_id,qid2=q2_id,text1=q1_title,body1=q1_body,text2=q2_title,body2=q2_body,label=duplicate_label"


def _split_questions(folder: Path) -> dict[str, set[str]]:
    return {s: {q.id for p in read_pair_split(folder, s) for q in (p.question1, p.question2)} for s in SPLITS}


def _assert_disjoint(folder: Path) -> None:
    questions = _split_questions(folder)
    assert not questions["train"] & questions["dev"]
    assert not questions["train"] & questions["test"]
    assert not questions["dev"] & questions["test"]


def test_qqp_rows_become_pairs():
    pairs = list(DelimitedPairs(FIXTURES / "qqp.tsv", kind="pairs-qqp").pairs())
    assert len(pairs) == 8
    first = pairs[0]
    assert (first.id, first.question1.id, first.question2.id, first.label) == ("qqp:1", "qqp:1", "qqp:2", 1)
    assert first.question2.text == "What is the best way to learn Python?"
    assert first.source == "pairs-qqp:qqp"


def test_clusters_are_connected_components():
    clusters = duplicate_clusters(list("abcdef"), [("b", "c"), ("a", "c"), ("e", "f")])
    assert clusters == {"a": "a", "b": "a", "c": "a", "d": "d", "e": "e", "f": "e"}


def test_split_is_by_cluster_and_drops_are_counted():
    pairs = list(DelimitedPairs(FIXTURES / "qqp.tsv", kind="pairs-qqp").pairs())
    for seed in range(20):
        by_split, stats = split_pairs(pairs, seed, (0.5, 0.25, 0.25))
        kept = sum(len(v) for v in by_split.values())
        assert kept + stats["dropped_cross_split"] == len(pairs)
        assert sum(p.label for v in by_split.values() for p in v) == 4  # no positive is ever dropped
        seen: dict[str, str] = {}
        for split, split_pairs_ in by_split.items():
            for pair in split_pairs_:
                for q in (pair.question1.id, pair.question2.id):
                    assert seen.setdefault(q, split) == split
        # the cluster {1, 2, 3} stays together
        assert len({seen.get(f"qqp:{q}") for q in (1, 2, 3)} - {None}) == 1
        _, all_pairs = split_pairs(pairs, seed, (0.5, 0.25, 0.25), "all-pairs")
        assert all_pairs["dropped_cross_split"] == 0
    assert stats["total"] == {"pairs": 8, "positives": 4, "negatives": 4, "questions": 13, "clusters": 9,
                              "duplicate_clusters": 3, "largest_cluster": 3}


def test_split_is_deterministic_and_order_free(tmp_path):
    pairs = list(DelimitedPairs(FIXTURES / "qqp.tsv", kind="pairs-qqp").pairs())
    a, _ = split_pairs(pairs, 3, (0.5, 0.25, 0.25))
    b, _ = split_pairs(list(reversed(pairs)), 3, (0.5, 0.25, 0.25))
    assert {s: [p.id for p in v] for s, v in a.items()} == {s: [p.id for p in v] for s, v in b.items()}


def test_duplicate_notice_is_stripped():
    assert strip_duplicate_notice("\nPossible Duplicate:\nA?\nB?\n\nBody.") == "Body."
    assert strip_duplicate_notice("This question already has an answer here:\n\nX?\n\nBody.") == "X?\n\nBody."
    assert strip_duplicate_notice("Possible Duplicate:\r\nA?\r\n\r\nBody.") == "Body."
    assert strip_duplicate_notice("No notice here.") == "No notice here."


def test_csv_with_mapping_strips_the_leak():
    pairs = list(DelimitedPairs(FIXTURES / "english.csv", columns=parse_pair_columns(ENGLISH_COLUMNS)).pairs())
    assert [p.label for p in pairs] == [1, 0]
    assert pairs[0].question1.text == "Period after a quote?\n\nI heard you always put it inside."
    assert pairs[0].question1.id == "english:23" and pairs[1].question1.id == "english:23"
    assert "Possible Duplicate" not in pairs[0].question1.text


def test_se_duplicates_join_postlinks_and_posts():
    source = StackExchangeDuplicates(FIXTURES / "se", progress=False)
    pairs = list(source.pairs())
    assert [(p.question1.id, p.question2.id) for p in pairs] == [
        ("se:7", "se:3"), ("se:9", "se:3")]
    assert pairs[0].question1.text == "Qubit definition\n\nDefine a qubit please."  # notice removed
    assert pairs[0].question2.text == "What is a qubit?\n\nI want to know what a qubit is."
    assert pairs[0].question2.provenance.url == "https://se/questions/3"
    assert pairs[0].question2.provenance.author.url == "https://se/users/12"
    assert source.notes == {"other_link_types": 1, "repeated_links": 1, "links_to_missing_questions": 1}


def test_jsonl_pairs_and_bad_label(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"a": "Q one?", "b": "Q two?", "y": 1}, {"a": "Q one?", "b": "Q three?", "y": "maybe"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    columns = parse_pair_columns("text1=a,text2=b,label=y")
    with pytest.raises(DataError, match=r"p.jsonl:2, field 'y': a label must be 0 or 1"):
        list(JsonlPairs(path, columns=columns).pairs())
    stats = prepare_pairs([path], tmp_path / "out", "pairs-jsonl", columns=columns, skip_bad=True)
    assert stats["skipped_bad"] == {"invalid_label": 1}
    assert stats["total"]["pairs"] == 1


@pytest.mark.parametrize("line, reason, message", [
    ("9\t1\t2\tA?\tB?\t2", "invalid_label", r"qqp.tsv:2, field 'is_duplicate': a label must be 0 or 1"),
    ("9\t1\t\tA?\tB?\t1", "missing_field", r"qqp.tsv:2, field 'qid2': missing question id"),
    ("9\t1\t2\t\tB?\t1", "missing_field", r"qqp.tsv:2, field 'question1': missing question text"),
    ("9\t1\t1\tA?\tA?\t1", "self_pair", r"qqp.tsv:2, field 'qid2'"),
    ("9\t1\t2\tA?\t1", "malformed_csv", r"qqp.tsv:2: 5 cells, header has 6"),
    ("9\tx y\t2\tA?\tB?\t1", "invalid_id", None),
])
def test_bad_qqp_rows(tmp_path, line, reason, message):
    path = tmp_path / "qqp.tsv"
    header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
    path.write_text(header + line + "\n" + "10\t3\t4\tC?\tD?\t0\n")
    if message is not None:
        with pytest.raises(DataError, match=message):
            prepare_pairs([path], tmp_path / "out", "pairs-qqp")
    if reason == "invalid_id":  # text ids are allowed in QQP-like files
        assert prepare_pairs([path], tmp_path / "ok", "pairs-qqp")["total"]["pairs"] == 2
        return
    stats = prepare_pairs([path], tmp_path / "skip", "pairs-qqp", skip_bad=True)
    assert stats["skipped_bad"] == {reason: 1}
    assert stats["total"]["pairs"] == 1


def test_missing_column_names_the_mapping(tmp_path):
    with pytest.raises(DataError, match=r"missing column\(s\) text1, text2, label.*--pair-columns"):
        prepare_pairs([FIXTURES / "english.csv"], tmp_path / "out", "pairs-csv")
    with pytest.raises(ConfigError, match="unknown field 'question'"):
        parse_pair_columns("question=q1")


def test_prepare_writes_a_pair_dataset(tmp_path):
    out = tmp_path / "qqp"
    stats = prepare_pairs([FIXTURES / "qqp.tsv"], out, "pairs-qqp", seed=1, split=(0.5, 0.25, 0.25))
    assert is_pair_dataset(out)
    assert sorted(p.name for p in out.iterdir()) == [
        "dev.pairs.jsonl", "manifest.json", "stats.json", "test.pairs.jsonl", "train.pairs.jsonl"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "pairs" and manifest["split"]["mode"] == "by-cluster"
    assert sum(manifest["files"][s]["pairs"] for s in SPLITS) + stats["dropped_cross_split"] == 8
    _assert_disjoint(out)


def test_cli_prepare_pairs(qaembed_cli, tmp_path):
    out = tmp_path / "se"
    result = qaembed_cli("data", "prepare", "--format", "se-duplicates", str(FIXTURES / "se"), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert "Pair dataset statistics" in result.stdout and "dropped_cross_split" in result.stdout
    assert is_pair_dataset(out)
    bad = qaembed_cli("data", "prepare", "--format", "pairs-xml", str(FIXTURES / "se"), "--out", str(tmp_path / "x"))
    assert bad.exit_code == 2 and "allowed: qa, pairs-qqp" in bad.stderr


def test_real_qqp_10k(shared_data, tmp_path):
    path = shared_data / "pairs" / "qqp" / "dev_10k.tsv"
    out = tmp_path / "qqp"
    stats = prepare_pairs([path], out, "pairs-qqp", split_by="duplicates", progress=False)
    assert stats["total"] == {"pairs": 10000, "positives": 3686, "negatives": 6314, "questions": 19387,
                              "clusters": 15706, "duplicate_clusters": 3278, "largest_cluster": 25}
    assert stats["dropped_cross_split"] == 2224
    assert {s: stats["splits"][s]["pairs"] for s in SPLITS} == {"train": 6967, "dev": 394, "test": 415}
    _assert_disjoint(out)
    all_pairs = prepare_pairs([path], tmp_path / "all", "pairs-qqp", progress=False)  # the default
    assert all_pairs["dropped_cross_split"] == 0
    assert {s: all_pairs["splits"][s]["pairs"] for s in SPLITS} == {"train": 8025, "dev": 1005, "test": 970}
    _assert_disjoint(tmp_path / "all")


def test_real_english_pairs(shared_data, tmp_path):
    path = shared_data / "pairs" / "english.stackexchange.com" / "pairs_1000.csv"
    stats = prepare_pairs([path], tmp_path / "en", "pairs-csv", columns=parse_pair_columns(ENGLISH_COLUMNS),
                          progress=False)
    assert stats["total"]["pairs"] == 1000 and stats["total"]["positives"] == 500
    texts = [q.text for s in SPLITS for p in read_pair_split(tmp_path / "en", s) for q in (p.question1, p.question2)]
    assert not any(t.lower().startswith("possible duplicate") or "\n\npossible duplicate:" in t.lower() for t in texts)
    _assert_disjoint(tmp_path / "en")


def test_real_se_postlinks(shared_data, tmp_path):
    site = shared_data / "stackexchange" / "quantumcomputing.stackexchange.com"
    stats = prepare_pairs([site], tmp_path / "qc", "se-duplicates", progress=False)
    assert stats["total"]["pairs"] == 11  # the README: 14 duplicate rows, 11 with both ends among its questions
    assert stats["sources"]["quantumcomputing.stackexchange.com"]["notes"]["links_to_missing_questions"] == 3
    _assert_disjoint(tmp_path / "qc")
    clusters = {}
    for s in SPLITS:
        for p in read_pair_split(tmp_path / "qc", s):
            assert p.label == 1
            assert p.question1.provenance.url.startswith("https://quantumcomputing.stackexchange.com/questions/")
            clusters.setdefault(s, set()).update((p.question1.id, p.question2.id))


def test_hf_pairs_with_column_mapping(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "hf_pairs"
    datasets.Dataset.from_dict({
        "q1": ["How do I learn Python?", "Why is the sky blue?", "How do I learn Python?"],
        "q2": ["Best way to learn Python?", "Why does the sky look blue?", "How do I cook rice?"],
        "dup": [1, 1, 0],
    }).save_to_disk(str(folder))
    stats = prepare_pairs([f"hf:{folder}"], tmp_path / "out", "pairs-hf",
                          columns=parse_pair_columns("text1=q1,text2=q2,label=dup"), progress=False)
    assert stats["total"] == {"pairs": 3, "positives": 2, "negatives": 1, "questions": 5, "clusters": 3,
                              "duplicate_clusters": 2, "largest_cluster": 2}
    with pytest.raises(DataError, match=r"missing column\(s\) text1"):
        prepare_pairs([f"hf:{folder}"], tmp_path / "bad", "pairs-hf")


def test_cli_stats_skip_bad_and_by_date(qaembed_cli, tmp_path):
    path = tmp_path / "qqp.tsv"
    path.write_text("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t1\t2\tA?\tB?\tyes\n2\t3\t4\tC?\tD?\t1\n")
    failed = qaembed_cli("data", "prepare", "--format", "pairs-qqp", str(path), "--out", str(tmp_path / "a"))
    assert failed.exit_code == 2 and "qqp.tsv:2, field 'is_duplicate'" in failed.stderr
    skipped = qaembed_cli("data", "prepare", "--format", "pairs-qqp", str(path), "--out", str(tmp_path / "b"),
                          "--skip-bad")
    assert skipped.exit_code == 0 and "skipped bad records: invalid_label=1" in skipped.stdout
    stats = qaembed_cli("data", "stats", str(tmp_path / "b"))
    assert stats.exit_code == 0 and "Pair dataset statistics" in stats.stdout
    by_date = qaembed_cli("data", "prepare", "--format", "pairs-qqp", str(path), "--out", str(tmp_path / "c"),
                          "--split", "by-date")
    assert by_date.exit_code == 2 and "split by duplicate cluster" in by_date.stderr


def test_empty_question_id_in_a_csv_with_ids(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("qid1,qid2,text1,text2,label\n1,,A?,B?,1\n,,C?,D?,0\n")
    with pytest.raises(DataError, match=r"p.csv:2, field 'qid2': missing question id"):
        prepare_pairs([path], tmp_path / "out", "pairs-csv")
    # without id columns, a question is its text
    path.write_text("text1,text2,label\nA?,B?,1\nB?,C?,1\n")
    stats = prepare_pairs([path], tmp_path / "text", "pairs-csv", progress=False)
    assert stats["total"]["questions"] == 3 and stats["total"]["largest_cluster"] == 3


def test_cli_pair_options_need_a_pair_format(qaembed_cli, tmp_path):
    result = qaembed_cli("data", "prepare", str(FIXTURES / "se"), "--pair-columns", "text1=a", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2 and "apply to pair data" in result.stderr


def test_se_duplicates_bad_rows(tmp_path):
    import shutil

    site = tmp_path / "se"
    shutil.copytree(FIXTURES / "se", site)
    links = (site / "PostLinks.xml").read_text(encoding="utf-8-sig")
    (site / "PostLinks.xml").write_text(links.replace('PostId="9"', 'PostId="nine"'), encoding="utf-8")
    with pytest.raises(DataError, match=r"PostLinks.xml:5, field 'PostId': not an integer"):
        prepare_pairs([site], tmp_path / "out", "se-duplicates", progress=False)
    stats = prepare_pairs([site], tmp_path / "skip", "se-duplicates", skip_bad=True, progress=False)
    assert stats["skipped_bad"] == {"non_numeric": 1} and stats["total"]["pairs"] == 1
    (site / "PostLinks.xml").write_text(links, encoding="utf-8")
    (site / "Posts.xml").write_text((FIXTURES / "se" / "Posts.xml").read_text(encoding="utf-8-sig")[:-40],
                                    encoding="utf-8")  # truncated XML
    with pytest.raises(DataError, match="malformed or truncated XML"):
        prepare_pairs([site], tmp_path / "trunc", "se-duplicates", progress=False)


@pytest.mark.slow
def test_real_qqp_base_model_eval(shared_data, tmp_path, qaembed_cli):
    """Base all-MiniLM-L6-v2 on the QQP 10k test split (split by duplicate cluster, seed 13): docs/pairs.md."""
    out = tmp_path / "qqp"
    prepare_pairs([shared_data / "pairs" / "qqp" / "dev_10k.tsv"], out, "pairs-qqp", split_by="duplicates", progress=False)
    result = qaembed_cli("eval", "--model", "minilm", "--data", str(out), "--split", "test", "--json",
                         "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout[result.stdout.index("{"):])["summary"]
    assert summary["retrieval/mrr@10"] == pytest.approx(0.9590, abs=5e-4)
    assert summary["classification/average_precision"] == pytest.approx(0.9668, abs=5e-4)
