"""The loss-comparison grid: which runs a suite makes, under which shared budget.

A :class:`SuiteConfig` holds what every run shares (base model, data, compute budget,
batch size, sequence length, seeds, split caps, retrieval corpus) and the list of
:class:`GridEntry` rows: one
per loss configuration, each with its natural batching strategy. :func:`expand_runs`
turns it into concrete :class:`RunSpec` objects (entry x seed, plus the zero-shot
baseline), each with a hash of everything that determines its result, so a re-run can
tell a finished run from a stale one.

Presets (:data:`PRESETS`):

* ``quick`` (the default of :func:`build_suite_config` and ``qaembed suite``) — a smoke test of the
  whole default grid on a 2-core CPU in under 10 minutes: short sequences, a small budget,
  capped splits, one seed. It shows the machinery works; its differences are mostly noise.
* ``cpu`` — an answer on a 2-core CPU in under an hour: the main losses, three seeds, a
  budget and learning rate chosen by a measured sweep (``benchmarks/results/suite.md``).
On a prepared duplicate-question pair dataset (``docs/pairs.md``) the grid is :func:`pair_entries`
(unless a file lists its own entries) and the caps count pairs.

* ``full`` — for a GPU: all data, longer sequences, a larger budget, three seeds, and two
  extra runs on negatives mined by the base model (mining runs once per suite).

A YAML file (``qaembed suite --config FILE``) holds the same fields as :class:`SuiteConfig`,
optionally with ``preset: quick|full`` as the starting point, e.g.::

    preset: quick
    seeds: [0, 1]
    entries:
      - {name: infonce, loss: infonce, strategy: hard_negative}
      - {name: listwise, loss: listwise, strategy: listwise}
      - {name: infonce_maxsim, loss: infonce, strategy: hard_negative, scorer: {name: maxsim, projection_dim: 128}}

An entry's ``scorer`` is the training config's ``scorer`` section (default ``cosine``); its test
evaluation scores with ``eval_scorer`` (default: ``cosine`` for cosine, ``maxsim`` for maxsim and
combined).

Fairness (``docs/suite.md``): every training run starts from the same base weights and
spends the same compute budget (``budget`` in ``budget_unit``: texts or real tokens encoded,
or steps; see :mod:`qaembed.train.budget`), on the same training questions (by default the
questions every entry of the grid can use, ``train_question_set: common``), in the same
seeded order, and is evaluated on the same test questions against the same corpus. Each
run records what it really spent.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from qaembed.batching import STRATEGIES
from qaembed.errors import ConfigError, format_validation_error, validation_problems
from qaembed.options import Seed
from qaembed.records import QuestionTextMode
from qaembed.train.budget import BudgetUnit
from qaembed.train.config import Components, ScorerSection

BASELINE_NAME = "baseline"
REFERENCE_NAME = "infonce"  # the standard InfoNCE entry every loss is also compared with


class GridEntry(BaseModel):
    """One loss configuration of the grid, trained once per seed."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")  # row label in the report and run folder name
    loss: str  # a name in qaembed.losses.LOSSES
    loss_options: dict[str, Any] = Field(default_factory=dict)
    strategy: str  # a batching strategy name the loss accepts
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    description: str = ""  # one plain-language line for the report
    # the training scorer (the train config's `scorer` section: cosine | maxsim | combined, with its options)
    scorer: ScorerSection = Field(default_factory=ScorerSection)
    # how the test split is scored; None: the training scorer's (combined: maxsim, its late-interaction head)
    eval_scorer: Literal["cosine", "maxsim"] | None = None

    @property
    def test_scorer(self) -> str:
        """The scorer of this entry's test evaluation."""
        return self.eval_scorer or ("cosine" if self.scorer.name == "cosine" else "maxsim")

    def hash_payload(self) -> dict[str, Any]:
        """What of the entry enters a run's config hash (scorer fields only when not the defaults, so
        suites finished before entries had a scorer keep their hashes)."""
        payload = self.model_dump(exclude={"description", "scorer", "eval_scorer"})
        if self.scorer != ScorerSection() or self.eval_scorer is not None:
            payload["scorer"] = self.scorer.model_dump()
            payload["test_scorer"] = self.test_scorer
        return payload

    def training_sections(self) -> dict[str, Any]:
        """The entry as the ``strategy``, ``loss`` and ``scorer`` sections of a training config."""
        return {"strategy": {"name": self.strategy, "options": self.strategy_options},
                "loss": {"name": self.loss, "options": self.loss_options},
                "scorer": self.scorer.model_dump(exclude_none=True)}

    @model_validator(mode="after")
    def _components_fit(self) -> GridEntry:
        """The loss, strategy and scorer validated as a training config's sections, when the suite file is read."""
        sections = self.training_sections()
        try:
            Components.model_validate(sections)
        except ValidationError as exc:
            problems = []
            for problem in validation_problems(exc, sections):
                field = problem.field
                for section in ("loss", "strategy"):  # the entry's own vocabulary: loss, loss_options, ...
                    field = field.replace(f"{section}.options", f"{section}_options").replace(f"{section}.name", section)
                problems.append(f"{field}: {problem.message}" if field else problem.message)
            raise ValueError(f"entry {self.name!r}: " + "; ".join(problems)) from None
        return self

    @field_validator("name")
    @classmethod
    def _not_baseline(cls, value: str) -> str:
        if value == BASELINE_NAME:
            raise ValueError(f"{BASELINE_NAME!r} is reserved for the zero-shot base model row")
        return value


def default_entries() -> list[GridEntry]:
    """Every loss in :data:`qaembed.losses.LOSSES` with its natural strategy.

    Includes the original project's predefined configurations (InfoNCE standard and with a
    random answer, multiple positives with rank and with score weights, relaxed hard
    negative, triplet with hard negatives, listwise), the InfoNCE variants (standard, no
    in-batch negatives, no hard negatives: all on the same ``hard_negative`` batches, so
    only the loss's masks differ), MSE on votes, and listwise with and without in-batch
    negatives, and ``pair_bce`` (binary cross-entropy, on pooled cosine here).
    """
    hard = {"strategy": "hard_negative"}
    return [
        GridEntry(name="infonce", loss="infonce", **hard,
                  description="InfoNCE, standard: top answer vs in-batch negatives and the question's lower-voted answers"),
        GridEntry(name="infonce_random_answer", loss="infonce", strategy="infonce", strategy_options={"take_top": False},
                  description="InfoNCE with a seeded random answer of the question as the positive, in-batch negatives"),
        GridEntry(name="infonce_no_in_batch", loss="infonce", loss_options={"in_batch_negatives": False}, **hard,
                  description="InfoNCE with only the question's own lower-voted answers as negatives"),
        GridEntry(name="infonce_no_hard", loss="infonce", loss_options={"hard_negatives": False}, **hard,
                  description="InfoNCE with only other questions' answers as negatives"),
        GridEntry(name="multiple_positives_rank", loss="multiple_positives",
                  loss_options={"use_ranks": True, "rank_weight": 0.1}, strategy="multiple_positives",
                  description="top 3 answers all positives, weighted by vote rank"),
        GridEntry(name="multiple_positives_score", loss="multiple_positives",
                  loss_options={"use_scores": True, "score_weight": 0.05}, strategy="multiple_positives",
                  description="top 3 answers all positives, weighted by normalized votes"),
        GridEntry(name="relaxed_hard_negative", loss="relaxed_hard_negative", **hard,
                  description="soft target: 0.9 on the top answer, 0.1 shared by the question's other answers"),
        GridEntry(name="triplet_hard", loss="triplet", strategy="triplet", strategy_options={"neg_strategy": "hard_negative"},
                  description="triplet margin loss, a lower-voted answer of the same question as negative"),
        GridEntry(name="listwise", loss="listwise", strategy="listwise",
                  description="KL between score and vote distributions over the question's own answers"),
        GridEntry(name="listwise_in_batch", loss="listwise", loss_options={"in_batch_negatives": True}, strategy="listwise",
                  description="listwise, with other questions' answers as relevance-0 candidates"),
        GridEntry(name="mse_votes", loss="mse", **hard,
                  description="cosine similarity regressed onto normalized votes"),
        GridEntry(name="cosine_pair", loss="cosine_pair", loss_options={"labels": "relevance", "in_batch_negatives": True},
                  **hard, description="cosine regression onto relevance, other questions' answers onto 0"),
        GridEntry(name="pair_bce", loss="pair_bce", **hard,
                  description="binary cross-entropy on labelled pairs (ColTrast's late-interaction loss, here on pooled "
                              "cosine)"),
        GridEntry(name="multitask_infonce_listwise", loss="multitask",
                  loss_options={"parts": [{"loss": "infonce", "weight": 1.0}, {"loss": "listwise", "weight": 0.5}]},
                  **hard, description="InfoNCE + 0.5 x listwise on the same batches"),
    ]


def pair_entries() -> list[GridEntry]:
    """The grid on duplicate-question pair data (``docs/pairs.md``): the losses that accept the ``pairs`` strategy.

    ``infonce`` is sentence-transformers' MultipleNegativesRankingLoss with the labelled
    non-duplicates as hard negatives, ``multitask`` the original project's MNRL + CosineSimilarityLoss.
    """
    pairs = {"strategy": "pairs", "strategy_options": {"max_negatives": 1}}
    return [
        GridEntry(name="infonce", loss="infonce", loss_options={"temperature": 0.05}, **pairs,
                  description="MNRL: the duplicate vs in-batch negatives and one labelled non-duplicate (hard negative)"),
        GridEntry(name="cosine_pair", loss="cosine_pair", loss_options={"labels": "binary"}, **pairs,
                  description="CosineSimilarityLoss: cosine regressed onto the pair label (duplicate 1, labelled "
                              "non-duplicate 0)"),
        GridEntry(name="pair_bce", loss="pair_bce", **pairs,
                  description="binary cross-entropy on the labelled pairs and in-batch negatives"),
        GridEntry(name="multitask", loss="multitask",
                  loss_options={"parts": [{"loss": "infonce", "weight": 1.0, "options": {"temperature": 0.05}},
                                          {"loss": "cosine_pair", "weight": 1.0, "options": {"labels": "binary"}}]},
                  **pairs, description="the original project's multi-task loss: MNRL + CosineSimilarityLoss on the "
                                       "same batches"),
    ]


def mined_entries() -> list[GridEntry]:
    """Runs on negatives mined by the base model (``qaembed mine``); need ``mine_negatives: true``."""
    return [
        GridEntry(name="infonce_mined", loss="infonce", strategy="mined",
                  description="InfoNCE with negatives mined by the base model, plus in-batch negatives"),
        GridEntry(name="triplet_mined", loss="triplet", strategy="triplet", strategy_options={"neg_strategy": "mined"},
                  description="triplet margin loss with one mined negative"),
    ]


def uses_mined_negatives(entry: GridEntry) -> bool:
    return entry.strategy == "mined" or entry.strategy_options.get("neg_strategy") == "mined"


def check_entries(entries: list[GridEntry], data_kind: str | None = None) -> None:
    """With ``data_kind`` (``"qa"`` or ``"pairs"``): every entry's strategy must batch that kind of data
    (ConfigError naming the entry). Each entry's loss, strategy and scorer were validated when it was made."""
    for entry in entries:
        kind = STRATEGIES[entry.strategy].data_kind
        if data_kind is not None and kind != data_kind:
            if data_kind == "pairs":
                raise ConfigError(
                    f"suite entry {entry.name!r}: strategy {entry.strategy!r} batches Q&A records, but the data is "
                    f"duplicate-question pairs; pair entries use strategy 'pairs' (the default grid on pair data: "
                    f"{', '.join(e.name for e in pair_entries())})")
            raise ConfigError(f"suite entry {entry.name!r}: strategy {entry.strategy!r} batches duplicate-question "
                              "pairs, but the data is Q&A; give a pair dataset (qaembed data prepare --format pairs-*)")


class SuiteConfig(BaseModel):
    """Everything a suite shares across runs, plus the grid entries."""

    model_config = ConfigDict(extra="forbid")

    preset: str | None = None  # the preset this config started from (the report words a quick run as a smoke test)
    model: str = "minilm"
    query_text: QuestionTextMode = "title_body"  # question text used as the query, in training and evaluation
    # a prepared dataset folder, or the sources to prepare (a file may give "a,b" or a list); None: default sites
    data: list[str] | None = None
    # Field defaults are the ``quick`` preset's except the three it sets (PRESETS); `qaembed suite` with no options applies it.
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    budget_unit: BudgetUnit = "texts"  # what the budget counts: texts or real tokens encoded, or steps
    budget: int = Field(default=480, ge=1)  # per run, in budget_unit (the same for every loss)
    batch_size: int = Field(default=12, ge=2)  # questions per batch (same for every loss)
    learning_rate: float = Field(default=1e-4, gt=0)
    warmup_ratio: float = Field(default=0.1, ge=0, le=1)  # share of steps with linear warm-up
    max_seq_length: int = Field(default=64, ge=8)
    eval_every: int | None = Field(default=8, ge=1)  # dev evaluation interval in steps (also at 0 and the end)
    # Caps take the first N questions of a split file; prepared splits are in a seeded hash order,
    # so the first N are a seeded random subset, the same for every run.
    train_questions: int | None = Field(default=600, ge=1)
    dev_questions: int | None = Field(default=40, ge=1)
    test_questions: int | None = Field(default=300, ge=1)
    # common: every entry trains on the train questions all entries can use (e.g. 2+ answers when
    # the grid has listwise); each: every entry on the questions its own strategy can use
    train_question_set: Literal["common", "each"] = "common"
    # retrieval corpus of the test evaluation: every answer of the prepared data (train and dev
    # answers as distractors), or the test questions' answers only
    corpus: Literal["all", "test"] = "all"
    # corpus "all": at most this many distractor questions' answers (the first in split order: train,
    # dev, then test questions beyond test_questions); None: every one. Encoding the corpus is most of
    # an evaluation's cost on a CPU, so the CPU presets cap it and the report states the corpus size.
    distractor_questions: int | None = Field(default=None, ge=0)
    # date split when the suite prepares its data from sources: test = questions created on/after
    # test_after (e.g. newer than the base model's training data); dev_after likewise for dev
    test_after: date | None = None
    dev_after: date | None = None
    baseline: bool = True  # evaluate the zero-shot base model as the baseline row
    keep_models: bool = False  # keep each run's trained weights (large) after evaluation
    mine_negatives: bool = False  # mine negatives with the base model once; every run then uses that data
    save_every: int | None = Field(default=None, ge=1)  # checkpoint period (resume mid-run); None: none
    # embedding maps in the report: every run stores its embeddings of this many sampled test questions
    # (seeded, the same sample for every run; qaembed.embedding_maps); None: no maps
    map_points: int | None = Field(default=600, ge=10)
    entries: list[GridEntry] = Field(default_factory=default_entries, min_length=1)

    @field_validator("data", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        if isinstance(value, str):  # `--data a,b` / `data: a,b`
            value = [part.strip() for part in value.split(",") if part.strip()]
            if not value:
                raise ValueError("no sources given")
        return value

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        return seeds

    @model_validator(mode="after")
    def _unique_names(self) -> SuiteConfig:
        names = [e.name for e in self.entries]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"entries: duplicate names {duplicated}")
        needing = [e.name for e in self.entries if uses_mined_negatives(e)]
        if needing and not self.mine_negatives:
            raise ValueError(f"entries {needing} use mined negatives: set mine_negatives: true")
        return self

    def select(self, names: list[str]) -> SuiteConfig:
        """A copy with only the named entries (error listing the known names otherwise)."""
        known = {e.name: e for e in self.entries}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"--losses: unknown entries {unknown}; known: {', '.join(known)}")
        return self.model_copy(update={"entries": [known[n] for n in names]})


def cpu_entries() -> list[GridEntry]:
    """The ``cpu`` preset's grid: standard InfoNCE and the graded-relevance losses that differ most from it."""
    wanted = ("infonce", "multiple_positives_score", "relaxed_hard_negative", "listwise_in_batch", "mse_votes")
    by_name = {e.name: e for e in default_entries()}
    return [by_name[name] for name in wanted]


# Each preset is a SuiteConfig that sets only what differs from the field defaults (the defaults are
# the ``quick`` preset's, bar the three fields it sets); a file or the CLI then overrides any field.
PRESETS: dict[str, SuiteConfig] = {
    "quick": SuiteConfig(
        eval_every=None,  # dev at step 0 and at the end only
        distractor_questions=100,
        map_points=300,
    ),
    "cpu": SuiteConfig(
        seeds=[0, 1, 2],
        budget=2400,
        batch_size=16,
        learning_rate=5e-5,  # the sweep's best setting (benchmarks/results/suite.md)
        eval_every=20,
        train_questions=None,
        dev_questions=60,
        test_questions=None,
        distractor_questions=400,
        entries=cpu_entries(),
    ),
    "full": SuiteConfig(
        seeds=[0, 1, 2],
        budget=64_000,
        batch_size=32,
        learning_rate=2e-5,
        save_every=250,
        max_seq_length=256,
        eval_every=100,
        train_questions=None,
        dev_questions=None,
        test_questions=None,
        keep_models=True,
        mine_negatives=True,
        entries=default_entries() + mined_entries(),
    ),
}


def build_suite_config(
    preset: str | None = None, file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> SuiteConfig:
    """Merge, in order: a preset, a YAML file (which may name its own preset), then overrides.

    Raises :class:`ConfigError` naming the file and field on any invalid value.
    """
    values: dict[str, Any] = {}
    file_values: dict[str, Any] = {}
    if file is not None:
        from qaembed.train.config import read_config_file

        file_values = read_config_file(file)  # safe_load; a folder, bad bytes or bad YAML named with the file
        file_preset = file_values.pop("preset", None)
        preset = preset or file_preset
    if preset is None and file is None:
        preset = "quick"  # what `qaembed suite` runs with no options
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
        values.update(PRESETS[preset].model_dump(exclude_unset=True))
    values.update(file_values)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    values["preset"] = preset
    data = values.get("data")
    folder = data if isinstance(data, str) else (data[0] if isinstance(data, list) and len(data) == 1 else None)
    if "entries" not in file_values and isinstance(folder, str) and Path(folder).is_dir():
        from qaembed.data.pairs import is_pair_dataset

        if is_pair_dataset(folder):  # pair data: the pair-capable losses (a file's own entries are kept)
            values["entries"] = pair_entries()
    try:
        return SuiteConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(file) if file else "suite config", values)) from exc


_RUN_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)?$")


class RunSpec(BaseModel):
    """One concrete run: a grid entry with a seed, or the baseline (no training)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["train", "baseline"]
    entry: GridEntry | None  # None for the baseline
    seed: int
    run_id: str  # folder below <suite>/runs, e.g. "infonce/seed0" or "baseline"
    config_hash: str  # hash of everything that determines this run's result

    @field_validator("run_id")
    @classmethod
    def _below_runs(cls, value: str) -> str:
        """The report joins the run id read from ``suite.json`` to ``SUITE/runs``: no ``..`` part, no absolute path
        (every part starts as an entry name does), so no run is read from outside the suite folder."""
        if not _RUN_ID.match(value):
            raise ValueError(f"{value!r} is not a run folder below runs/ (ENTRY/seedN or baseline); a run id may not "
                             "leave the suite folder")
        return value

    @property
    def label(self) -> str:
        return self.entry.name if self.entry is not None else BASELINE_NAME


def _hash(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def shared_settings(config: SuiteConfig) -> dict[str, Any]:
    """The settings every training run shares (what enters each run's config hash)."""
    return config.model_dump(exclude={"entries", "seeds", "data", "baseline", "keep_models", "save_every",
                                      "mine_negatives", "preset", "map_points"})


def expand_runs(config: SuiteConfig, data_hash: str, train_set_hash: str = "") -> list[RunSpec]:
    """The baseline (if enabled) and every entry x seed, each with its config hash.

    ``data_hash`` identifies the exact prepared data the runs use and ``train_set_hash`` the
    training questions (:func:`qaembed.suite.runner.train_question_ids`), so new data or a
    grid change that changes the common question set invalidates finished runs.
    """
    shared = shared_settings(config)
    runs: list[RunSpec] = []
    if config.baseline:
        baseline_key = {"kind": "baseline", "model": config.model, "max_seq_length": config.max_seq_length,
                        "query_text": config.query_text, "test_questions": config.test_questions, "data": data_hash,
                        "dev_questions": config.dev_questions,  # pair data: the dev pairs choose its thresholds
                        "corpus": config.corpus, "distractor_questions": config.distractor_questions}
        runs.append(RunSpec(kind="baseline", entry=None, seed=0, run_id=BASELINE_NAME,
                            config_hash=_hash(baseline_key)))
    for entry in config.entries:
        for seed in config.seeds:
            key = {"kind": "train", "shared": shared, "entry": entry.hash_payload(),
                   "seed": seed, "data": data_hash, "train_set": train_set_hash}
            runs.append(RunSpec(kind="train", entry=entry, seed=seed, run_id=f"{entry.name}/seed{seed}",
                                config_hash=_hash(key)))
    return runs
