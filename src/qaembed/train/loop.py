"""The training loop: one straight-line function, :func:`train`, for every loss and strategy.

Run it from the command line (``qaembed train --config configs/infonce.yaml --out runs/x``)
or as a library function; under ``accelerate launch`` / ``torchrun`` it runs data-parallel.

Per step:

1. the strategy's seeded length-aware sampler yields the next global batch of
   ``batch_size * num_processes`` questions (a :class:`RankingBatch`); this process keeps
   its shard of ``batch_size`` questions;
2. the collator tokenizes the shard's ``queries + docs`` once, padded to the longest text;
3. one forward pass embeds all texts (or GradCache chunks, ``training.mini_batch_size``);
   with ``gather_across_devices`` the embeddings of all processes are gathered with
   gradient and the shards' labels combined, so in-batch negatives span all processes;
4. ``scores = cosine_scores(q, d)`` (or MaxSim over token embeddings, or both: ``scorer``,
   ``train/scoring.py``); ``loss, metrics = loss_fn(scores, batch)``; backward;
   a non-finite loss stops the run (:class:`QaembedError` with the step and question ids);
5. gradient clipping, AdamW step, warmup + linear/cosine decay.

Dev evaluation (``qaembed.evaluate.evaluate_model``) runs at step 0, every
``eval_every`` steps and at the end; the best model by ``eval_metric`` is saved to
``best_model/`` and ``early_stopping_patience`` evaluations without improvement stop the
run. Checkpoints (``checkpoint.py``) every ``save_every`` steps make ``resume=True``
continue exactly where a killed run stopped.

Run folder::

    config.yaml        resolved config          provenance.json  git, versions, hardware, data hash
    metrics.jsonl      one JSON per logged step (with the run's total_steps) and per evaluation
    checkpoints/       newest checkpoint        model/           final weights (SentenceTransformer)
    best_model/        best dev evaluation      result.json      status, steps, best metric, wall time, texts/s
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, set_seed
from tqdm.auto import tqdm
from transformers import get_scheduler

from qaembed.batching import StrategyConfig, build_strategy
from qaembed.batching.batch import RankingBatch
from qaembed.batching.collate import Collator, tokenize
from qaembed.errors import ConfigError, DataError, QaembedError
from qaembed.evaluate import EvalConfig, evaluate_model
from qaembed.jsonfiles import read_json, write_json
from qaembed.late_interaction import ColbertCollator, ColbertTokens, add_marker_tokens, add_token_projection, save_model
from qaembed.losses import build_loss
from qaembed.model import build_encoder
from qaembed.outputs import check_no_links, refuse_link, replace_text, replacing_folder, writing_alone
from qaembed.provenance import environment, hash_files
from qaembed.records import QARecord
from qaembed.train.budget import TokenCounter, plan_steps
from qaembed.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from qaembed.train.config import TrainConfig, parse_config, read_config_file, save_config
from qaembed.train.data import check_data_kind, dataset_kind, evaluate_dev_pairs, read_training_split, split_files
from qaembed.train.distributed import gathered_loss_inputs, split_batch
from qaembed.train.gradcache import forward_backward
from qaembed.train.prefetch import prefetched
from qaembed.train.scoring import Scoring, build_scoring
from qaembed.train.state import RunState
from qaembed.train.trackers import METRICS_FILE, MetricsLog, check_trackers

RESULT_FILE = "result.json"
PREFETCH_STEPS = 2  # steps prepared ahead on CUDA (0: none)

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    status: str  # "completed" | "early_stopped" | "stopped" (test hook)
    steps: int
    best_metric: float | None  # value of training.eval_metric at best_step
    best_step: int | None
    final_dev: dict[str, float] | None  # dev summary of the final model
    model_dir: str  # final weights
    best_model_dir: str | None
    wall_time_s: float  # training time of this run, summed over resumes
    texts_per_s: float  # texts embedded per second of training steps (all processes)
    # what the run really spent (all processes): see train/budget.py
    texts: int = 0  # queries + documents embedded
    tokens: int = 0  # real (non-padding) tokens embedded
    questions: int = 0  # questions (queries) trained on, with repeats across epochs
    question_order: str = ""  # sha256 over the sequence of trained question ids (equal order <=> equal hash)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StopTraining(Exception):
    """Raised by a ``step_callback`` to end the run after a step (tests simulate kills with it)."""


def evaluate_dev(model: Any, records: list[QARecord], config: TrainConfig) -> dict[str, float]:
    """Dev metrics of ``model`` (``qaembed.evaluate``), the numbers early stopping reads.

    Scored as the run trains: ``cosine`` with the pooled embedding; ``maxsim`` with MaxSim (same
    keys, ``retrieval/ndcg@10`` ...); ``combined`` both: the pooled head's metrics under the usual
    keys (early stopping and ``best_model`` follow them unless ``training.eval_metric`` names a
    ``maxsim/...`` key) and MaxSim's as ``maxsim/retrieval/ndcg@10`` ...
    """
    if dataset_kind(config.data.dataset) == "pairs":  # duplicate retrieval + pair classification (train/data.py)
        return evaluate_dev_pairs(model, records, config)

    # the in-batch groups are fixed (EvalConfig's seed), as in the suite's test evaluation: every run of
    # every seed is compared on the same groups of dev questions
    eval_config = EvalConfig(query_mode=config.data.query_text)
    scorer = config.scorer.name
    summary: dict[str, float] = {}
    if scorer != "maxsim":  # cosine, and combined's pooled head: the unprefixed keys early stopping reads
        summary |= evaluate_model(model, records, config=eval_config).summary
    if scorer != "cosine":  # MaxSim over the model's projected tokens; combined: beside the pooled keys, "maxsim/..."
        colbert = ColbertTokens.of_scorer(config.scorer)
        maxsim_config = eval_config.model_copy(update={
            "scorer": "maxsim", "query_length": config.scorer.query_length, "query_prefix": colbert.query_prefix,
            "document_prefix": colbert.document_prefix, "query_expansion": colbert.query_expansion})
        late = evaluate_model(model, records, config=maxsim_config).summary
        summary |= late if scorer == "maxsim" else {f"maxsim/{key}": value for key, value in late.items()}
    return {key: float(value) for key, value in summary.items()}


def build_components(config: TrainConfig) -> tuple[Any, Any]:
    """The batching strategy and loss of ``config`` (the config's validator has checked that they fit)."""
    options = config.strategy.options
    if isinstance(options, StrategyConfig):  # Q&A strategies; pair texts are whole questions
        options = options.model_copy(update={"query_text": config.data.query_text})
    return build_strategy(config.strategy.name, options), build_loss(config.loss.name, config.loss.options)


def _check_run_dir(config: TrainConfig, run_dir: Path, resume: bool) -> None:
    for folder in ("checkpoints", "tracking"):  # written into (and old checkpoints deleted): never through a link
        check_no_links(run_dir, run_dir / folder)
    saved = run_dir / "config.yaml"
    if not resume:
        if saved.exists() or (run_dir / "checkpoints").exists():
            raise QaembedError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
        return
    if saved.exists():
        previous = parse_config(read_config_file(saved), source=str(saved))
        if previous.to_dict() != config.to_dict():
            old, new = _flatten(previous.to_dict()), _flatten(config.to_dict())
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            raise ConfigError(f"--resume: config differs from the run's {saved} in: {', '.join(changed)}")


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop lines logged after the checkpoint a run resumes from (they are logged again).

    A last line that lacks its newline and is not valid JSON is the record that was being
    appended when the run was killed. Records are appended before the checkpoint of their
    step is written, so that line lies after the checkpoint and is dropped like every other
    line after it, with a warning that counts it. Any other unreadable line is a
    :class:`DataError` naming the file and line, and the file is left untouched. A link there is refused: the
    run's log is its own file, never one read and rewritten elsewhere.
    """
    refuse_link(path)
    if not path.is_file():
        return
    try:
        lines = path.read_text(encoding="utf-8").split("\n")  # "" last when the file ends with a newline
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=str(path)) from exc
    kept, partial = [], None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # the unfinished last record of a killed run
                partial = line
                continue
            raise DataError(f"invalid JSON ({exc.msg}); fix or delete this line to resume", path=str(path),
                            line=number) from exc
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise DataError("missing or non-integer step", path=str(path), line=number, field="step")
        if record["step"] <= last_step:
            kept.append(line)
    if partial is not None:
        logger.warning("%s: dropped 1 unfinished last line (%d characters, written when the run was killed; "
                       "it follows the checkpoint at step %d and is logged again)", path, len(partial), last_step)
    replace_text(path, "".join(line + "\n" for line in kept))  # a link planted there is replaced, not followed


def _make_accelerator(config: TrainConfig, run_dir: Path) -> Accelerator:
    training = config.training
    if training.mixed_precision != "no" and not torch.cuda.is_available():
        raise ConfigError(
            f"training.mixed_precision: {training.mixed_precision!r} needs a CUDA GPU and none is visible; "
            "use mixed_precision: \"no\""
        )
    check_trackers(training.trackers, run_dir)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    accelerator = Accelerator(
        mixed_precision=training.mixed_precision,
        log_with=list(training.trackers) or None,
        project_dir=str(run_dir / "tracking"),
        # several processes without CUDA (torchrun / accelerate launch on CPU): Accelerate needs
        # cpu=True to pick its MULTI_CPU mode (gloo); without it every process thinks it is alone
        cpu=world > 1 and not torch.cuda.is_available(),
    )
    if world > 1 and accelerator.num_processes != world:
        # e.g. torchrun on CPU: Accelerate then sees one process each and they would race
        raise QaembedError(
            f"launched as {world} processes but Accelerate sees {accelerator.num_processes}; "
            "launch with `accelerate launch` or torchrun so that every process sees the same world size"
        )
    return accelerator


def _freeze_unused_parameters(model: torch.nn.Module, collate: Any, scoring: Scoring | None = None) -> list[str]:
    """Freeze parameters the scorer's embeddings do not depend on; returns their names.

    E.g. BERT's pooler: sentence-transformers pools the token embeddings and never uses
    it. Such parameters never get a gradient, so AdamW never touches them either way, but
    DistributedDataParallel would wait for their gradients and fail on the next step. Freezing
    them (found by one probe forward/backward, RNG untouched) is cheaper than DDP's
    ``find_unused_parameters``, which walks the autograd graph every step. With ``scoring``
    the probe uses what the scorer embeds (MaxSim: the token projection takes part, a pooled
    head does not); a model without token outputs fails here, before the first step.
    """
    device = next(model.parameters()).device  # the encoder may already sit on a GPU
    features = {k: v.to(device) for k, v in tokenize(collate.tokenizer, ["probe"], collate.max_length).items()}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if scoring is None:
            model(dict(features))["sentence_embedding"].sum().backward()
        else:
            embedded = scoring.embed(model, features)
            parts = (embedded,) if isinstance(embedded, torch.Tensor) else embedded
            sum(part.sum() for part in parts if part.is_floating_point()).backward()
    unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for name, parameter in model.named_parameters():
        if name in unused:
            parameter.requires_grad_(False)
    model.zero_grad(set_to_none=True)
    if unused:
        logger.info("frozen (not used by the sentence embedding): %s", ", ".join(unused))
    return unused


def _optimizer_and_scheduler(model: torch.nn.Module, config: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    training = config.training
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.dim() < 2 or "LayerNorm" in name else decay).append(parameter)
    # fused: one kernel for every parameter instead of a Python loop over ~100 tensors (CPU and CUDA, torch >= 2.4);
    # sentence-transformers' trainer defaults to it too (4.5x faster per step on the 2-core CPU for MiniLM)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": training.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=training.lr, fused=True,
    )
    name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[training.scheduler]
    scheduler = get_scheduler(
        name,
        optimizer=optimizer,
        num_warmup_steps=math.ceil(training.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    return optimizer, scheduler


def _epoch_batches(strategy: Any, records: list[QARecord], batch_size: int, seed: int) -> Iterator[tuple[int, int, RankingBatch]]:
    """(epoch, index in epoch, global batch) forever, epoch after epoch."""
    for epoch in itertools.count():
        for index, batch in enumerate(strategy.batches(records, batch_size, seed, epoch, drop_last=True)):
            yield epoch, index, batch


@dataclass
class _Run:
    """What one run trains with, built once by :func:`_build_run` (everything but the loop's state)."""

    config: TrainConfig
    run_dir: Path
    accelerator: Accelerator
    model: Any  # the prepared SentenceTransformer (wrapped by DDP on several processes)
    optimizer: Any
    scheduler: Any
    strategy: Any
    scoring: Scoring
    collate: Any
    count_tokens: TokenCounter
    train_records: list
    dev_records: list
    global_batch_size: int  # questions per step over all processes
    total_steps: int
    log: MetricsLog

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    def save(self, folder: str) -> None:
        """Write the current weights to ``run_dir/folder`` (main process), in the scorer's format."""
        if self.main:
            scorer = self.config.scorer
            # a new folder that then takes the name: nothing is written through a link in (or at) the earlier one
            with replacing_folder(self.run_dir / folder) as new:
                save_model(self.accelerator.unwrap_model(self.model), new, scorer.name,
                           query_length=scorer.query_length, colbert=ColbertTokens.of_scorer(scorer))


def train(
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    *,
    step_callback: Callable[[int], None] | None = None,
    plan_callback: Callable[[int], None] | None = None,
    progress_bar: bool = True,
) -> TrainResult:
    """Train ``config`` into the run folder ``out_dir``; see the module docstring.

    ``resume=True`` continues from the newest checkpoint in ``out_dir`` (or starts from step
    0 when there is none yet) and returns the stored result when the run already finished.
    ``step_callback(step)`` is called after every optimizer step (and checkpoint); raising
    :class:`StopTraining` ends the run there without writing the final model.
    ``plan_callback(total_steps)`` is called once the run knows its length (a texts or tokens
    budget is planned into steps first). ``progress_bar=False`` hides the per-step bar (e.g.
    under a caller's own progress display).

    A train (or resume) into a run folder that another live train is writing is refused
    (:class:`ConfigError`): both would log steps and write checkpoints into the same files.
    """
    run_dir = Path(out_dir)
    # the main process holds the lock (the others of a multi-process run write nothing there); checks are made under it
    alone = writing_alone(run_dir, "qaembed train", create=True) if _main_process() else nullcontext()
    with alone:
        return _train(config, run_dir, resume, step_callback=step_callback, plan_callback=plan_callback,
                      progress_bar=progress_bar)


def _main_process() -> bool:
    """Whether this is the main process of a (torchrun / accelerate launch) run: its global RANK is 0.

    Read from the environment, since the lock is taken before the Accelerator exists.
    """
    return int(os.environ.get("RANK", "0")) == 0


def _train(config: TrainConfig, run_dir: Path, resume: bool, *, step_callback: Callable[[int], None] | None,
           plan_callback: Callable[[int], None] | None, progress_bar: bool) -> TrainResult:
    finished = finished_result(run_dir) if resume else None
    if finished is not None:
        return finished
    _check_run_dir(config, run_dir, resume)
    run = _build_run(config, run_dir)
    state = _open_run(run, resume)
    training = config.training
    if plan_callback is not None:
        plan_callback(run.total_steps)
    run.model.train()
    stop_early = _evaluate_dev(run, state) if state.step == 0 and training.dev_evaluation else False
    # skip to where the checkpoint stopped (batches are cheap to build: no tokenization); by (epoch, index),
    # since an epoch of the pairs strategy may hold one batch more or less than another
    start = (state.epoch, state.batch_in_epoch)
    batches = itertools.dropwhile(lambda item: (item[0], item[1]) < start,
                                  _epoch_batches(run.strategy, run.train_records, run.global_batch_size,
                                                 training.seed))
    # the next step's inputs tokenized in a thread while the GPU computes this one (prefetch.py)
    depth = _prefetch_depth(run.accelerator.device)
    steps = prefetched(_step_inputs(run, batches, private_tokenizer=depth > 0), depth=depth)
    progress = tqdm(total=run.total_steps, initial=state.step, disable=not (run.main and progress_bar), desc="train",
                    dynamic_ncols=True)
    status = "completed"
    started = time.perf_counter()
    window_texts, window_start = 0, time.perf_counter()
    try:
        while state.step < run.total_steps and not stop_early:
            step_start = time.perf_counter()
            inputs = next(steps)
            epoch, index, global_batch = inputs.epoch, inputs.index, inputs.batch
            output, loss_mean, grad_norm, texts, tokens = _train_step(run, state, inputs)
            state.record_step(epoch, index, texts, tokens, global_batch.query_ids)
            state.train_seconds += time.perf_counter() - step_start
            window_texts += texts
            if state.step % training.log_every == 0 or state.step == run.total_steps:  # numbers reach the host here
                now = time.perf_counter()
                rate = window_texts / max(now - window_start, 1e-9)
                window_texts, window_start = 0, now
                loss_value = _log_step(run, state, epoch, loss_mean, output.metrics, grad_norm, rate)
                progress.set_postfix(loss=f"{loss_value:.4f}", texts_s=f"{rate:.0f}")
            progress.update(1)
            if training.eval_every is not None and state.step % training.eval_every == 0 and state.step < run.total_steps:
                stop_early = _evaluate_dev(run, state)
            if (training.save_every is not None and state.step % training.save_every == 0) or stop_early:
                state.wall_seconds += time.perf_counter() - started
                started = time.perf_counter()
                save_checkpoint(run_dir, state.step, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler,
                                scaler=run.accelerator.scaler, state=state, accelerator=run.accelerator)
            if step_callback is not None:
                step_callback(state.step)
    except StopTraining:
        status = "stopped"
    finally:
        steps.close()
        progress.close()
    state.wall_seconds += time.perf_counter() - started
    if status == "stopped":
        run.accelerator.end_training()
        return _result(status, state, run_dir, None)

    if stop_early:
        status = "early_stopped"
    elif training.dev_evaluation and state.last_eval_step != state.step:
        _evaluate_dev(run, state)  # the final model's dev metrics
    run.save("model")
    result = _result(status, state, run_dir, state.last_dev)
    if run.main:
        write_json(run_dir / RESULT_FILE, result.to_dict())
    run.accelerator.wait_for_everyone()
    run.accelerator.end_training()
    return result


def finished_result(run_dir: Path) -> TrainResult | None:
    """The stored result of a run that already finished (completed or early-stopped), else None.

    Its model folders are this run folder's own (``model``, ``best_model``), not the paths the file records: a
    result.json edited (or written before the folder moved) never points the caller at a model elsewhere.
    """
    if not (run_dir / RESULT_FILE).is_file():
        return None
    stored = read_json(run_dir / RESULT_FILE)
    if not isinstance(stored, dict) or stored.get("status") not in ("completed", "early_stopped"):
        return None
    best_dir = run_dir / "best_model"
    stored = {**stored, "model_dir": str(run_dir / "model"),
              "best_model_dir": str(best_dir) if best_dir.is_dir() else None}  # as _result writes them
    try:
        return TrainResult(**{k: stored[k] for k in TrainResult.__dataclass_fields__ if k in stored})
    except TypeError as exc:  # a required field is missing
        raise DataError(f"finished run's result is incomplete ({exc})", path=str(run_dir / RESULT_FILE)) from exc


def _build_run(config: TrainConfig, run_dir: Path) -> _Run:
    """Accelerator, data, model, collator, step plan, optimizer: everything before the first step."""
    training = config.training
    accelerator = _make_accelerator(config, run_dir)
    world = accelerator.num_processes
    check_data_kind(config)  # pair data <-> the pairs strategy, before anything heavy
    strategy, loss_fn = build_components(config)
    scoring = build_scoring(config.scorer, loss_fn)
    train_records = read_training_split(config, "train", config.data.max_train_questions)
    dev_records = read_training_split(config, "dev", config.data.max_dev_questions) if training.dev_evaluation else []
    if training.dev_evaluation and not any(getattr(record, "answers", True) for record in dev_records):
        raise ConfigError(  # before the run folder is written: the evaluation at step 0 would fail
            f"training.dev_evaluation: the dev split of {config.data.dataset} has {len(dev_records)} questions and "
            "none with an answer: nothing to evaluate the run on; prepare the data with a dev split (qaembed data "
            "prepare --split) or set training.dev_evaluation=false")
    global_batch_size = training.batch_size * world
    steps_per_epoch = strategy.num_batches(train_records, global_batch_size, drop_last=True)
    if steps_per_epoch == 0:
        raise ConfigError(
            f"training.batch_size: {len(train_records)} train questions ({config.strategy.name} eligibility applies) "
            f"make no full batch of {global_batch_size} questions"
        )
    set_seed(training.seed)  # python, numpy, torch (and CUDA): model head init, dropout
    model = build_encoder(config.model.base, projection_dim=config.model.projection_dim,
                          pooling=config.model.pooling, max_seq_length=config.model.max_seq_length)
    if config.scorer.name != "cosine":
        add_token_projection(model, config.scorer.projection_dim, option="scorer.projection_dim")
    colbert = ColbertTokens.of_scorer(config.scorer)
    add_marker_tokens(model, colbert)  # scorer.markers: "[Q] " / "[D] " join the vocabulary
    if config.model.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    collate = (ColbertCollator(model, model.max_seq_length, colbert) if colbert.active
               else Collator(model, config.model.max_seq_length))
    # real tokens per text, counted once per distinct text (budget planning; other processes' shards)
    count_tokens = TokenCounter(collate.tokenizer, collate.max_length)
    if training.budget is not None:
        shard_lists = (split_batch(batch, world) for _, _, batch in
                       _epoch_batches(strategy, train_records, global_batch_size, training.seed))
        total_steps = plan_steps(training.budget, shard_lists, count_tokens)
    else:
        total_steps = training.max_steps or math.ceil(training.epochs * steps_per_epoch)
    _freeze_unused_parameters(model, collate, scoring)
    optimizer, scheduler = _optimizer_and_scheduler(model, config, total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    return _Run(config=config, run_dir=run_dir, accelerator=accelerator, model=model, optimizer=optimizer,
                scheduler=scheduler, strategy=strategy, scoring=scoring.to(accelerator.device), collate=collate,
                count_tokens=count_tokens, train_records=train_records, dev_records=dev_records,
                global_batch_size=global_batch_size, total_steps=total_steps, log=MetricsLog(run_dir / METRICS_FILE, accelerator, training.trackers))


def _open_run(run: _Run, resume: bool) -> RunState:
    """The state to start from: the newest checkpoint's (``resume``), or a fresh run folder's."""
    config, run_dir = run.config, run.run_dir
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler,
                                scaler=run.accelerator.scaler, accelerator=run.accelerator)
        if run.main:
            _truncate_metrics(run.log.path, state.step)
    else:
        state = RunState()
        if run.main:
            if resume and (run_dir / "metrics.jsonl").is_file():  # a run that stopped before its first checkpoint
                print(f"--resume: {run_dir} has no complete checkpoint yet; the run starts again from step 0",
                      file=sys.stderr)
            run_dir.mkdir(parents=True, exist_ok=True)
            replace_text(run.log.path, "")
            save_config(config, run_dir / "config.yaml")
            data_files = [path for s in ("train", "dev") for path in split_files(config.data.dataset, s)]
            write_json(run_dir / "provenance.json", {**environment(), "data_hash": hash_files(data_files),
                                                     "data_files": [str(p) for p in data_files]})
    run.accelerator.wait_for_everyone()
    run.log.start(_flatten(config.to_dict()))
    return state


def _prefetch_depth(device: torch.device) -> int:
    """Steps prepared ahead in a thread: on CUDA only (on a CPU the thread competes with torch for the cores)."""
    return PREFETCH_STEPS if device.type == "cuda" else 0


@dataclass
class _StepInputs:
    """What a step needs before the model runs: the global batch, its shards, this process's tokenized
    features and the real tokens of every shard (made ahead in a thread on CUDA: :mod:`qaembed.train.prefetch`)."""

    epoch: int
    index: int
    batch: RankingBatch
    shards: list[RankingBatch]
    features: dict
    tokens: int


def _step_inputs(run: _Run, batches: Iterator[tuple[int, int, RankingBatch]], *,
                 private_tokenizer: bool = False) -> Iterator[_StepInputs]:
    """Each step's inputs; ``private_tokenizer``: with a copy of the tokenizer, for another thread (a fast
    tokenizer used by two threads at once can fail, and dev evaluation and saving use the model's)."""
    world, rank = run.accelerator.num_processes, run.accelerator.process_index
    collate, count_tokens = run.collate, run.count_tokens
    if private_tokenizer:
        tokenizer = copy.deepcopy(collate.tokenizer)
        collate, count_tokens = copy.copy(collate), copy.copy(count_tokens)
        collate.tokenizer = count_tokens.tokenizer = tokenizer
    for epoch, index, global_batch in batches:
        shards = split_batch(global_batch, world)
        features = collate(shards[rank])
        # real tokens of every process's shard (counted on the CPU, before the copy to the device)
        if world == 1:
            tokens = int(features["attention_mask"].sum())
        else:
            tokens = sum(count_tokens(shard.queries + shard.docs) for shard in shards)
        yield _StepInputs(epoch, index, global_batch, shards, features, tokens)


def _train_step(run: _Run, state: RunState, inputs: _StepInputs):
    """One optimizer step on ``inputs.batch``: (loss output, mean loss, grad norm, texts, tokens); tensors stay
    on the device. A non-finite loss ends the run (QaembedError) before the optimizer applies its gradient."""
    accelerator, training, world = run.accelerator, run.config.training, run.accelerator.num_processes
    epoch, index, global_batch, shards = inputs.epoch, inputs.index, inputs.batch, inputs.shards
    features, tokens = inputs.features, inputs.tokens
    local = shards[accelerator.process_index].to(accelerator.device)

    def loss_of(query_embeddings, doc_embeddings):  # tensors, or tuples of tensors (scorer)
        batch = local
        if training.gather_across_devices and world > 1:
            query_embeddings, doc_embeddings, batch = gathered_loss_inputs(query_embeddings, doc_embeddings, shards)
        return run.scoring.loss(query_embeddings, doc_embeddings, batch)

    output = forward_backward(
        run.model, features, local.num_queries, loss_of, mini_batch_size=training.mini_batch_size,
        backward=accelerator.backward, no_sync=lambda: accelerator.no_sync(run.model), embed_fn=run.scoring.embed,
        device=accelerator.device,  # features stay on the CPU until each GradCache chunk is cut to its length
    )
    # Loss, metrics and gradient norm stay on the device until a log step reads them: turning a
    # GPU tensor into a float waits for every queued kernel. The one wait paid every step is
    # this finiteness check, because a NaN/inf loss must stop the run before optimizer.step()
    # applies its gradient (one flag for the whole step, however many metrics the loss has).
    loss_mean = accelerator.reduce(output.loss.detach().reshape(1), reduction="mean")  # (1,)
    if not bool(torch.isfinite(loss_mean).all()):  # host sync, every step
        run.optimizer.zero_grad(set_to_none=True)
        message = (
            f"non-finite loss ({loss_mean.item()}) at step {state.step + 1} (epoch {epoch}, batch {index}); "
            f"questions: {', '.join(global_batch.query_ids)}. "
            f"The last good checkpoint in {run.run_dir / 'checkpoints'} is kept."
        )
        if run.main:
            write_json(run.run_dir / RESULT_FILE, {"status": "failed", "steps": state.step, "error": message})
        raise QaembedError(message)
    grad_norm = None
    if training.max_grad_norm is not None:
        grad_norm = accelerator.clip_grad_norm_(run.model.parameters(), training.max_grad_norm)  # 0-d tensor
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    texts = sum(shard.num_queries + shard.num_docs for shard in shards)
    return output, loss_mean, grad_norm, texts, tokens


def _log_step(run: _Run, state: RunState, epoch: int, loss_mean: torch.Tensor, metrics: dict[str, torch.Tensor],
              grad_norm: torch.Tensor | None, rate: float) -> float:
    """Write a step's line to metrics.jsonl and the trackers (the device->host copies happen here); returns the loss."""
    loss_value = loss_mean.item()
    record = {"step": state.step, "total_steps": run.total_steps, "epoch": epoch, "texts": state.texts,
              "tokens": state.tokens, "loss": loss_value,
              **{f"loss/{k}": float(v) for k, v in metrics.items() if k != "loss"},
              "lr": run.scheduler.get_last_lr()[0], "texts_per_s": rate}
    if grad_norm is not None:
        record["grad_norm"] = float(grad_norm)
    run.log(record)
    return loss_value


def _evaluate_dev(run: _Run, state: RunState) -> bool:
    """Evaluate on dev (main process; the summary is broadcast), log, keep the best model; True when early
    stopping says stop."""
    training = run.config.training
    summary: list[dict[str, float] | None] = [None]
    if run.main:
        run.model.eval()
        summary[0] = evaluate_dev(run.accelerator.unwrap_model(run.model), run.dev_records, run.config)
        run.model.train()
    dev = broadcast_object_list(summary)[0]
    if training.eval_metric not in dev:
        raise ConfigError(f"training.eval_metric: {training.eval_metric!r} is not a dev metric; "
                          f"available: {', '.join(sorted(dev))}")
    run.log({"step": state.step, "texts": state.texts, **{f"dev/{k}": v for k, v in dev.items()}})
    value = dev[training.eval_metric]
    if state.best_metric is None or value > state.best_metric:
        state.best_metric, state.best_step, state.evals_without_improvement = value, state.step, 0
        run.save("best_model")
    else:
        state.evals_without_improvement += 1
    state.last_dev, state.last_eval_step = dev, state.step
    patience = training.early_stopping_patience
    return patience is not None and state.evals_without_improvement >= patience


def _result(status: str, state: RunState, run_dir: Path, final_dev: dict | None) -> TrainResult:
    best_dir = run_dir / "best_model"
    return TrainResult(
        status=status,
        steps=state.step,
        best_metric=state.best_metric,
        best_step=state.best_step,
        final_dev=final_dev,
        model_dir=str(run_dir / "model"),
        best_model_dir=str(best_dir) if best_dir.is_dir() else None,
        wall_time_s=state.wall_seconds,
        texts_per_s=state.texts / state.train_seconds if state.train_seconds else 0.0,
        texts=state.texts,
        tokens=state.tokens,
        questions=state.questions,
        question_order=state.question_order,
    )


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The resolved config a run folder was trained with."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise QaembedError(f"{run_dir} is not a training run folder (no config.yaml)")
    return parse_config(read_config_file(path), source=str(path))


__all__ = ["TrainResult", "StopTraining", "train", "evaluate_dev", "build_components", "load_run_config"]
