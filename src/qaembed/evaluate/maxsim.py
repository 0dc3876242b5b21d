"""MaxSim (late-interaction) search for evaluation: token store, exact chunked search, ANN candidates.

The cosine protocols rank with one vector per text. With ``EvalConfig.scorer == "maxsim"`` the
same protocols (same metrics code, same per-question outputs) rank with ColBERT's MaxSim over
L2-normalized token embeddings (``qaembed.losses.scores.maxsim_scores``, ``reduce="mean"``:
dividing a query's row by its number of tokens does not change any ranking, so ``sum`` would
give identical metrics).

* :class:`TokenStore` — the corpus' token embeddings, encoded once, stored as float16 in one
  memory-mapped file (``tokens.f16``, ``(total tokens, dim)``) with per-text ``offsets.npy``
  and ``meta.json`` (a key over the model and the texts). A folder whose key matches is reused
  without encoding; any other content is replaced.
* :func:`exact_search` — exact MaxSim of every query against the whole corpus: documents in
  length-sorted chunks of ``chunk_docs`` read from the store, queries in chunks sized so the
  ``(queries, docs, L_q, L_d)`` similarity block stays under ``block_elements`` floats, top-k
  kept per query with a streaming merge. Memory is bounded by the chunk sizes, not the corpus.
* :func:`pair_scores` — MaxSim of given (query, document) pairs (within-question ranking,
  in-batch groups, ANN re-ranking), vectorized over pairs in bounded blocks.
* :func:`ann_search` — for corpora too large for the exact path: a FAISS IVF index over all
  document tokens (fp16 scalar quantizer, inner product); every real query token retrieves its
  ``ann_tokens`` nearest document tokens, their documents are the query's candidates, and the
  candidates are re-ranked with exact MaxSim. :func:`candidate_recall` measures, on a sample
  of queries, the share of the exact top-100 that is among the candidates (= recall@100 of the
  re-ranked list against exact MaxSim, since re-ranking is exact).

Example
-------
>>> import numpy as np, tempfile, torch
>>> docs = [np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [0.6, 0.8]])]  # 2 docs, unit tokens
>>> store = TokenStore.build(tempfile.mkdtemp(), ["a", "b"], lambda texts: [docs[0], docs[1]][: len(texts)], key="k")
>>> store.lengths.tolist(), store.dim
([1, 2], 2)
>>> q, mask = torch.tensor([[[0.0, 1.0]]]), torch.tensor([[True]])
>>> scores, index = exact_search(q, mask, store, np.array([0, 1]), k=2)
>>> index.tolist(), scores.round(3).tolist()
([[1, 0]], [[1.0, 0.0]])
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from qaembed.errors import ConfigError, QaembedError
from qaembed.evaluate.ranking import sorted_rows
from qaembed.outputs import new_file, replace_text, replacing

# texts -> one (L_i, dim) array of L2-normalized token embeddings per text (padding removed)
TokenEncodeFn = Callable[[list[str]], list[np.ndarray]]

TOKENS_FILE = "tokens.f16"
OFFSETS_FILE = "offsets.npy"
META_FILE = "meta.json"
STORE_FORMAT = 1


def texts_key(texts: Sequence[str], model_key: str) -> str:
    """Hash of the model key and the exact texts (order included): what a stored folder must match."""
    digest = hashlib.sha256(model_key.encode())
    for text in texts:
        digest.update(b"\0" + text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


@dataclass
class TokenStore:
    """Token embeddings of ``count`` texts: ``tokens[offsets[i]:offsets[i + 1]]`` are text ``i``'s."""

    path: Path
    tokens: np.ndarray  # (total tokens, dim) float16, memory-mapped (read-only)
    offsets: np.ndarray  # (count + 1,) int64
    key: str
    encoded: bool  # True when this call encoded the texts, False when the folder was reused

    @property
    def count(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def dim(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def open(cls, folder: str | Path, key: str) -> TokenStore | None:
        """The store in ``folder`` if it is complete and holds ``key``; else None."""
        folder = Path(folder)
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("key") != key or meta.get("format") != STORE_FORMAT:
            return None
        try:
            offsets = np.load(folder / OFFSETS_FILE)
            total, dim = int(meta["total_tokens"]), int(meta["dim"])
            size = (folder / TOKENS_FILE).stat().st_size
        except (OSError, ValueError, KeyError, TypeError):  # a partial or foreign folder: rebuilt
            return None
        if offsets.shape != (int(meta["count"]) + 1,) or int(offsets[-1]) != total or size != total * dim * 2:
            return None
        tokens = np.memmap(folder / TOKENS_FILE, dtype=np.float16, mode="r", shape=(total, dim)) if total else \
            np.zeros((0, dim), dtype=np.float16)
        return cls(folder, tokens, offsets, key, encoded=False)

    @classmethod
    def build(cls, folder: str | Path, texts: Sequence[str], encode: TokenEncodeFn, *, key: str,
              slice_texts: int = 8192) -> TokenStore:
        """Open ``folder`` if it holds ``key`` (no encoding), else encode ``texts`` into it.

        ``encode`` is called on consecutive slices of ``slice_texts`` texts; each slice's tokens are
        appended to ``tokens.f16`` as float16 right away, so memory holds one slice, not the corpus.
        """
        folder = Path(folder)
        existing = cls.open(folder, key)
        if existing is not None:
            return existing
        if len(texts) == 0:
            raise QaembedError("nothing to encode: the list of texts is empty")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / META_FILE).unlink(missing_ok=True)  # an interrupted build leaves no valid store behind
        lengths = np.zeros(len(texts), dtype=np.int64)
        dim = None
        tmp = new_file(folder / (TOKENS_FILE + ".tmp"))  # the store's files never write through a link
        with tmp.open("wb") as out:
            for start in range(0, len(texts), slice_texts):
                chunk = list(texts[start : start + slice_texts])
                arrays = encode(chunk)
                if len(arrays) != len(chunk):
                    raise QaembedError(f"token encoder returned {len(arrays)} arrays for {len(chunk)} texts")
                for i, array in enumerate(arrays):
                    array = np.asarray(array)
                    if array.ndim != 2 or (dim is not None and array.shape[1] != dim):
                        raise QaembedError(f"token encoder returned shape {tuple(array.shape)}; expected (tokens, "
                                           f"{dim if dim is not None else 'dim'})")
                    dim = int(array.shape[1])
                    lengths[start + i] = array.shape[0]
                    out.write(np.ascontiguousarray(array, dtype=np.float16).tobytes())
        offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        os.replace(tmp, folder / TOKENS_FILE)
        with replacing(folder / OFFSETS_FILE, tmp_name="offsets.tmp.npy") as offsets_tmp:  # np.save adds .npy
            np.save(offsets_tmp, offsets)
        meta = {"format": STORE_FORMAT, "key": key, "count": len(texts), "dim": dim, "total_tokens": int(offsets[-1]),
                "dtype": "float16"}
        replace_text(folder / META_FILE, json.dumps(meta, indent=2))
        store = cls.open(folder, key)
        assert store is not None
        store.encoded = True
        return store

    def padded(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``(len(rows), L, dim)`` float32 tokens of the given texts, zero-padded, and the ``(len(rows), L)`` mask."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        width = max(int(lengths.max(initial=0)), 1)
        out = np.zeros((rows.shape[0], width, self.dim), dtype=np.float32)
        total = int(lengths.sum())
        if total:
            row_of = np.repeat(np.arange(rows.shape[0]), lengths)
            position = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            out[row_of, position] = self.tokens[np.repeat(self.offsets[rows], lengths) + position]
        mask = np.arange(width)[None, :] < lengths[:, None]
        return torch.from_numpy(out), torch.from_numpy(mask)


def pad_tokens(arrays: Sequence[np.ndarray], max_tokens: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, L, dim)`` float32 tensor and ``(n, L)`` bool mask of per-text token arrays; ``max_tokens`` keeps the first ones."""
    cut = [np.asarray(a, dtype=np.float32)[:max_tokens] if max_tokens else np.asarray(a, dtype=np.float32)
           for a in arrays]
    width = max(max((a.shape[0] for a in cut), default=1), 1)
    dim = cut[0].shape[1] if cut else 0
    out = np.zeros((len(cut), width, dim), dtype=np.float32)
    mask = np.zeros((len(cut), width), dtype=bool)
    for i, array in enumerate(cut):  # once per query text, not in the scoring
        out[i, : array.shape[0]] = array
        mask[i, : array.shape[0]] = True
    return torch.from_numpy(out), torch.from_numpy(mask)


def _query_chunk(block_elements: int, docs: int, q_len: int, d_len: int) -> int:
    return max(1, block_elements // max(1, docs * q_len * d_len))


@torch.inference_mode()
def block_maxsim(q_tok: torch.Tensor, q_mask: torch.Tensor, d_tok: torch.Tensor, d_mask: torch.Tensor) -> torch.Tensor:
    """(n_q, c) MaxSim, mean over real query tokens: ``maxsim_scores(..., reduce="mean")`` without autograd.

    One matrix product ``(n_q * L_q, dim) @ (dim, c * L_d)`` and in-place masking, so the similarity
    block is allocated once (the training scorer keeps ``torch.where`` for clean gradients).
    """
    n_q, l_q, dim = q_tok.shape
    c, l_d, _ = d_tok.shape
    sim = (q_tok.reshape(n_q * l_q, dim) @ d_tok.reshape(c * l_d, dim).T).view(n_q, l_q, c, l_d)
    sim.masked_fill_(~d_mask[None, None, :, :], float("-inf"))
    best = sim.amax(dim=3)  # (n_q, L_q, c)
    best.masked_fill_(~(q_mask[:, :, None] & d_mask.any(dim=1)[None, None, :]), 0.0)
    return best.sum(dim=1) / q_mask.sum(dim=1, keepdim=True).clamp(min=1).to(best.dtype)  # (n_q, c)


def exact_search(q_tok: torch.Tensor, q_mask: torch.Tensor, store: TokenStore, doc_rows: np.ndarray, k: int, *,
                 chunk_docs: int = 1024, block_elements: int = 1 << 25) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` corpus documents by MaxSim: ((n_q, k') scores, (n_q, k') indices into ``doc_rows``).

    ``doc_rows[j]`` is the store row of corpus document ``j`` (duplicate texts share a row).
    Rows are sorted by decreasing score, ties by increasing document index; ``k' = min(k, n_d)``.
    Results do not depend on ``chunk_docs`` or ``block_elements`` (up to float rounding).
    """
    doc_rows = np.asarray(doc_rows, dtype=np.int64)
    n_q, n_d = q_tok.shape[0], doc_rows.shape[0]
    if n_d == 0:
        raise QaembedError("the corpus is empty: no documents to rank")
    k = min(k, n_d)
    best_scores = torch.full((n_q, k), float("-inf"))
    best_index = torch.full((n_q, k), -1, dtype=torch.int64)
    order = np.argsort(store.lengths[doc_rows], kind="stable")  # similar lengths share a chunk: little padding
    for start in range(0, n_d, chunk_docs):
        members = order[start : start + chunk_docs]
        d_tok, d_mask = store.padded(doc_rows[members])  # (c, L_d, dim), (c, L_d)
        step = _query_chunk(block_elements, members.shape[0], q_tok.shape[1], d_tok.shape[1])
        block = torch.cat([block_maxsim(q_tok[i : i + step], q_mask[i : i + step], d_tok, d_mask)
                           for i in range(0, n_q, step)])  # (n_q, c)
        scores = torch.cat([best_scores, block], dim=1)
        index = torch.cat([best_index, torch.from_numpy(members).expand(n_q, -1)], dim=1)
        top = torch.topk(scores, k, dim=1)
        best_scores, best_index = top.values, torch.gather(index, 1, top.indices)
    return sorted_rows(best_scores.numpy(), best_index.numpy())


def pair_scores(q_tok: torch.Tensor, q_mask: torch.Tensor, query_index: np.ndarray, store: TokenStore,
                store_rows: np.ndarray, *, block_elements: int = 1 << 25) -> np.ndarray:
    """(n_pairs,) MaxSim (mean over query tokens) of query ``query_index[p]`` with stored text ``store_rows[p]``."""
    query_index = np.asarray(query_index, dtype=np.int64)
    store_rows = np.asarray(store_rows, dtype=np.int64)
    out = np.empty(query_index.shape[0], dtype=np.float32)
    if out.size == 0:
        return out
    order = np.argsort(store.lengths[store_rows], kind="stable")
    q_len = q_tok.shape[1]
    longest = int(store.lengths[store_rows].max(initial=1)) or 1
    step = max(1, block_elements // (q_len * longest))
    for start in range(0, order.shape[0], step):
        members = order[start : start + step]
        d_tok, d_mask = store.padded(store_rows[members])  # (p, L_d, dim)
        qi = torch.from_numpy(query_index[members])
        with torch.inference_mode():
            sim = torch.bmm(q_tok[qi], d_tok.transpose(1, 2))  # (p, L_q, L_d)
            sim.masked_fill_(~d_mask[:, None, :], float("-inf"))
            best = sim.amax(dim=2)  # (p, L_q)
            best.masked_fill_(~(q_mask[qi] & d_mask.any(dim=1)[:, None]), 0.0)
            out[members] = (best.sum(dim=1) / q_mask[qi].sum(dim=1).clamp(min=1)).numpy()
    return out


@dataclass
class AnnResult:
    scores: np.ndarray  # (n_q, k') re-ranked exact MaxSim scores
    index: np.ndarray  # (n_q, k') corpus indices
    candidates: list[np.ndarray]  # per query, sorted corpus indices of its candidates
    info: dict


def ann_search(q_tok: torch.Tensor, q_mask: torch.Tensor, store: TokenStore, doc_rows: np.ndarray, k: int, *,
               ann_tokens: int = 32, nlist: int | None = None, nprobe: int = 16, seed: int = 0,
               block_elements: int = 1 << 25) -> AnnResult:
    """Candidates from a FAISS token index, re-ranked by exact MaxSim (see the module docstring).

    Rows with fewer than ``k`` candidates are padded with index -1 and score ``-inf``.
    """
    import faiss

    doc_rows = np.asarray(doc_rows, dtype=np.int64)
    n_q, n_d = q_tok.shape[0], doc_rows.shape[0]
    if n_d == 0:
        raise QaembedError("the corpus is empty: no documents to rank")
    total = int(store.offsets[-1])
    if total == 0:
        raise QaembedError("the corpus has no tokens: nothing to index")
    nlist = nlist or max(1, min(int(4 * math.sqrt(total)), total // 39 or 1))
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(store.dim), store.dim, nlist,
                                          faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(total, size=min(total, max(nlist * 64, 10_000)), replace=False))
    index.train(np.ascontiguousarray(store.tokens[sample], dtype=np.float32))
    for start in range(0, total, 1 << 18):
        index.add(np.ascontiguousarray(store.tokens[start : start + (1 << 18)], dtype=np.float32))
    index.nprobe = min(nprobe, nlist)
    token_text = np.repeat(np.arange(store.count), store.lengths)  # token -> store row

    # store row -> corpus indices (several documents may share one text)
    by_row = np.argsort(doc_rows, kind="stable")
    row_start = np.searchsorted(doc_rows[by_row], np.arange(store.count + 1))

    query_of, flat = torch.nonzero(q_mask, as_tuple=True)  # real query tokens
    _, hits = index.search(np.ascontiguousarray(q_tok[query_of, flat].numpy(), dtype=np.float32),
                           min(ann_tokens, total))  # (real tokens, ann_tokens)
    pair_query = np.repeat(query_of.numpy(), hits.shape[1])
    pair_row = np.where(hits.ravel() >= 0, token_text[np.maximum(hits.ravel(), 0)], -1)
    keep = pair_row >= 0
    pairs = np.unique(np.stack([pair_query[keep], pair_row[keep]], axis=1), axis=0)  # unique (query, store row)
    counts = row_start[pairs[:, 1] + 1] - row_start[pairs[:, 1]]
    cand_query = np.repeat(pairs[:, 0], counts)
    cand_doc = by_row[np.repeat(row_start[pairs[:, 1]], counts) + (np.arange(counts.sum()) - np.repeat(
        np.cumsum(counts) - counts, counts))]
    scores = pair_scores(q_tok, q_mask, cand_query, store, doc_rows[cand_doc], block_elements=block_elements)

    order = np.lexsort((cand_doc, -scores, cand_query))
    cand_query, cand_doc, scores = cand_query[order], cand_doc[order], scores[order]
    starts = np.searchsorted(cand_query, np.arange(n_q + 1))
    k = min(k, n_d)
    rank = np.arange(cand_query.shape[0]) - starts[cand_query]
    top = rank < k
    out_scores = np.full((n_q, k), -np.inf, dtype=np.float32)
    out_index = np.full((n_q, k), -1, dtype=np.int64)
    out_scores[cand_query[top], rank[top]] = scores[top]
    out_index[cand_query[top], rank[top]] = cand_doc[top]
    candidates = [np.sort(cand_doc[starts[i] : starts[i + 1]]) for i in range(n_q)]
    sizes = np.diff(starts)
    info = {"index": "faiss IndexIVFScalarQuantizer(fp16, inner product)", "nlist": nlist, "nprobe": index.nprobe,
            "ann_tokens": int(min(ann_tokens, total)), "indexed_tokens": total,
            "mean_candidates": float(sizes.mean()) if n_q else 0.0, "min_candidates": int(sizes.min(initial=0))}
    return AnnResult(out_scores, out_index, candidates, info)


def candidate_recall(exact_index: np.ndarray, candidates: Sequence[np.ndarray]) -> np.ndarray:
    """(n,) share of each row's exact top documents (``exact_index``, -1 = none) found among its candidates."""
    recall = np.empty(exact_index.shape[0], dtype=np.float64)
    for i, (row, found) in enumerate(zip(exact_index, candidates)):  # one set lookup per sampled query
        wanted = row[row >= 0]
        recall[i] = np.isin(wanted, found).mean() if wanted.size else 1.0
    return recall


class MaxSimRanker:
    """The MaxSim side of an evaluation: query tokens in memory, corpus tokens in a :class:`TokenStore`.

    ``search(k)`` ranks the corpus for every query (exact, or ANN + exact re-rank per
    ``config.maxsim_search``) and ``pairs(query_index, doc_index)`` scores given pairs; both return
    what the cosine path's matrix products return, so the protocols share everything else.
    """

    def __init__(self, q_tok: torch.Tensor, q_mask: torch.Tensor, store: TokenStore, doc_rows: np.ndarray,
                 config) -> None:
        self.q_tok, self.q_mask, self.store, self.doc_rows, self.config = q_tok, q_mask, store, doc_rows, config
        self.info: dict = {"store": str(store.path), "store_reused": not store.encoded, "token_dim": store.dim,
                           "documents": int(doc_rows.shape[0]), "stored_texts": store.count,
                           "stored_tokens": int(store.offsets[-1]), "query_tokens": int(q_mask.sum()),
                           "search": config.maxsim_search}

    @property
    def block_elements(self) -> int:
        return max(1, self.config.maxsim_block_mb * (1 << 20) // 4)

    def search(self, k: int) -> np.ndarray:
        """(n_q, k') corpus indices by decreasing MaxSim (ANN rows short of candidates end in -1)."""
        config, n_d = self.config, int(self.doc_rows.shape[0])
        exact = dict(chunk_docs=config.maxsim_chunk_docs, block_elements=self.block_elements)
        if config.maxsim_search == "exact":
            check_exact_size(n_d, config)
            _, index = exact_search(self.q_tok, self.q_mask, self.store, self.doc_rows, k, **exact)
            return index
        depth = max(k, 100)
        result = ann_search(self.q_tok, self.q_mask, self.store, self.doc_rows, depth,
                            ann_tokens=config.maxsim_ann_tokens, nlist=config.maxsim_ann_nlist,
                            nprobe=config.maxsim_ann_nprobe, seed=config.seed, block_elements=self.block_elements)
        self.info["ann"] = result.info
        sample_size = min(config.maxsim_ann_recall_queries, self.q_tok.shape[0])
        if sample_size:
            sample = np.sort(np.random.default_rng(config.seed).choice(self.q_tok.shape[0], sample_size, replace=False))
            qi = torch.from_numpy(sample)
            _, exact_top = exact_search(self.q_tok[qi], self.q_mask[qi], self.store, self.doc_rows, 100, **exact)
            recall = candidate_recall(exact_top, [result.candidates[i] for i in sample])
            self.info["ann"].update({"recall@100": float(recall.mean()), "recall_queries": int(sample_size)})
        else:
            self.info["ann"].update({"recall@100": None, "recall_queries": 0})
        return result.index[:, : min(k, n_d)]

    def pairs(self, query_index: np.ndarray, doc_index: np.ndarray) -> np.ndarray:
        """(n_pairs,) MaxSim of query ``query_index[p]`` with corpus document ``doc_index[p]``."""
        return pair_scores(self.q_tok, self.q_mask, query_index, self.store, self.doc_rows[np.asarray(doc_index)],
                           block_elements=self.block_elements)


def check_exact_size(num_docs: int, config) -> None:
    """Raise :class:`ConfigError` naming the options when the exact path is asked for a corpus over its limit."""
    if config.maxsim_search == "exact" and num_docs > config.maxsim_exact_max_docs:
        raise ConfigError(
            f"--scorer maxsim: the corpus has {num_docs} documents, more than --maxsim-exact-max-docs "
            f"{config.maxsim_exact_max_docs} for exact MaxSim search; use --maxsim-search ann (FAISS token "
            "candidates, exact re-ranking, recall@100 measured) or raise --maxsim-exact-max-docs"
        )


def build_ranker(model, queries: Sequence[str], docs: Sequence[str], config, *,
                 token_encode: TokenEncodeFn | None = None, store_dir: str | Path,
                 reusable: bool = True) -> MaxSimRanker:
    """Encode the queries (in memory, first ``config.query_length`` tokens) and the corpus (into a store).

    Each distinct text is encoded once. The store in ``store_dir`` is reused when it holds the same
    texts encoded by the same model (``model_fingerprint``); with ``token_encode`` (no model) it is
    rebuilt unless ``config.maxsim_store_key`` names the encoder. ``reusable=False`` (a temporary
    folder) skips hashing the model's weights.
    """
    import pandas as pd

    if (model is None) == (token_encode is None):
        raise QaembedError("evaluate: give exactly one of model and token_encode")
    check_exact_size(len(docs), config)  # before the (long) encoding
    query_encode = token_encode
    if model is not None:
        from qaembed.late_interaction import ColbertTokens

        check_token_model(model)
        colbert = ColbertTokens(config.query_prefix, config.document_prefix, config.query_expansion,
                                config.query_length)
        token_encode = sentence_transformer_token_encoder(model, config.encode_batch_size, config.show_progress,
                                                          colbert=colbert)
        query_encode = sentence_transformer_token_encoder(model, config.encode_batch_size, config.show_progress,
                                                          is_query=True, colbert=colbert)
        model_key = model_fingerprint(model) + repr(colbert) if reusable else None
    else:
        model_key = config.maxsim_store_key
    if len(queries) == 0 or len(docs) == 0:
        raise QaembedError("nothing to encode: the list of texts is empty")
    q_codes, q_unique = pd.factorize(pd.Series(list(queries), dtype=object), sort=False)
    q_tok, q_mask = pad_tokens(query_encode(list(q_unique)), config.query_length)
    d_codes, d_unique = pd.factorize(pd.Series(list(docs), dtype=object), sort=False)
    texts = list(d_unique)
    key = texts_key(texts, model_key) if model_key else os.urandom(16).hex()
    store = TokenStore.build(store_dir, texts, token_encode, key=key)
    if store.dim != q_tok.shape[2]:
        raise QaembedError(f"query tokens have {q_tok.shape[2]} dims, the stored corpus {store.dim}")
    q_index = torch.from_numpy(np.asarray(q_codes, dtype=np.int64))
    return MaxSimRanker(q_tok[q_index], q_mask[q_index], store, np.asarray(d_codes, dtype=np.int64), config)


def sentence_transformer_token_encoder(model, batch_size: int | None = None, show_progress: bool = False, *,
                                       is_query: bool = False, colbert=None) -> TokenEncodeFn:
    """A :data:`TokenEncodeFn` over the model's forward: length-sorted batches, tokens L2-normalized, padding removed.

    Token embeddings are what the training scorer sees (``qaembed.late_interaction.token_embeddings``):
    the transformer's last hidden states, through the model's token projection if it has one. With
    ``colbert`` settings active (markers, query expansion), texts are tokenized as in training
    (``qaembed.late_interaction.colbert_tokenize``) and "padding" means tokens outside ``maxsim_mask``.
    """
    from qaembed.batching.collate import tokenize
    from qaembed.late_interaction import colbert_tokenize, token_embeddings
    from qaembed.model import encode_batch_size

    batch_size = batch_size or encode_batch_size(model)

    def features_of(texts: list[str]) -> dict:
        if colbert is not None and colbert.active:
            return colbert_tokenize(model.tokenizer, texts, is_query=is_query, max_length=model.max_seq_length,
                                    colbert=colbert, option="--scorer maxsim")
        return tokenize(model, texts, model.max_seq_length)

    def encode(texts: list[str]) -> list[np.ndarray]:
        lengths = [len(t) for t in texts]
        order = np.argsort(-np.asarray(lengths), kind="stable")
        out: list[np.ndarray | None] = [None] * len(texts)
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(texts), batch_size):
                    members = order[start : start + batch_size]
                    features = features_of([texts[i] for i in members])
                    features = {name: value.to(model.device) for name, value in features.items()}
                    tokens, mask = token_embeddings(model(features), option="--scorer maxsim")
                    tokens, mask = tokens.float().cpu().numpy(), mask.cpu().numpy()
                    for row, i in enumerate(members):
                        out[i] = tokens[row][mask[row]]
        finally:
            model.train(was_training)
        return out  # type: ignore[return-value]

    return encode


def model_fingerprint(model) -> str:
    """Hash of a model's weights, module types and max_seq_length (the store's reuse key)."""
    digest = hashlib.sha256(f"{[type(m).__name__ for m in model]}|{model.max_seq_length}".encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_token_model(model, option: str = "--scorer maxsim") -> None:
    """Raise :class:`ConfigError` unless the model's first module is a transformer giving token embeddings."""
    from sentence_transformers.sentence_transformer.modules import Transformer

    first = model[0] if len(model) else None
    if not isinstance(first, Transformer):
        raise ConfigError(
            f"{option}: the model's first module is {type(first).__name__}, which gives no per-token embeddings, "
            "so MaxSim cannot score it; evaluate it with --scorer cosine, or use a transformer-based model "
            "(e.g. one trained with scorer: maxsim or combined)"
        )


__all__ = ["AnnResult", "MaxSimRanker", "build_ranker", "TokenEncodeFn", "TokenStore", "ann_search", "candidate_recall", "check_token_model",
           "exact_search", "model_fingerprint", "pad_tokens", "pair_scores", "sentence_transformer_token_encoder",
           "texts_key"]
