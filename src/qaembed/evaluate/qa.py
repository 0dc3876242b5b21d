"""The graded Q&A evaluation protocol: full-corpus retrieval, within-question ranking, in-batch.

See ``docs/evaluation.md`` for the protocol and the package docstring of
:mod:`qaembed.evaluate` for the public API. Everything after encoding is array code over
all questions at once (grouped by answer count for the within-question section).

Graded gain of an answer ``a`` of question ``q`` with vote scores ``v``::

    gain(a) = (1 + v_a - min_q v) / (1 + max_q v - min_q v)        in (0, 1]

The top-voted answer has gain 1, every own answer is relevant (gain > 0, the same set as
binary relevance), a lower vote gives a lower gain, and shifting all votes of a question
by a constant changes nothing. Other questions' answers have gain 0.

Example
-------
>>> import numpy as np
>>> graded_gains(np.array([5.0, 3.0, -1.0, 2.0]), np.array([0, 0, 0, 1]), 2).round(3).tolist()
[1.0, 0.714, 0.143, 1.0]
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from qaembed.errors import DataError, QaembedError
from qaembed.evaluate.config import EvalConfig
from qaembed.evaluate.maxsim import TokenEncodeFn
from qaembed.evaluate.metrics import (
    kendall_tau_b,
    ndcg_at_k,
    pairwise_accuracy,
    rank_by_score,
    ranking_metrics,
)
from qaembed.evaluate.ranking import EncodeFn, Qrels, encode_unique, resolve_encoder, retrieve
from qaembed.evaluate.result import EvalResult
from qaembed.records import CorpusDocument, QARecord, question_text

# Largest number of (question, answer, answer) entries held at once by the within-question section.
_WITHIN_PAIR_BUDGET = 1 << 20


def graded_gains(votes: np.ndarray, question_index: np.ndarray, num_questions: int) -> np.ndarray:
    """(n_answers,) gain of each answer from the votes within its question (formula in the module docstring)."""
    votes = np.asarray(votes, dtype=np.float64)
    highest = np.full(num_questions, -np.inf)
    lowest = np.full(num_questions, np.inf)
    np.maximum.at(highest, question_index, votes)
    np.minimum.at(lowest, question_index, votes)
    low = lowest[question_index]
    return (1.0 + votes - low) / (1.0 + highest[question_index] - low)


def _check_unique(ids: list[str], what: str) -> None:
    codes, uniques = pd.factorize(pd.Series(ids, dtype=object))
    if len(uniques) != len(ids):
        counts = np.bincount(codes)
        raise DataError(f"{what} id {uniques[int(counts.argmax())]!r} occurs {int(counts.max())} times")


def corpus_columns(ids: list[str], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(column of each entry, the entries that open a column): one corpus document per distinct id.

    A document may be judged for several questions (a passage that answers two questions, a
    distractor that is also an evaluated question's answer): entries with the same id are the
    same document and must hold the same text; different texts under one id are a
    :class:`DataError`.

    >>> corpus_columns(["a", "b", "a"], ["x", "y", "x"])[0].tolist()
    [0, 1, 0]
    """
    codes, uniques = pd.factorize(pd.Series(ids, dtype=object))
    first = np.full(len(uniques), -1, dtype=np.int64)
    positions = np.arange(len(ids))
    first[codes[::-1]] = positions[::-1]  # the first entry of each id
    text_array = np.array(texts, dtype=object)
    clash = np.flatnonzero(text_array != text_array[first[codes]])
    if clash.size:
        raise DataError(f"answer id {ids[int(clash[0])]!r} occurs with two different texts (a document judged for "
                        "several questions must have one text)")
    return codes.astype(np.int64), first


def _query_texts(records: Sequence[QARecord], mode: str) -> list[str]:
    texts = []
    for record in records:
        try:
            texts.append(question_text(record, mode))
        except ValueError as exc:
            raise DataError(str(exc), field="query_mode") from exc
    return texts


def _top_answer_positions(answer_ids: np.ndarray, votes: np.ndarray, accepted: np.ndarray,
                          question_index: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(n_q,) flat index of each question's top answer (ties: accepted first, then id, as QARecord.top_answer)."""
    order = np.lexsort((answer_ids, ~accepted, -votes, question_index))
    return order[starts]


def _retrieval_section(retrieved_index, num_docs, question_index, doc_index, gains, config) -> dict[str, np.ndarray]:
    """Metrics of the (n_q, depth) corpus indices each question retrieved (-1: nothing at that rank).

    ``doc_index``: the corpus column of each own answer (``question_index``'s question judges it with ``gains``).
    """
    num_questions = retrieved_index.shape[0]
    qrels = Qrels.from_arrays(question_index, doc_index, gains, num_questions, num_docs)
    graded = np.where(retrieved_index >= 0, qrels.gains_of(np.maximum(retrieved_index, 0)), 0.0)  # (n_q, depth)
    binary = (graded > 0).astype(np.float64)
    columns = ranking_metrics(binary, qrels.binary().ideal(), config.ks, config.mrr_k, prefix="retrieval/")
    graded_ideal = qrels.ideal()
    for k in config.ks:
        columns[f"retrieval/graded_ndcg@{k}"] = ndcg_at_k(graded, graded_ideal, k)
    # gain 1 exactly when the answer is (one of) its question's top-voted (graded_gains)
    columns["retrieval/accuracy@1"] = (graded[:, 0] >= 1.0).astype(np.float64)
    return columns


def _within_section(answer_sims, votes, gains, num_answers, starts, eligible) -> dict[str, np.ndarray]:
    num_questions = num_answers.shape[0]
    names = ("within/accuracy@1", "within/ndcg", "within/kendall_tau", "within/pairwise_accuracy")
    columns = {name: np.full(num_questions, np.nan) for name in names}
    for m in np.unique(num_answers[eligible]):  # one group per answer count: no padding needed
        group = np.flatnonzero(eligible & (num_answers == m))
        rows_per_chunk = max(1, _WITHIN_PAIR_BUDGET // int(m * m))
        for chunk in np.array_split(group, math.ceil(group.size / rows_per_chunk)):
            index = starts[chunk][:, None] + np.arange(m)  # (c, m) flat answer indices
            sims, chunk_votes, chunk_gains = answer_sims[index], votes[index], gains[index]
            mask = np.ones(index.shape, dtype=bool)
            order = rank_by_score(sims)
            ranked_gains = np.take_along_axis(chunk_gains, order, axis=1)
            ideal = -np.sort(-chunk_gains, axis=1)
            top_votes = np.take_along_axis(chunk_votes, order[:, :1], axis=1)[:, 0]
            columns["within/accuracy@1"][chunk] = (top_votes == chunk_votes.max(axis=1)).astype(np.float64)
            columns["within/ndcg"][chunk] = ndcg_at_k(ranked_gains, ideal, int(m))
            columns["within/kendall_tau"][chunk] = kendall_tau_b(sims, chunk_votes, mask)
            columns["within/pairwise_accuracy"][chunk] = pairwise_accuracy(sims, chunk_votes, mask)
    return columns


def in_batch_groups(num_questions: int, batch_size: int, seed: int) -> np.ndarray:
    """(n_batches, max size) question indices of a seeded partition into near-equal batches, padded with -1.

    There are ceil(n / batch_size) batches whose sizes differ by at most one, so no batch
    is much smaller than the others.
    """
    permutation = np.random.default_rng(seed).permutation(num_questions)
    num_batches = math.ceil(num_questions / batch_size)
    sizes = np.full(num_batches, num_questions // num_batches)
    sizes[: num_questions % num_batches] += 1
    batch_of = np.repeat(np.arange(num_batches), sizes)
    slot = np.arange(num_questions) - np.concatenate(([0], np.cumsum(sizes)[:-1]))[batch_of]
    groups = np.full((num_batches, int(sizes.max())), -1, dtype=np.int64)
    groups[batch_of, slot] = permutation
    return groups


def _cosine_in_batch_sims(query_emb, top_answer_emb, groups) -> np.ndarray:
    """(b, s, s) cosine of every question of a group with every top answer of the group (padding: 0)."""
    real = groups >= 0
    queries = np.where(real[:, :, None], query_emb[groups], 0.0)  # (b, s, dim)
    answers = np.where(real[:, :, None], top_answer_emb[groups], 0.0)  # (b, s, dim)
    return np.einsum("bid,bjd->bij", queries, answers)  # (b, s, s)


def _pair_in_batch_sims(pair_scores, top_positions, groups) -> np.ndarray:
    """(b, s, s) the same from a pair scorer (MaxSim): ``pair_scores(question indices, corpus indices)``."""
    real = groups >= 0
    both = real[:, :, None] & real[:, None, :]  # (b, s, s)
    b, i, j = np.nonzero(both)
    sims = np.zeros(both.shape, dtype=np.float32)
    sims[b, i, j] = pair_scores(groups[b, i], top_positions[groups[b, j]])
    return sims


def _in_batch_section(sims, groups) -> dict[str, np.ndarray]:
    """Rank of each question's own top answer among its group's top answers, from (b, s, s) scores."""
    num_questions = int((groups >= 0).sum())
    real = groups >= 0
    own = np.diagonal(sims, axis1=1, axis2=2)  # (b, s)
    others = real[:, None, :] & ~np.eye(groups.shape[1], dtype=bool)[None]
    # Pessimistic on exact ties: another answer scoring equal to the own top answer ranks above it.
    rank = 1 + ((sims >= own[:, :, None]) & others).sum(axis=2)  # (b, s)
    per_question = np.empty(num_questions, dtype=np.float64)
    per_question[groups[real]] = rank[real]
    return {"in_batch/accuracy@1": (per_question == 1).astype(np.float64), "in_batch/mrr": 1.0 / per_question}


def evaluate_model(
    model,
    records: Sequence[QARecord],
    *,
    config: EvalConfig | None = None,
    encode: EncodeFn | None = None,
    distractors: Sequence[QARecord] = (),
    token_encode: TokenEncodeFn | None = None,
    token_store: str | Path | None = None,
    extra_documents: Sequence[CorpusDocument] = (),
) -> EvalResult:
    """Evaluate an encoder on Q&A records with all three protocol sections.

    ``model`` is a loaded ``SentenceTransformer`` (or None when ``encode`` is given).
    ``distractors`` (e.g. the train split) add their answers to the retrieval corpus with
    gain 0, and so do ``extra_documents`` (a dataset's ``corpus.jsonl``: documents no question
    owns, e.g. passages of unreferenced documents). An answer id that occurs several times (a
    passage that answers two questions, or a distractor that is an evaluated question's answer) is
    one corpus document, judged for each question that owns it; its texts must agree. Questions without answers are skipped and counted; an input with no answered
    question raises :class:`DataError`.

    ``config.scorer == "maxsim"``: every section scores with MaxSim over token embeddings
    (:mod:`qaembed.evaluate.maxsim`); ``token_encode`` replaces ``model`` there, and the corpus'
    tokens go to ``token_store`` (a folder; None: a temporary folder removed afterwards).
    """
    config = config or EvalConfig()
    maxsim = config.scorer == "maxsim"
    if maxsim:
        if encode is not None:
            raise QaembedError("evaluate: scorer maxsim takes token_encode, not encode")
        if (model is None) == (token_encode is None):
            raise QaembedError("evaluate: give exactly one of model and token_encode")
    else:
        encode = resolve_encoder(model, encode, config.encode_batch_size, config.show_progress)
    started = time.perf_counter()

    answered = [record for record in records if record.answers]
    if not answered:
        raise DataError(f"none of the {len(records)} questions has an answer: nothing to evaluate")
    question_ids = [record.id for record in answered]
    _check_unique(question_ids + [record.id for record in distractors], "question")

    num_answers = np.array([len(record.answers) for record in answered], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(num_answers)[:-1]))
    question_index = np.repeat(np.arange(len(answered)), num_answers)
    answers = [answer for record in answered for answer in record.answers]
    for record in answered:
        _check_unique([a.id for a in record.answers], f"question {record.id!r}: answer")
    distractor_answers = [answer for record in distractors for answer in record.answers]
    # one corpus column per distinct id: own answers first (a passage judged for several questions is one
    # document), then distractors' answers and extra documents that are not already there (gain 0)
    entries = [(a.id, a.text) for a in answers] + [(a.id, a.text) for a in distractor_answers] + [
        (d.id, d.text) for d in extra_documents]
    columns_of, firsts = corpus_columns([e[0] for e in entries], [e[1] for e in entries])
    doc_index = columns_of[: len(answers)]  # (n_answers,) corpus column of each own answer
    votes = np.array([a.score for a in answers], dtype=np.float64)
    accepted = np.array([a.accepted for a in answers], dtype=bool)
    answer_ids = np.array([a.id for a in answers], dtype=str)

    queries = _query_texts(answered, config.query_mode)
    doc_texts = [entries[i][1] for i in firsts]
    num_docs = len(doc_texts)
    gains = graded_gains(votes, question_index, len(answered))
    highest = np.maximum.reduceat(votes, starts)
    lowest = np.minimum.reduceat(votes, starts)
    eligible = (num_answers >= 2) & (highest > lowest)
    top = _top_answer_positions(answer_ids, votes, accepted, question_index, starts) if len(answered) >= 2 else None
    extra_info: dict = {}

    with contextlib.ExitStack() as stack:
        encode_started = time.perf_counter()
        if maxsim:
            from qaembed.evaluate.maxsim import build_ranker

            folder = token_store if token_store is not None else stack.enter_context(tempfile.TemporaryDirectory())
            ranker = build_ranker(model, queries, doc_texts, config, token_encode=token_encode, store_dir=folder,
                                  reusable=token_store is not None)
            encode_seconds = time.perf_counter() - encode_started
            retrieved_index = ranker.search(config.depth)
            answer_sims = ranker.pairs(question_index, doc_index)  # (n_answers,)
            in_batch_sims = (lambda groups: _pair_in_batch_sims(ranker.pairs, doc_index[top], groups))
            extra_info["maxsim"] = ranker.info
        else:
            query_emb = encode_unique(queries, encode)  # (n_q, dim)
            doc_emb = encode_unique(doc_texts, encode)  # (n_d, dim)
            encode_seconds = time.perf_counter() - encode_started
            retrieved_index = retrieve(query_emb, doc_emb, config.depth, config)  # (n_q, depth)
            own_emb = doc_emb[doc_index]  # (n_answers, dim)
            answer_sims = np.einsum("ij,ij->i", query_emb[question_index], own_emb)  # (n_answers,)
            in_batch_sims = (lambda groups: _cosine_in_batch_sims(query_emb, own_emb[top], groups))

        columns = _retrieval_section(retrieved_index, num_docs, question_index, doc_index, gains, config)
        columns |= _within_section(answer_sims, votes, gains, num_answers, starts, eligible)

        counts = {
            "questions": len(records),
            "retrieval/questions": len(answered),
            "retrieval/skipped_no_answers": len(records) - len(answered),
            "retrieval/documents": num_docs,
            "retrieval/distractor_documents": num_docs - int(np.unique(doc_index).size),
            "retrieval/extra_documents": len(extra_documents),
            "within/questions": int(eligible.sum()),
            "within/skipped_single_answer": int((num_answers == 1).sum()),
            "within/skipped_tied": int(((num_answers >= 2) & (highest == lowest)).sum()),
            "in_batch/questions": 0,
        }
        notes = []
        if not eligible.any():
            notes.append("no question has 2+ answers with different votes: the within-question section is empty")
        if top is not None:
            groups = in_batch_groups(len(answered), config.in_batch_size, config.seed)  # (b, s)
            columns |= _in_batch_section(in_batch_sims(groups), groups)
            counts["in_batch/questions"] = len(answered)
        else:
            notes.append("only one answered question: the in-batch section is empty")
    if maxsim and "ann" in extra_info["maxsim"]:
        ann = extra_info["maxsim"]["ann"]
        if ann["recall@100"] is not None:
            notes.append(f"maxsim ann: candidates hold {ann['recall@100']:.4f} of the exact MaxSim top 100 "
                         f"(recall@100 over {ann['recall_queries']} sampled queries)")

    per_question = pd.DataFrame(columns, index=pd.Index(question_ids, name="question_id"))
    info = {
        "protocol": "qa",
        "config": config.model_dump(),
        "texts_encoded": len(queries) + num_docs,
        "encode_seconds": encode_seconds,
        "total_seconds": time.perf_counter() - started,
        "notes": notes,
        **extra_info,
    }
    return EvalResult.from_per_question(per_question, counts, info)
