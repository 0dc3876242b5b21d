"""Evaluation of embedding models on graded Q&A data and on BEIR datasets.

The protocol is described in ``docs/evaluation.md``. Three sections are computed for a
list of :class:`~qaembed.records.QARecord` (usually the test or dev split):

* ``retrieval/*``: every question ranks the corpus of all answers of all evaluated
  questions (optionally plus distractor answers, e.g. the train split's): MRR@10,
  NDCG@k with binary and vote-graded gains, MAP@k, Recall@k, Precision@k, and
  accuracy@1 of the top-voted answer;
* ``within/*``: each question with 2+ answers whose votes are not all tied ranks only its
  own answers: accuracy@1 of the top-voted answer, graded NDCG, Kendall tau-b with the
  votes, pairwise accuracy;
* ``in_batch/*``: a question's top answer against the other top answers of a seeded batch
  (32 questions by default): accuracy@1 and MRR.

Public API (stable; the training loop and the suite rely on it)::

    evaluate_model(
        model: SentenceTransformer | None,
        records: Sequence[QARecord],
        *,
        config: EvalConfig | None = None,          # query mode, ks, batch sizes, seed, ...
        encode: Callable[[list[str]], np.ndarray] | None = None,  # instead of model
        distractors: Sequence[QARecord] = (),      # their answers join the corpus, gain 0
    ) -> EvalResult

    evaluate_beir(model, data: BeirData, *, config=None, encode=None) -> EvalResult
    read_beir(path, split="test") -> BeirData

    EvalResult.summary      dict[str, float], flat keys: "retrieval/ndcg@10",
                            "retrieval/graded_ndcg@10", "within/kendall_tau",
                            "in_batch/accuracy@1", ...
    EvalResult.counts       dict[str, int]: evaluated and skipped questions per section
    EvalResult.per_question pandas.DataFrame indexed by question id, one column per
                            summary key (NaN where a question is not part of a section)
    EvalResult.save(dir) / EvalResult.load(dir)   summary.json + per_question.parquet

``encode`` maps a list of texts to a (n, dim) float array (one row per text); it is
called once for the unique query texts and once for the unique document texts, so a
training loop can pass its own batched encoder. With ``model`` given, texts are encoded
with ``model.encode`` in large batches (sentence-transformers sorts them by length).
Evaluating the base model gives the zero-shot baseline.
"""

from __future__ import annotations

from qaembed.evaluate.beir import BeirData, evaluate_beir, read_beir
from qaembed.evaluate.config import EvalConfig
from qaembed.evaluate.qa import evaluate_model, graded_gains
from qaembed.evaluate.result import EvalResult

__all__ = ["BeirData", "EvalConfig", "EvalResult", "evaluate_beir", "evaluate_model", "graded_gains", "read_beir"]
