"""Mine hard negatives for training questions with a separate (frozen) embedding model.

For each question: encode it (``encode_query``), retrieve the most similar answers of the
whole training split (``encode_document``, deduplicated by text), drop the question's own
answers and near-duplicates of them, drop candidates too close to the positive (the
question's top-voted answer) or above ``max_score``, then keep ``num_negatives`` from the
rank window ``[range_min, range_max)`` of what survives, by ``top`` or ``random`` sampling.

The candidate window follows sentence-transformers' ``mine_hard_negatives`` exactly, so the
two agree on the same inputs (tests/mining/test_mining_equivalence.py): the search retrieves the
``range_max + max_answers`` most similar answers (``max_answers`` = most answers of any one
question, room for the question's own answers); filtered candidates are removed; the
survivors are ranked by similarity; the first ``range_min`` survivors are skipped and
negatives are chosen from the next ones up to ``range_max``. See docs/mining.md.

Everything per question is tensor code over chunks of questions: own-answer and
near-duplicate masks compare candidate ids with a padded (n_q, max_answers) id matrix.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from qaembed.errors import ConfigError, DataError
from qaembed.mining.config import MiningConfig, choose_index
from qaembed.mining.embed import encode_cached
from qaembed.records import MinedNegative, QARecord, question_text
from qaembed.search import top_k_search

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Candidate filters in the order they are applied; statistics count each candidate once,
# under the first filter that removed it.
FILTERS = ("own_answer", "near_duplicate", "absolute_margin", "relative_margin", "max_score", "range_min")
# Bound on elements of the (chunk, k, dim) candidate tensors built while filtering.
_FILTER_ELEMENTS = 1 << 24


def normalize_text(text: str) -> str:
    """The key for near-duplicate text: case-folded, whitespace runs collapsed, stripped.

    >>> normalize_text("  Use  a\\nFRENCH press. ") == normalize_text("use a french press.")
    True
    """
    return " ".join(text.casefold().split())


@dataclass
class AnswerCorpus:
    """The unique answer texts of a split, who owns them, and each question's own answers.

    ``texts`` keep first-occurrence order (record order, answers in file order), as
    ``mine_hard_negatives`` deduplicates its corpus. ``own`` is a (n_q, max_answers) matrix
    of corpus indices padded with -1; ``top`` the corpus index of each top-voted answer.
    """

    texts: list[str]
    owner_answer_ids: list[str]  # first answer with this text
    owner_question_ids: list[str]
    text_keys: torch.Tensor  # (n_c,) id of normalize_text(text)
    own: torch.Tensor  # (n_q, max_answers) long, -1 padded
    own_keys: torch.Tensor  # (n_q, max_answers) long, -1 padded
    top: torch.Tensor  # (n_q,) long
    max_answers: int  # most answers of one question (duplicates counted)

    @classmethod
    def from_records(cls, records: list[QARecord]) -> AnswerCorpus:
        index: dict[str, int] = {}
        key_ids: dict[str, int] = {}
        texts, answer_ids, question_ids, keys = [], [], [], []
        own_rows, top = [], []
        for record in records:
            row = []
            for answer in record.answers:
                position = index.get(answer.text)
                if position is None:
                    position = index[answer.text] = len(texts)
                    texts.append(answer.text)
                    answer_ids.append(answer.id)
                    question_ids.append(record.id)
                    keys.append(key_ids.setdefault(normalize_text(answer.text), len(key_ids)))
                if position not in row:
                    row.append(position)
            own_rows.append(row)
            top.append(index[record.top_answer().text])
        width = max(len(row) for row in own_rows)
        own = torch.full((len(records), width), -1, dtype=torch.long)
        for i, row in enumerate(own_rows):
            own[i, : len(row)] = torch.tensor(row)
        text_keys = torch.tensor(keys, dtype=torch.long)
        own_keys = torch.where(own >= 0, text_keys[own.clamp(min=0)], -1)
        return cls(
            texts=texts,
            owner_answer_ids=answer_ids,
            owner_question_ids=question_ids,
            text_keys=text_keys,
            own=own,
            own_keys=own_keys,
            top=torch.tensor(top, dtype=torch.long),
            max_answers=max(len(r.answers) for r in records),
        )


@dataclass
class MiningResult:
    """Records with ``negatives`` filled in, plus what happened (for mining.json)."""

    records: list[QARecord]
    statistics: dict
    search: dict
    timing: dict = field(default_factory=dict)


def check_records(records: list[QARecord], path: str | None = None) -> None:
    """Raise DataError unless every record has at least one answer (record i is line i + 1)."""
    if not records:
        raise DataError("the training split has no questions; nothing to mine for", path=path)
    for i, record in enumerate(records):
        if not record.answers:
            raise DataError(
                f"question {record.id!r} has no answers; mining needs each question's top answer as its positive "
                "(prepare the dataset without unanswered questions)",
                path=path, line=i + 1, field="answers",
            )


def similarity_summary(values: torch.Tensor) -> dict[str, float | int]:
    """Count, mean, std and quantiles of a 1-D tensor (empty -> count 0 only)."""
    values = values.double().cpu()
    if values.numel() == 0:
        return {"count": 0}
    q = torch.quantile(values, torch.tensor([0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0], dtype=torch.double)).tolist()
    return {
        "count": int(values.numel()),
        "mean": float(values.mean()),
        "std": float(values.std()) if values.numel() > 1 else 0.0,
        "min": q[0], "p05": q[1], "p25": q[2], "median": q[3], "p75": q[4], "p95": q[5], "max": q[6],
    }


def _gather_rows(embeddings: np.ndarray, indices: torch.Tensor, device: str) -> torch.Tensor:
    """Rows of a (possibly memory-mapped) embedding matrix for an index tensor of any shape."""
    flat = indices.reshape(-1).cpu().numpy()
    rows = torch.from_numpy(np.ascontiguousarray(embeddings[flat]))
    return rows.reshape(*indices.shape, embeddings.shape[1]).to(device)


def _filter_and_select(
    scores: torch.Tensor,
    indices: torch.Tensor,
    positive_scores: torch.Tensor,
    corpus: AnswerCorpus,
    corpus_embeddings: np.ndarray,
    rows: slice,
    config: MiningConfig,
    range_max: int,
    generator: torch.Generator,
    removed: dict[str, int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Filter one chunk of candidates and choose negatives.

    ``scores``/``indices``: (n, k) raw search results. Returns the chosen corpus indices,
    their similarities and their raw ranks, each (n, num_negatives), -1 / -inf where fewer
    survived. ``removed`` is incremented per filter.
    """
    device = scores.device
    alive = indices >= 0
    candidates = indices.clamp(min=0)  # (n, k)
    own = corpus.own[rows].to(device)  # (n, a)

    def drop(name: str, mask: torch.Tensor) -> None:
        nonlocal alive
        mask = mask & alive
        removed[name] += int(mask.sum())
        alive = alive & ~mask

    drop("own_answer", (candidates[:, :, None] == own[:, None, :]).any(-1))
    own_keys = corpus.own_keys[rows].to(device)
    near = (corpus.text_keys.to(device)[candidates][:, :, None] == own_keys[:, None, :]).any(-1)
    if config.near_duplicate_cosine is not None:
        candidate_vectors = _gather_rows(corpus_embeddings, candidates, device)  # (n, k, dim)
        own_vectors = _gather_rows(corpus_embeddings, own.clamp(min=0), device)  # (n, a, dim)
        cosine = torch.einsum("nkd,nad->nka", candidate_vectors, own_vectors)  # (n, k, a)
        cosine = cosine.masked_fill((own < 0)[:, None, :], -math.inf)
        near |= (cosine >= config.near_duplicate_cosine).any(-1)
    drop("near_duplicate", near)
    positive = positive_scores[:, None]  # (n, 1)
    if config.absolute_margin is not None:
        drop("absolute_margin", scores + config.absolute_margin > positive)
    if config.relative_margin is not None:
        drop("relative_margin", scores > positive - positive.abs() * config.relative_margin)
    if config.max_score is not None:
        drop("max_score", scores > config.max_score)

    masked = scores.masked_fill(~alive, -math.inf)
    window_scores, window_pos = torch.topk(masked, k=min(range_max, masked.size(1)), dim=1)
    removed["range_min"] += int(torch.isfinite(window_scores[:, : config.range_min]).sum())
    window_scores, window_pos = window_scores[:, config.range_min :], window_pos[:, config.range_min :]
    k = min(config.num_negatives, window_scores.size(1))
    if config.sampling == "top":
        chosen_scores, chosen_pos = window_scores[:, :k], window_pos[:, :k]
    else:
        keys = torch.rand(window_scores.shape, generator=generator).to(device)
        keys = keys.masked_fill(~torch.isfinite(window_scores), -1.0)
        picks = torch.topk(keys, k=k, dim=1).indices
        chosen_scores, order = window_scores.gather(1, picks).sort(dim=1, descending=True)
        chosen_pos = window_pos.gather(1, picks).gather(1, order)
    chosen = indices.gather(1, chosen_pos)
    found = torch.isfinite(chosen_scores)
    pad = config.num_negatives - k
    chosen = torch.nn.functional.pad(chosen.masked_fill(~found, -1), (0, pad), value=-1)
    chosen_scores = torch.nn.functional.pad(chosen_scores, (0, pad), value=-math.inf)
    chosen_pos = torch.nn.functional.pad(chosen_pos.masked_fill(~found, -1), (0, pad), value=-1)
    return chosen, chosen_scores, chosen_pos


def mine_negatives(
    records: list[QARecord],
    encoder: SentenceTransformer,
    config: MiningConfig,
    *,
    cache_folder: Path | None = None,
    model_id: str | None = None,
    source_path: str | None = None,
    progress: bool = False,
) -> MiningResult:
    """Attach mined negatives to ``records`` (new record objects; the inputs are not modified).

    ``cache_folder`` + ``model_id`` (see :func:`qaembed.mining.embed.model_fingerprint`)
    enable the on-disk embedding cache. Raises :class:`DataError` for a question without
    answers and :class:`ConfigError` when ``num_negatives`` exceeds the candidate pool.
    """
    check_records(records, source_path)
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    corpus = AnswerCorpus.from_records(records)
    n_q, n_c = len(records), len(corpus.texts)
    own_count = (corpus.own >= 0).sum(1)  # (n_q,)
    pool = n_c - own_count
    smallest = int(pool.argmin())
    if config.num_negatives > int(pool[smallest]):
        raise ConfigError(
            f"num_negatives ({config.num_negatives}) is larger than the candidate pool: question "
            f"{records[smallest].id!r} has only {int(pool[smallest])} answers of other questions to choose from"
        )
    range_max = config.effective_range_max(corpus.max_answers)
    k_retrieved = min(range_max + corpus.max_answers, n_c)
    index_kind = choose_index(config.index, n_c, device)

    timing: dict[str, float] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qaembed-mining-") as scratch:
        encode_options = dict(
            batch_size=config.batch_size, chunk_size=config.encode_chunk_size, cache_folder=cache_folder,
            model_id=model_id, scratch=Path(scratch), progress=progress,
        )
        corpus_embeddings, corpus_cached, corpus_rejected = encode_cached(encoder, corpus.texts, "document",
                                                                          **encode_options)
        queries = [question_text(r, config.question_text) for r in records]
        query_embeddings, query_cached, query_rejected = encode_cached(encoder, queries, "query", **encode_options)
        timing["encode_s"] = time.perf_counter() - started

        started = time.perf_counter()
        scores, indices = top_k_search(
            query_embeddings, corpus_embeddings, k_retrieved, index_kind,
            device=device, nprobe=config.nprobe, ef_search=config.ef_search, seed=config.seed,
        )
        timing["search_s"] = time.perf_counter() - started

        started = time.perf_counter()
        removed = dict.fromkeys(FILTERS, 0)
        generator = torch.Generator().manual_seed(config.seed)
        chunk = max(1, _FILTER_ELEMENTS // (k_retrieved * max(corpus_embeddings.shape[1], corpus.own.size(1))))
        positive_parts, chosen_parts, chosen_score_parts, chosen_rank_parts = [], [], [], []
        for start in range(0, n_q, chunk):
            rows = slice(start, min(start + chunk, n_q))
            query_vectors = torch.from_numpy(np.array(query_embeddings[rows])).to(device)
            positive_vectors = _gather_rows(corpus_embeddings, corpus.top[rows], device)
            positive_scores = (query_vectors * positive_vectors).sum(-1)  # (n,)
            chosen, chosen_scores, chosen_ranks = _filter_and_select(
                scores[rows], indices[rows], positive_scores, corpus, corpus_embeddings, rows, config,
                range_max, generator, removed,
            )
            positive_parts.append(positive_scores.cpu())
            chosen_parts.append(chosen.cpu())
            chosen_score_parts.append(chosen_scores.cpu())
            chosen_rank_parts.append(chosen_ranks.cpu())
        timing["filter_s"] = time.perf_counter() - started
        del corpus_embeddings, query_embeddings  # release the memory maps before the folder goes

    positive_scores = torch.cat(positive_parts)
    chosen, chosen_scores = torch.cat(chosen_parts), torch.cat(chosen_score_parts)
    chosen_ranks = torch.cat(chosen_rank_parts)
    found = chosen >= 0
    mined_records = []
    for record, row, row_scores, row_ranks, row_found in zip(
        records, chosen.tolist(), chosen_scores.tolist(), chosen_ranks.tolist(), found.tolist()
    ):
        negatives = [
            MinedNegative(
                id=corpus.owner_answer_ids[c], text=corpus.texts[c], question_id=corpus.owner_question_ids[c],
                similarity=s, rank=r,
            )
            for c, s, r, ok in zip(row, row_scores, row_ranks, row_found)
            if ok
        ]
        mined_records.append(record.model_copy(update={"negatives": negatives}))

    per_question = found.sum(1)
    negative_scores = chosen_scores[found]
    statistics = {
        "questions": n_q,
        "corpus_answers": n_c,
        "candidates_retrieved": int((indices >= 0).sum()),
        "removed": removed,
        "negatives": int(found.sum()),
        "questions_with_fewer_than_k": int((per_question < config.num_negatives).sum()),
        "questions_without_negatives": int((per_question == 0).sum()),
        "similarity": {
            "positive": similarity_summary(positive_scores),
            "negative": similarity_summary(negative_scores),
            "positive_minus_negative": similarity_summary(
                (positive_scores[:, None].expand_as(chosen_scores))[found] - negative_scores
            ),
        },
    }
    search = {
        "index": index_kind, "device": device, "range_max": range_max, "k_retrieved": k_retrieved,
        "embeddings_from_cache": {"documents": corpus_cached, "queries": query_cached},
        # why a cache entry that was there was not used (it was encoded again and rewritten); None: no such entry
        "embeddings_cache_rejected": {"documents": corpus_rejected, "queries": query_rejected},
    }
    return MiningResult(records=mined_records, statistics=statistics, search=search, timing=timing)
