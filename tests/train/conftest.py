"""Fixtures for the training tests: a tiny BERT SentenceTransformer and a tiny prepared dataset.

The tiny model (2 layers, hidden size 32) uses all-MiniLM-L6-v2's tokenizer, so it reads
real text, and trains in well under a second per step on CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qaembed.data.dataset import write_jsonl_records
from qaembed.records import Answer, QARecord

_TOPICS = ["beer", "coffee", "qubits", "teaching", "models", "hops", "espresso", "gates", "algebra", "prompts"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT saved as a SentenceTransformer folder (dropout 0)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from qaembed.model import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    hf_dir = tmp_path_factory.mktemp("tiny_hf")
    BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, Pooling(32, pooling_mode="mean"), Normalize()], device="cpu")
    out = tmp_path_factory.mktemp("tiny_st")
    model.save(str(out))
    return out


def _record(index: int, n_answers: int) -> QARecord:
    topic = _TOPICS[index % len(_TOPICS)]
    answers = [
        Answer(id=f"t:{index}-{k}", text=f"answer {k} about {topic} number {index} " + "detail " * (k + index % 4),
               score=float(n_answers - k + (index % 3)))
        for k in range(n_answers)
    ]
    return QARecord(id=f"t:{index}", title=f"question {index} on {topic}?", body=f"I wonder about {topic} {index}.",
                    answers=answers)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A prepared dataset folder: 48 train, 12 dev, 12 test questions with 1-4 graded answers."""
    root = tmp_path_factory.mktemp("tiny_dataset")
    records = [_record(i, 1 + i % 4) for i in range(72)]
    write_jsonl_records(root / "train.jsonl", records[:48])
    write_jsonl_records(root / "dev.jsonl", records[48:60])
    write_jsonl_records(root / "test.jsonl", records[60:])
    return root


@pytest.fixture()
def tiny_config(tiny_model_dir, tiny_dataset):
    """A small valid training config (raw dict) on the tiny model and dataset."""
    return {
        "model": {"base": str(tiny_model_dir), "max_seq_length": 32},
        "data": {"dataset": str(tiny_dataset)},
        "strategy": {"name": "hard_negative"},
        "loss": {"name": "infonce", "options": {"temperature": 0.1}},
        "training": {"batch_size": 8, "max_steps": 6, "lr": 1e-3, "log_every": 1, "save_every": 2,
                     "eval_every": 3, "seed": 3},
    }
