"""What the base model already saw: training-data notes read from its model card.

A "zero-shot" baseline is only zero-shot if the base model never trained on the test data.
all-MiniLM-L6-v2, the default, was trained on Stack Exchange (title+body, answer) pairs from
dozens of sites (its ``README.md`` model card and ``data_config.json`` list them). This module
reads those two files from a local model folder and says, in plain sentences for the report,
whether the card names Stack Exchange and whether it names the sites of the suite's test data.

Example
-------
>>> training_sites('[{"name": "stackexchange_Title_Answer/beer.stackexchange.com.jsonl.gz"}]')
['beer.stackexchange.com']
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from qaembed.data.dataset import read_split

_SITE_FILE = re.compile(r"stackexchange_[A-Za-z_-]+/([A-Za-z0-9.-]+?)\.jsonl")
_MENTIONS = re.compile(r"stack\s*exchange", re.IGNORECASE)
DATE_SPLIT_HINT = (
    "to test on questions the base model cannot have seen, prepare a date split with test questions newer "
    "than its training data (suite: test_after: YYYY-MM-DD; data: qaembed data prepare --split by-date "
    "--test-after YYYY-MM-DD)"
)


def training_sites(data_config_text: str) -> list[str]:
    """Stack Exchange sites named in a sentence-transformers ``data_config.json`` (sorted, unique)."""
    try:
        entries = json.loads(data_config_text)
    except json.JSONDecodeError:
        return []
    names = [str(e.get("name", "")) for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    return sorted({m.group(1) for name in names for m in [_SITE_FILE.search(name)] if m})


def base_model_notes(model: str, dataset_dir: Path) -> list[str]:
    """Plain-language notes on what the base model's card says about Stack Exchange training data."""
    from qaembed.model import resolve_model

    folder = Path(resolve_model(model))
    card = folder / "README.md"
    if not folder.is_dir() or not card.is_file():
        return [f"The base model {model!r} has no local model card, so its training data could not be checked; "
                + DATE_SPLIT_HINT + "."]
    if not _MENTIONS.search(card.read_text(encoding="utf-8", errors="replace")):
        return []
    config_file = folder / "data_config.json"
    seen = set(training_sites(config_file.read_text(encoding="utf-8", errors="replace"))) if config_file.is_file() else set()
    test_sites = sorted({r.provenance.site for r in read_split(dataset_dir, "test") if r.provenance and r.provenance.site})
    notes = ["The base model's card names Stack Exchange Q&A among its training data"
             + (f" ({len(seen)} sites listed in its data_config.json)" if seen else "") + "."]
    overlap = [site for site in test_sites if site in seen]
    if overlap:
        notes.append(f"It trained on {', '.join(overlap)}, the site(s) of this test split: the zero-shot baseline may "
                     f"have seen these very questions and answers, so its score is inflated; {DATE_SPLIT_HINT}.")
    else:
        notes.append(f"None of this test split's sites ({', '.join(test_sites) or 'unknown'}) is listed by name, but the "
                     f"model was trained on this kind of (question, answer) pair; {DATE_SPLIT_HINT}.")
    return notes


def duplicate_training_sets(data_config_text: str) -> list[str]:
    """Duplicate-question training files named in a ``data_config.json`` (Quora, Stack Exchange duplicates).

    >>> duplicate_training_sets('[{"name": "quora_duplicates_triplets.jsonl.gz"}, {"name": "reddit.jsonl.gz"}]')
    ['quora_duplicates_triplets.jsonl.gz']
    """
    try:
        entries = json.loads(data_config_text)
    except json.JSONDecodeError:
        return []
    names = [str(e.get("name", "")) for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    return sorted(name for name in names if "duplicate" in name.lower())


def pair_base_model_notes(model: str, dataset_dir: Path) -> list[str]:
    """Pair data: whether the base model's ``data_config.json`` lists duplicate-question training sets."""
    from qaembed.jsonfiles import read_json
    from qaembed.model import resolve_model

    folder = Path(resolve_model(model))
    config_file = folder / "data_config.json"
    if not folder.is_dir() or not config_file.is_file():
        return [f"The base model {model!r} has no local data_config.json, so whether it trained on duplicate "
                "questions could not be checked."]
    sets = duplicate_training_sets(config_file.read_text(encoding="utf-8", errors="replace"))
    if not sets:
        return []
    manifest = read_json(Path(dataset_dir) / "manifest.json") if (Path(dataset_dir) / "manifest.json").is_file() else {}
    fmt = manifest.get("format", "")
    note = (f"The base model trained on duplicate-question pairs ({', '.join(sets)}): it has learnt this very task, "
            "so the zero-shot baseline is strong")
    if fmt == "pairs-qqp" and any("quora" in s for s in sets):
        note += ", and the QQP test questions may be among its Quora training triplets (its score may be inflated)"
    elif any("stackexchange" in s for s in sets):
        note += ", and it saw Stack Exchange duplicate questions, possibly these"
    return [note + "."]
