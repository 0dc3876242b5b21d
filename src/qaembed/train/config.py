"""The typed configuration of a training run (``qaembed train --config FILE``).

A config file is YAML or JSON with six sections (every key optional except
``data.dataset``; unknown keys are errors)::

    model:    {base: minilm, max_seq_length: 256, projection_dim: null, pooling: null,
               gradient_checkpointing: false}
    data:     {dataset: path/to/prepared, query_text: title_body, max_train_questions: null,
               max_dev_questions: null, train_questions_file: null}
    strategy: {name: infonce, options: {}}
    loss:     {name: infonce, options: {temperature: 0.05}}
    scorer:   {name: cosine}    # or maxsim / combined, see ScorerSection; `scorer: maxsim` is short for {name: maxsim}
    training: {batch_size: 32, mini_batch_size: null, max_steps: null, epochs: 1, lr: 2.0e-5,
               warmup_ratio: 0.1, weight_decay: 0.01, scheduler: linear, max_grad_norm: 1.0,
               budget: null, mixed_precision: "no", seed: 42, dev_evaluation: true, eval_every: null, eval_metric: retrieval/ndcg@10,
               early_stopping_patience: null, save_every: 500, gather_across_devices: false,
               log_every: 10, trackers: []}

:func:`load_config` reads a file, applies ``--set key=value`` overrides (values parsed as
YAML, so ``--set training.lr=1e-4`` is a float and ``--set model.projection_dim=null`` is
None) and validates; every problem is a :class:`~qaembed.errors.ConfigError` naming the key.
Loss and strategy options are typed by the registries (``config.loss.options`` is the named
loss's own config) and the loss/strategy pairing is checked by :func:`check_pairing`, so a bad
config fails when it is read, before any model loads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from qaembed.batching import STRATEGIES, StrategyConfig
from qaembed.errors import ConfigError, format_validation_error
from qaembed.losses import LOSSES, check_strategy
from qaembed.model import DEFAULT_MODEL, PoolingMode
from qaembed.options import Seed, named_union
from qaembed.records import QuestionTextMode
from qaembed.train.budget import Budget


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelSection(_Section):
    base: str = DEFAULT_MODEL  # built-in name, local path or Hugging Face id
    max_seq_length: int = Field(256, ge=8, le=8192)
    projection_dim: int | None = Field(None, ge=1)  # Dense head + Normalize after pooling
    pooling: PoolingMode | None = None  # None keeps the base model's pooling
    gradient_checkpointing: bool = False


class DataSection(_Section):
    dataset: Path  # a prepared dataset folder (train.jsonl, dev.jsonl, ...; or pair data: train.pairs.jsonl, ...)
    # on pair data the caps and the ids file below count pairs, not questions (train/data.py)
    query_text: QuestionTextMode = "title_body"
    max_train_questions: int | None = Field(None, ge=1)  # first N train questions (file order)
    max_dev_questions: int | None = Field(None, ge=1)
    # a text file of train question ids, one per line: train only on these (split-file order kept;
    # applied before max_train_questions); the suite writes one so every loss sees the same questions
    train_questions_file: Path | None = None


# `strategy: {name, options}` / `loss: {name, options}`: tagged unions over the registries, so
# `config.loss.options` is the named loss's own typed config (e.g. InfoNCEConfig) and a bad option
# or name fails when the file is read; options are written back as given (defaults omitted)
StrategySection = named_union(STRATEGIES, default="infonce")
LossSection = named_union(LOSSES, default="infonce")


_ADAPTERS = {"strategy": TypeAdapter(StrategySection), "loss": TypeAdapter(LossSection)}


def _section(kind: str) -> Any:
    """The default ``strategy`` or ``loss`` section, ``{name: infonce}``."""
    return _ADAPTERS[kind].validate_python({"name": "infonce"})


class CombinedWeights(_Section):
    pooled: float = Field(ge=0, le=1000)  # weight of the loss on the pooled cosine scores
    maxsim: float = Field(ge=0, le=1000)  # weight of the loss on the MaxSim scores

    @model_validator(mode="after")
    def _check(self) -> CombinedWeights:
        if self.pooled == 0 and self.maxsim == 0:
            raise ValueError("at least one weight must be > 0")
        return self


ScorerName = Literal["cosine", "maxsim", "combined"]


class ScorerSection(_Section):
    """How embeddings become the (n_q, n_d) score matrix the loss sees.

    * ``cosine`` (default): pooled sentence embeddings, cosine similarity (unchanged behaviour);
    * ``maxsim``: token embeddings (optional ``projection_dim`` projection, L2 per token) and
      MaxSim; ``reduce: mean`` (default) divides by the query's real tokens, so scores lie in
      [-1, 1] like cosines and every loss's defaults apply; ``sum`` is ColBERT's raw sum;
    * ``combined``: one forward pass, both score matrices; the loss is
      ``weights.pooled * pooled_loss(cosine) + weights.maxsim * maxsim_loss(MaxSim)``, each part
      logged (``loss/pooled``, ``loss/maxsim``). ``pooled_loss`` / ``maxsim_loss`` default to the
      ``loss`` section.
    """

    name: ScorerName = "cosine"
    projection_dim: int | None = Field(None, ge=1)  # token projection (Dense, no bias); None: the hidden size
    reduce: Literal["mean", "sum"] = "mean"  # MaxSim over query tokens: mean (in [-1, 1]) or sum (ColBERT)
    query_length: int | None = Field(None, ge=1)  # query tokens beyond it take no part in MaxSim
    doc_chunk_size: int | None = Field(None, ge=1)  # MaxSim over this many documents at a time (memory)
    markers: bool = False  # ColBERT/PyLate marker tokens "[Q] " / "[D] " after [CLS] (added to the vocabulary)
    query_expansion: bool = False  # pad queries to query_length with [MASK] tokens that take part in MaxSim
    weights: CombinedWeights | None = None  # combined only (required there)
    pooled_loss: LossSection | None = None  # combined only: loss on the pooled cosine scores
    maxsim_loss: LossSection | None = None  # combined only: loss on the MaxSim scores

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> ScorerSection:
        if self.name == "combined" and self.weights is None:
            raise ValueError("scorer 'combined' needs weights: {pooled: w, maxsim: w}")
        if self.name != "combined":
            extra = [key for key in ("weights", "pooled_loss", "maxsim_loss") if getattr(self, key) is not None]
            if extra:
                raise ValueError(f"{', '.join(extra)}: only for scorer 'combined' (scorer is {self.name!r})")
        if self.name == "cosine":
            extra = [key for key in ("projection_dim", "query_length", "doc_chunk_size") if getattr(self, key) is not None]
            extra += [key for key in ("markers", "query_expansion") if getattr(self, key)]
            if extra:
                raise ValueError(f"{', '.join(extra)}: only for scorers 'maxsim' and 'combined' (scorer is 'cosine')")
        if self.query_expansion and self.query_length is None:
            raise ValueError("query_expansion pads queries to query_length: set query_length (e.g. 32)")
        return self


class TrainingSection(_Section):
    batch_size: int = Field(32, ge=1)  # questions per step (per process)
    mini_batch_size: int | None = Field(None, ge=1)  # GradCache chunk in texts; None = off
    max_steps: int | None = Field(None, ge=1)  # overrides epochs when set
    # {unit: texts|tokens|steps, amount: N}: stop once N texts/tokens are encoded (train/budget.py);
    # overrides epochs, excludes max_steps
    budget: Budget | None = None
    epochs: float = Field(1.0, gt=0, allow_inf_nan=False)
    lr: float = Field(2e-5, gt=0, allow_inf_nan=False)
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.01, ge=0, allow_inf_nan=False)
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    max_grad_norm: float | None = Field(1.0, gt=0, allow_inf_nan=False)  # None = no clipping
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    seed: Seed = 42
    # false: no dev evaluation at all (no best_model/, result.final_dev null); the fastest way to train
    # when the model is evaluated afterwards (qaembed eval, the suite)
    dev_evaluation: bool = True
    eval_every: int | None = Field(None, ge=1)  # steps; dev is also evaluated at step 0 and at the end
    eval_metric: str = "retrieval/ndcg@10"  # a key of EvalResult.summary; higher is better
    early_stopping_patience: int | None = Field(None, ge=1)  # evaluations without improvement
    save_every: int | None = Field(500, ge=1)  # checkpoint period in steps; None = only at the end
    gather_across_devices: bool = False  # in-batch negatives from every process
    log_every: int = Field(10, ge=1)
    trackers: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> TrainingSection:
        if self.budget is not None and self.max_steps is not None:
            raise ValueError("set either max_steps or budget, not both")
        if self.early_stopping_patience is not None and self.eval_every is None:
            raise ValueError("early_stopping_patience needs eval_every (evaluations to count)")
        if not self.dev_evaluation and (self.eval_every is not None or self.early_stopping_patience is not None):
            raise ValueError("dev_evaluation: false evaluates nothing, so eval_every and early_stopping_patience "
                             "must be null")
        return self


def check_pairing(strategy: Any, loss: Any, scorer: ScorerSection) -> None:
    """ValueError unless the loss (and a combined scorer's own losses) accept the batching strategy.

    Each loss declares its strategies (``RankingLoss.strategies``, narrowed by its options through
    ``strategies_for``: ``multitask`` accepts what all its parts accept).
    """
    if isinstance(strategy.options, StrategyConfig) and "query_text" in strategy.options.model_fields_set:
        raise ValueError("strategy.options.query_text: set data.query_text instead (it also drives evaluation)")
    sections = [("", loss)] + [(f"scorer.{part}: ", getattr(scorer, part)) for part in ("pooled_loss", "maxsim_loss")]
    for prefix, section in sections:
        if section is not None:
            try:
                check_strategy(section.name, strategy.name, section.options)
            except ConfigError as exc:
                raise ValueError(f"{prefix}{exc}") from None


class Components(_Section):
    """The ``strategy``, ``loss`` and ``scorer`` sections alone, checked to fit together (a suite entry's part)."""

    strategy: StrategySection = Field(default_factory=lambda: _section("strategy"))
    loss: LossSection = Field(default_factory=lambda: _section("loss"))
    scorer: ScorerSection = Field(default_factory=ScorerSection)

    @model_validator(mode="after")
    def _pairing(self) -> Components:
        check_pairing(self.strategy, self.loss, self.scorer)
        return self


class TrainConfig(_Section):
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection
    strategy: StrategySection = Field(default_factory=lambda: _section("strategy"))
    loss: LossSection = Field(default_factory=lambda: _section("loss"))
    scorer: ScorerSection = Field(default_factory=ScorerSection)
    training: TrainingSection = Field(default_factory=TrainingSection)

    @model_validator(mode="after")
    def _pairing(self) -> TrainConfig:
        check_pairing(self.strategy, self.loss, self.scorer)
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``a.b.c=value`` override in place; ``value`` is parsed as YAML."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. training.lr=1e-4")
    try:
        value = yaml.load(text, _Loader) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value {text!r} is not valid YAML: {_parse_problem(exc)}") from exc
    except ValueError as exc:  # an integer of more digits than Python converts
        raise ConfigError(f"--set {key}: value is not valid YAML: {_value_problem(exc)}") from exc
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_config(raw: dict[str, Any], *, source: str = "config") -> TrainConfig:
    """Validate a config mapping (ConfigError naming every bad key)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a config must be a mapping of sections, got {type(raw).__name__}")
    try:
        config = TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, f"{source}: invalid config", raw)) from exc
    return config


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML (or ``.json``) config file holds, not yet validated; an empty file is ``{}``.

    YAML is read with ``yaml.safe_load``'s loader: a tag such as ``!!python/object/apply`` is refused, never
    constructed. A missing file, a folder, bytes that are not UTF-8, text that does not parse, a key given
    twice in one mapping (YAML or JSON) or a top level that is not a mapping raises :class:`ConfigError`
    naming the file. Both ``--config``
    and a run folder's saved ``config.yaml`` (``--resume``) are read here.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory, not a file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}: cannot parse: not UTF-8 ({exc.reason} at byte {exc.start}, line {line})") from exc
    try:
        raw = json.loads(text, object_pairs_hook=_unique_keys) if path.suffix == ".json" else yaml.load(text, _Loader)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot parse: {_parse_problem(exc)}") from exc
    except ValueError as exc:  # a duplicate JSON key, an integer of more digits than Python converts
        raise ConfigError(f"{path}: cannot parse: {_value_problem(exc)}") from exc
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    return raw


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, except that a key given twice in one mapping is an error (PyYAML keeps the
    last value silently). Keys a merge (``<<: *anchor``) brings in may still be overridden, as YAML means."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base constructor names it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict; ValueError on a key given twice (``json.loads`` keeps the last value silently)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _value_problem(exc: ValueError) -> str:
    """The ValueError of a parser in the config's words (Python's own advice on its digit limit left out)."""
    if "integer string conversion" in str(exc):
        return f"an integer of more than {sys.get_int_max_str_digits()} digits"
    return str(exc)


def _parse_problem(exc: json.JSONDecodeError | yaml.YAMLError) -> str:
    """One line: what the parser says, and where (PyYAML's own message spans several lines)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        what = f"{exc.context}: {exc.problem}" if exc.context else exc.problem
        mark = exc.problem_mark
        return f"{what} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else what
    return " ".join(str(exc).split())


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = (),
                dataset: str | Path | None = None) -> TrainConfig:
    """Read a YAML/JSON config file, set ``data.dataset`` (``dataset``), apply ``KEY=VALUE`` overrides, validate.

    A relative ``data.dataset`` is relative to the current directory (like any CLI path).
    ``path=None`` starts from the defaults (``qaembed train --data DIR`` without ``--config``);
    then a pair dataset (``docs/pairs.md``) gets the ``pairs`` strategy unless an override names one.
    """
    if path is None:
        raw: Any = {}
        source = "defaults (no --config)"
    else:
        path = Path(path)
        raw = read_config_file(path)
        source = str(path)
    if dataset is not None:
        data = raw.setdefault("data", {})
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: 'data' is a value, not a section")
        data["dataset"] = str(dataset)
    for assignment in overrides:
        apply_override(raw, assignment)
    if path is None and "name" not in (raw.get("strategy") or {}):
        from qaembed.train.data import dataset_kind

        dataset_dir = (raw.get("data") or {}).get("dataset")
        if dataset_dir is not None and dataset_kind(str(dataset_dir)) == "pairs":
            raw.setdefault("strategy", {})["name"] = "pairs"
    return parse_config(raw, source=source)


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (atomic; a link at the name is replaced, never followed)."""
    from qaembed.outputs import replace_text

    replace_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def debug_config(config: TrainConfig) -> TrainConfig:
    """A tiny version of ``config`` that runs in seconds (``qaembed train --debug``).

    At most 64 train and 32 dev questions, batches of 8, 3 steps, 64-token texts, a
    mini-batch (if GradCache is on) of at most 8 texts; logging every step.
    """
    raw = config.to_dict()
    data, training, model = raw["data"], raw["training"], raw["model"]
    data["max_train_questions"] = min(data["max_train_questions"] or 64, 64)
    data["max_dev_questions"] = min(data["max_dev_questions"] or 32, 32)
    training["batch_size"] = min(training["batch_size"], 8)
    training["max_steps"] = min(training["max_steps"] or 3, 3)
    training["log_every"] = 1
    if training["mini_batch_size"] is not None:
        training["mini_batch_size"] = min(training["mini_batch_size"], 8)
    if training["eval_every"] is not None:
        training["eval_every"] = min(training["eval_every"], 2)
    model["max_seq_length"] = min(model["max_seq_length"], 64)
    return TrainConfig.model_validate(raw)
