"""Shared test fixtures: the real-data root, a tiny model loaded once per session, a host-sync counter, the
``qaembed`` command line run in-process as the console script runs it."""

from __future__ import annotations

import contextlib
import copy
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def shared_data_dir() -> Path | None:
    """Real data: QAEMBED_DATA_DIR if set, else ../shared/data beside the repository."""
    env = os.environ.get("QAEMBED_DATA_DIR")
    candidate = Path(env) if env else REPO.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_dir()
    if root is None:
        pytest.skip("real data not found (set QAEMBED_DATA_DIR or put it at ../shared/data)")
    return root


@pytest.fixture(scope="session")
def _minilm_session():
    from qaembed.model import load_encoder

    return load_encoder("minilm", device="cpu")


@pytest.fixture()
def minilm(_minilm_session):
    """The default model (all-MiniLM-L6-v2), loaded once per session and handed out as a copy."""
    return copy.deepcopy(_minilm_session)


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


@pytest.fixture()
def host_conversions():
    """``with host_conversions(only_under=None) as calls:`` records every ``Tensor.item()``,
    ``float(tensor)`` and ``Tensor.tolist()`` made inside the block as ``(name, "file:line")``.

    Each is a device-to-host sync on a GPU (it waits for every queued kernel), so code that must
    not sync can be checked on the CPU. ``only_under``: keep only calls made from files under that
    folder (e.g. the ``qaembed`` package, leaving out the optimizer's CPU step counters).
    """
    import torch

    @contextlib.contextmanager
    def count(only_under: Path | None = None):
        calls: list[tuple[str, str]] = []

        def counting(name, real):
            def wrapper(self, *args, **kwargs):
                caller = sys._getframe(1)
                where = Path(caller.f_code.co_filename)
                if only_under is None or where.is_relative_to(only_under):
                    calls.append((name, f"{where.name}:{caller.f_lineno}"))
                return real(self, *args, **kwargs)

            return wrapper

        with pytest.MonkeyPatch.context() as patch:
            for name in ("item", "__float__", "tolist"):
                patch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
            yield calls

    return count


def _wait_stopped(pid: int) -> bool:
    """Block until the process is stopped (True) or has ended (False); SIGSTOP is asynchronous."""
    import time

    stat = Path(f"/proc/{pid}/stat")
    for _ in range(10_000):
        text = stat.read_text()
        state = text[text.rindex(")") + 2]
        if state in "tT":
            return True
        if state in "ZX":
            return False
        time.sleep(0.001)
    raise AssertionError(f"process {pid} did not stop")


@pytest.fixture()
def pause_when():
    """``pause_when(process, condition)``: run ``process`` in SIGSTOP/SIGCONT slices until ``condition()``
    holds, checked only while the process is stopped, and return with it still stopped.

    A test that must act at a point of a subprocess's work (send Ctrl-C mid-run, kill while a
    temporary folder exists) then cannot lose the race to a fast subprocess on a loaded machine:
    the subprocess never moves while the test looks. Fails if the process ends first or after
    ``timeout`` seconds.
    """
    import signal
    import time

    def pause(process, condition, timeout: float = 300, what: str = "the awaited point") -> None:
        deadline = time.monotonic() + timeout
        while True:
            process.send_signal(signal.SIGSTOP)
            if not _wait_stopped(process.pid) or process.poll() is not None:
                raise AssertionError(f"the process ended before {what}")
            if condition():
                return
            assert time.monotonic() < deadline, f"{what} not reached in {timeout} s"
            process.send_signal(signal.SIGCONT)
            time.sleep(0.01)  # the slice the process may use; it only sets the test's pace

    return pause


def write_tiny_qqp(path: Path, clusters: int = 60) -> Path:
    """A QQP-format TSV: ``clusters`` duplicate clusters of 2-3 questions, and labelled non-duplicates."""
    topics = ["python", "coffee", "qubits", "rice", "sky", "guitar", "taxes", "cats", "rust", "bread"]
    rows, qid, pair_id, firsts = [], 0, 0, []
    for c in range(clusters):
        topic = topics[c % len(topics)]
        size = 2 + c % 2
        ids = list(range(qid + 1, qid + size + 1))
        qid += size
        texts = [f"how do I {verb} {topic} number {c}?" for verb in ("learn", "master", "study")[:size]]
        firsts.append((ids[0], texts[0]))
        for k in range(1, size):
            pair_id += 1
            rows.append((pair_id, ids[0], ids[k], texts[0], texts[k], 1))
    for c in range(0, clusters - 1, 2):  # cluster 2k's first question vs cluster 2k+1's: a non-duplicate
        (a, ta), (b, tb) = firsts[c], firsts[c + 1]
        pair_id += 1
        rows.append((pair_id, a, b, ta, tb, 0))
    lines = ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"] + ["\t".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_pair_dataset(tmp_path_factory) -> Path:
    """A prepared pair dataset (``prepare_pairs``, all-pairs split 0.6/0.2/0.2) from :func:`write_tiny_qqp`."""
    from qaembed.data.pairs import prepare_pairs

    root = tmp_path_factory.mktemp("tiny_pairs")
    tsv = write_tiny_qqp(root / "tiny_qqp.tsv")
    out = root / "prepared"
    prepare_pairs([tsv], out, "pairs-qqp", seed=1, split=(0.6, 0.2, 0.2), progress=False)
    return out


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture()
def qaembed_cli(monkeypatch, capsys) -> Callable[..., CliResult]:
    """``qaembed_cli("data", "prepare", ...)``: exit code (2 for a user error), stdout, stderr.

    Goes through :func:`qaembed.cli.main`, so a :class:`~qaembed.errors.QaembedError` becomes
    ``error: ...`` on stderr and exit code 2, and any other exception (a traceback) propagates.
    """
    from qaembed.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["qaembed", *map(str, args)])
        with pytest.raises(SystemExit) as info:
            main()
        out = capsys.readouterr()
        code = info.value.code
        return CliResult(0 if code is None else int(code), out.out, out.err)

    return run
