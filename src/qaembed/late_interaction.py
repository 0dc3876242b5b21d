"""Late interaction on the encoder side: token embeddings for MaxSim, and the saved layout.

A ``SentenceTransformer`` forward already returns ``token_embeddings`` (the transformer's
last hidden states, ``(n, L, hidden)``) and ``attention_mask`` (``(n, L)``) next to the pooled
``sentence_embedding``. For MaxSim (``qaembed.losses.scores.maxsim_scores``):

1. an optional linear projection of every token, ``hidden -> projection_dim`` without bias
   (ColBERT's and PyLate's ``Dense``, e.g. 384 -> 128), is a standard sentence-transformers
   ``Dense`` module that reads and writes ``token_embeddings``; it sits *after* the pooling,
   so the pooled sentence embedding (and a pooled projection head) is unchanged;
2. :func:`token_embeddings` L2-normalizes every token of that output (``F.normalize``,
   eps 1e-12, as PyLate's ``encode(normalize_embeddings=True)``) and returns the mask;
3. query tokens beyond ``query_length`` take no part in MaxSim (:func:`truncate_queries`):
   queries are tokenized with the documents in one call (one forward pass per batch), so
   tokens after the limit are still encoded and still give context to the earlier ones, but
   their mask is 0. Documents are truncated by the tokenizer at ``model.max_seq_length``.

Not implemented yet (documented options for later, see ``docs/late-interaction.md``):
ColBERT's query/document marker tokens (``[Q]``/``[D]`` inserted after ``[CLS]``), query
augmentation (padding queries to ``query_length`` with ``[MASK]`` tokens that take part in
MaxSim) and the punctuation skiplist of PyLate's documents. The saved config says so
(``query_prefix: ""``, ``do_query_expansion: false``, ``skiplist_words: []``), so PyLate
encodes exactly what qaembed trained on.

Saving (:func:`save_model`): a ``maxsim`` model is written in PyLate's ``models.ColBERT``
layout: the transformer at the folder root, the projection in ``1_Dense/``, PyLate's keys in
``config_sentence_transformers.json``. A ``combined`` model keeps its pooling (and pooled head)
before the token ``Dense``, so ``SentenceTransformer(path).encode`` still gives the pooled
embedding; ``encode(..., output_value="token_embeddings")`` gives the projected tokens of both.

>>> import torch
>>> out = {"token_embeddings": torch.tensor([[[3.0, 4.0], [1.0, 0.0]]]), "attention_mask": torch.tensor([[1, 0]])}
>>> tokens, mask = token_embeddings(out)
>>> tokens.tolist(), mask.tolist()
([[[0.6000000238418579, 0.800000011920929], [1.0, 0.0]]], [[True, False]])
>>> truncate_queries(torch.ones(2, 4, dtype=torch.bool), 3).tolist()
[[True, True, True, False], [True, True, True, False]]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from qaembed.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

TOKEN_KEY = "token_embeddings"
# written into config_sentence_transformers.json; PyLate's ColBERT reads these keys
PYLATE_DEFAULTS: dict[str, Any] = {
    "query_prefix": "",
    "document_prefix": "",
    "attend_to_expansion_tokens": False,
    "skiplist_words": [],
    "do_query_expansion": False,
}


def token_projection(model: SentenceTransformer):
    """The model's token projection (a ``Dense`` on ``token_embeddings``), or None."""
    from sentence_transformers.sentence_transformer.modules import Dense

    found = [m for m in model if isinstance(m, Dense) and m.module_input_name == TOKEN_KEY]
    if len(found) > 1:
        raise ConfigError(f"model has {len(found)} token projections (Dense on token_embeddings); expected at most one")
    return found[0] if found else None


def token_dimension(model: SentenceTransformer) -> int:
    """Size of the token embeddings the model outputs (after its token projection, if any)."""
    projection = token_projection(model)
    if projection is not None:
        return projection.out_features
    return model[0].get_embedding_dimension()


def add_token_projection(model: SentenceTransformer, projection_dim: int | None, *, option: str) -> SentenceTransformer:
    """Append ``Dense(hidden -> projection_dim, bias=False)`` on token embeddings (seeded by the caller's RNG).

    A model that already has a token projection (a saved MaxSim model used as base, a resumed
    run) keeps it if ``projection_dim`` is None or equal; another size is a :class:`ConfigError`
    naming ``option``. ``projection_dim=None`` on a model without one: tokens keep the hidden size.
    """
    from sentence_transformers.sentence_transformer.modules import Dense
    from torch import nn

    existing = token_projection(model)
    if existing is not None:
        if projection_dim is not None and existing.out_features != projection_dim:
            raise ConfigError(
                f"{option}: {projection_dim} does not match the model's token projection "
                f"({existing.in_features} -> {existing.out_features}); set {option}: {existing.out_features} "
                "(or null) to keep it, or start from a model without one"
            )
        return model
    if projection_dim is None:
        return model
    hidden = model[0].get_embedding_dimension()
    model.append(Dense(hidden, projection_dim, bias=False, activation_function=nn.Identity(),
                       module_input_name=TOKEN_KEY))
    return model


def token_embeddings(output: dict[str, torch.Tensor], *, option: str = "scorer") -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, L, dim)`` L2-normalized token embeddings and the ``(n, L)`` bool mask from a forward output."""
    if TOKEN_KEY not in output or "attention_mask" not in output:
        raise ConfigError(
            f"{option}: MaxSim needs token embeddings, but the model's forward output has only "
            f"{', '.join(sorted(output))}; use a transformer-based model (its first module must output "
            "token_embeddings), or scorer: cosine"
        )
    tokens = output[TOKEN_KEY]
    if tokens.dim() != 3:
        raise ConfigError(f"{option}: token_embeddings must be (texts, tokens, dim), got {tuple(tokens.shape)}")
    return F.normalize(tokens, p=2, dim=-1), output["attention_mask"].bool()


def truncate_queries(mask: torch.Tensor, query_length: int | None) -> torch.Tensor:
    """The query mask with every token at position ``>= query_length`` switched off (None: unchanged)."""
    if query_length is None or mask.shape[1] <= query_length:
        return mask
    kept = mask.clone()
    kept[:, query_length:] = False
    return kept


PYLATE_DENSE_TYPE = "pylate.models.Dense.Dense"


def save_model(model: SentenceTransformer, path: str | Path, scorer: str, *, query_length: int | None = None) -> None:
    """Save ``model`` for ``scorer`` (``cosine`` | ``maxsim`` | ``combined``); see the module docstring.

    ``cosine``: ``model.save(path)`` as before. ``maxsim``: PyLate 1.6's ``models.ColBERT`` layout:
    the transformer at the root, the token projection in ``1_Dense/`` as ``pylate.models.Dense.Dense``
    (config ``in_features``, ``out_features``, ``bias``, ``activation_function``, ``use_residual``;
    weight ``linear.weight``), module types and the transformer config in the form
    sentence-transformers 5 reads, PyLate's keys in ``config_sentence_transformers.json``; read it
    back with :func:`load_model` (PyLate need not be installed). ``combined``: every module, in
    sentence-transformers 6's own format (pooled head first, token ``Dense`` last), plus PyLate's keys.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Transformer

    path = Path(path)
    if scorer == "cosine":
        model.save(str(path))
        return
    if scorer == "maxsim":
        if not isinstance(model[0], Transformer):
            raise ConfigError(f"scorer: maxsim: the model's first module is {type(model[0]).__name__}, not a Transformer")
        to_save = SentenceTransformer(modules=[model[0]], device=str(model.device), trust_remote_code=False)
        to_save.max_seq_length = model.max_seq_length
        # no model card: sentence-transformers' card runs a pooled encode, which a MaxSim-only model has not
        to_save.save(str(path), create_model_card=False)
        projection = token_projection(model)
        if projection is not None:
            _save_pylate_dense(projection, path)
        _portable_module_types(path / "modules.json")
        _portable_transformer_config(path / "sentence_bert_config.json", model)
    else:
        model.save(str(path))
    config_path = path / "config_sentence_transformers.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    length = model.max_seq_length
    config.update({**PYLATE_DEFAULTS, "query_length": min(query_length or length, length), "document_length": length})
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def _save_pylate_dense(projection: Any, path: Path) -> None:
    from safetensors.torch import save_file

    if projection.bias or type(projection.activation_function).__name__ != "Identity":
        raise ConfigError("scorer.projection_dim: PyLate's layout needs a linear token projection without bias")
    folder = path / "1_Dense"
    folder.mkdir(parents=True, exist_ok=True)
    config = {"in_features": projection.in_features, "out_features": projection.out_features, "bias": False,
              "activation_function": "torch.nn.modules.linear.Identity", "use_residual": False}
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    save_file({"linear.weight": projection.linear.weight.detach().cpu().contiguous()}, str(folder / "model.safetensors"))
    modules_json = path / "modules.json"
    modules = json.loads(modules_json.read_text(encoding="utf-8"))
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": "1_Dense", "type": PYLATE_DENSE_TYPE})
    modules_json.write_text(json.dumps(modules, indent=2), encoding="utf-8")


def is_maxsim_only(path: str | Path) -> bool:
    """Whether ``path`` is a saved ``maxsim`` model (PyLate's layout: token embeddings, no pooled embedding)."""
    modules_json = Path(path) / "modules.json"
    try:
        modules = json.loads(modules_json.read_text(encoding="utf-8")) if modules_json.is_file() else []
    except (OSError, ValueError):
        return False
    return isinstance(modules, list) and any(isinstance(m, dict) and m.get("type") == PYLATE_DENSE_TYPE for m in modules)


def load_model(path: str | Path, device: str | None = None) -> SentenceTransformer:
    """Load a saved qaembed model, including a ``maxsim`` one in PyLate's layout (without PyLate).

    A folder whose ``modules.json`` names ``pylate.models.Dense.Dense`` is read as the transformer
    plus a sentence-transformers ``Dense`` on ``token_embeddings`` with the saved weight; any other
    folder is ``SentenceTransformer(path)``.
    """
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Transformer
    from torch import nn

    path = Path(path)
    modules_json = path / "modules.json"
    modules = json.loads(modules_json.read_text(encoding="utf-8")) if modules_json.is_file() else []
    if not any(m.get("type") == PYLATE_DENSE_TYPE for m in modules):
        return SentenceTransformer(str(path), device=device, trust_remote_code=False)
    loaded = []
    for entry in modules:
        folder = path / entry["path"]
        if entry["type"] == PYLATE_DENSE_TYPE:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            if config.get("use_residual") or config.get("activation_function") != "torch.nn.modules.linear.Identity":
                raise ConfigError(f"{folder}: only linear PyLate projections (Identity, no residual) are supported")
            dense = Dense(config["in_features"], config["out_features"], bias=bool(config.get("bias", False)),
                          activation_function=nn.Identity(), module_input_name=TOKEN_KEY)
            dense.load_state_dict(load_file(str(folder / "model.safetensors")))
            loaded.append(dense)
        elif entry["type"].rsplit(".", 1)[-1] == "Transformer":
            loaded.append(Transformer.load(str(folder)))
        else:
            raise ConfigError(f"{path}: unexpected module {entry['type']} in a PyLate-layout model")
    model = SentenceTransformer(modules=loaded, device=device, trust_remote_code=False)
    return model


# sentence-transformers 6 writes its new module paths (``sentence_transformers.base.modules...``), which
# sentence-transformers 5 (and so PyLate 1.6) cannot import; the 5.x names still load in 6 (deprecated aliases)
_PORTABLE_TYPES = {"Transformer", "Dense", "Pooling", "Normalize"}


def _portable_module_types(modules_json: Path) -> None:
    """Rewrite ``modules.json`` types to ``sentence_transformers.models.<Class>``, loadable by 5.x and 6.x."""
    modules = json.loads(modules_json.read_text(encoding="utf-8"))
    for module in modules:
        name = module["type"].rsplit(".", 1)[-1]
        if module["type"].startswith("sentence_transformers.") and name in _PORTABLE_TYPES:
            module["type"] = f"sentence_transformers.models.{name}"
    modules_json.write_text(json.dumps(modules, indent=2), encoding="utf-8")


def _portable_transformer_config(config_path: Path, model: SentenceTransformer) -> None:
    """Write the transformer's config in the 5.x form (``max_seq_length``, ``do_lower_case``), which 6.x also reads.

    Only for a plain text feature-extraction transformer (the 6.x defaults); anything else is left as saved.
    """
    if not config_path.is_file():
        return
    config = json.loads(config_path.read_text(encoding="utf-8"))
    text = config.get("modality_config", {}).get("text", {})
    plain = (config.get("transformer_task", "feature-extraction") == "feature-extraction"
             and set(config.get("modality_config", {"text": {}})) == {"text"}
             and text.get("method", "forward") == "forward"
             and text.get("method_output_name", "last_hidden_state") == "last_hidden_state"
             and config.get("module_output_name", TOKEN_KEY) == TOKEN_KEY)
    if plain:
        legacy = {"max_seq_length": model.max_seq_length, "do_lower_case": bool(getattr(model[0], "do_lower_case", False))}
        config_path.write_text(json.dumps(legacy, indent=2), encoding="utf-8")


__all__ = ["TOKEN_KEY", "add_token_projection", "load_model", "save_model", "token_dimension", "token_embeddings",
           "token_projection", "truncate_queries"]
