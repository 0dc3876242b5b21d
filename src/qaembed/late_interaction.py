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

ColBERT tokenization (optional, :class:`ColbertTokens`, ``scorer.markers`` / ``scorer.query_expansion``),
as PyLate's ``ColBERT.preprocess`` does it: marker tokens ``"[Q] "`` / ``"[D] "`` added to the
vocabulary (embeddings resized) and inserted right after ``[CLS]``; queries truncated at
``query_length`` (marker included) and, with query expansion, padded to exactly ``query_length``
with ``[MASK]`` tokens that other tokens do not attend to (PyLate's ``attend_to_expansion_tokens:
false``) but that take part in MaxSim (the ``maxsim_mask`` feature). PyLate's punctuation skiplist
for documents is not used (``skiplist_words: []`` is saved, so PyLate scores every token too).
The saved config carries the prefixes and ``do_query_expansion``, so PyLate encodes what qaembed
trained on.

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from qaembed.errors import ConfigError, DataError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

TOKEN_KEY = "token_embeddings"
MAXSIM_MASK_KEY = "maxsim_mask"  # which tokens take part in MaxSim when that is not the attention mask
QUERY_MARKER, DOCUMENT_MARKER = "[Q] ", "[D] "  # PyLate's default marker tokens
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
    mask = output[MAXSIM_MASK_KEY] if MAXSIM_MASK_KEY in output else output["attention_mask"]
    return F.normalize(tokens, p=2, dim=-1), mask.bool()


@dataclass(frozen=True)
class ColbertTokens:
    """ColBERT / PyLate tokenization settings (all off: the plain shared tokenization)."""

    query_prefix: str = ""  # a marker token inserted after [CLS] of every query ("" = none)
    document_prefix: str = ""
    query_expansion: bool = False  # pad queries to query_length with [MASK] (MaxSim over all of them)
    query_length: int | None = None  # queries truncated here (marker included); required by query_expansion

    @property
    def active(self) -> bool:
        return bool(self.query_prefix or self.document_prefix or self.query_expansion)

    @classmethod
    def of_scorer(cls, scorer: Any) -> ColbertTokens:
        """The settings of a training ``scorer`` section (``markers``, ``query_expansion``, ``query_length``)."""
        markers = bool(getattr(scorer, "markers", False))
        return cls(QUERY_MARKER if markers else "", DOCUMENT_MARKER if markers else "",
                   bool(getattr(scorer, "query_expansion", False)), getattr(scorer, "query_length", None))


def add_marker_tokens(model: SentenceTransformer, colbert: ColbertTokens) -> None:
    """Add the marker tokens to the tokenizer and resize the input embeddings (new rows from the caller's RNG)."""
    markers = [p for p in (colbert.query_prefix, colbert.document_prefix) if p]
    if not markers:
        return
    tokenizer = model.tokenizer
    if tokenizer.add_tokens([m for m in markers if m not in tokenizer.get_vocab()]):
        model[0].auto_model.resize_token_embeddings(len(tokenizer))


def _marker_id(tokenizer: Any, marker: str, option: str) -> int | None:
    if not marker:
        return None
    if marker not in tokenizer.get_vocab():
        raise ConfigError(f"{option}: the model's tokenizer has no marker token {marker!r}; train with "
                          "scorer.markers: true (which adds it), or evaluate a model saved that way")
    return int(tokenizer.convert_tokens_to_ids(marker))


def _insert_after_cls(tensor: torch.Tensor, value: int) -> torch.Tensor:
    column = torch.full((tensor.shape[0], 1), value, dtype=tensor.dtype)
    return torch.cat([tensor[:, :1], column, tensor[:, 1:]], dim=1)


def colbert_tokenize(tokenizer: Any, texts: list[str], *, is_query: bool, max_length: int,
                     colbert: ColbertTokens, option: str = "scorer") -> dict[str, torch.Tensor]:
    """Features of queries or documents as PyLate's ``ColBERT.preprocess`` makes them, plus ``maxsim_mask``.

    Length: queries ``colbert.query_length`` (or ``max_length``), documents ``max_length``, the marker
    included. Query expansion pads queries to that length with ``[MASK]`` (attention 0, MaxSim 1).
    """
    length = (colbert.query_length or max_length) if is_query else max_length
    marker = _marker_id(tokenizer, colbert.query_prefix if is_query else colbert.document_prefix, option)
    expand = is_query and colbert.query_expansion
    if expand and tokenizer.mask_token_id is None:
        raise ConfigError(f"{option}: query_expansion pads with [MASK], but the tokenizer has no mask token")
    inner = length - 1 if marker is not None else length
    features = dict(tokenizer(list(texts), padding="max_length" if expand else "longest", truncation=True,
                              max_length=inner, return_tensors="pt"))
    if expand:
        features["input_ids"] = torch.where(features["attention_mask"].bool(), features["input_ids"],
                                            torch.full_like(features["input_ids"], tokenizer.mask_token_id))
    if marker is not None:
        features["input_ids"] = _insert_after_cls(features["input_ids"], marker)
        features["attention_mask"] = _insert_after_cls(features["attention_mask"], 1)
        if "token_type_ids" in features:
            features["token_type_ids"] = _insert_after_cls(features["token_type_ids"], 0)
    features[MAXSIM_MASK_KEY] = (torch.ones_like(features["attention_mask"]) if expand
                                 else features["attention_mask"].clone())
    return features


def colbert_features(tokenizer: Any, queries: list[str], docs: list[str], *, max_length: int,
                     colbert: ColbertTokens, option: str = "scorer") -> dict[str, torch.Tensor]:
    """Queries then documents (:func:`colbert_tokenize`) in one feature dict, right-padded to one width."""
    parts = [colbert_tokenize(tokenizer, texts, is_query=is_query, max_length=max_length, colbert=colbert,
                              option=option) for texts, is_query in ((queries, True), (docs, False)) if texts]
    width = max(part["input_ids"].shape[1] for part in parts)
    pad_id = tokenizer.pad_token_id or 0
    features = {}
    for key in parts[0]:
        fill = pad_id if key == "input_ids" else 0
        features[key] = torch.cat([F.pad(part[key], (0, width - part[key].shape[1]), value=fill) for part in parts])
    return features


class ColbertCollator:
    """``collate(batch) -> features`` for ColBERT tokenization (the training loop's Collator otherwise)."""

    def __init__(self, model: SentenceTransformer, max_length: int, colbert: ColbertTokens) -> None:
        self.tokenizer, self.max_length, self.colbert = model.tokenizer, int(max_length), colbert
        for side in (colbert.query_prefix, colbert.document_prefix):
            _marker_id(self.tokenizer, side, "scorer.markers")

    def __call__(self, batch: Any) -> dict[str, torch.Tensor]:
        return colbert_features(self.tokenizer, batch.queries, batch.docs, max_length=self.max_length,
                                colbert=self.colbert)


def truncate_queries(mask: torch.Tensor, query_length: int | None) -> torch.Tensor:
    """The query mask with every token at position ``>= query_length`` switched off (None: unchanged)."""
    if query_length is None or mask.shape[1] <= query_length:
        return mask
    kept = mask.clone()
    kept[:, query_length:] = False
    return kept


PYLATE_DENSE_TYPE = "pylate.models.Dense.Dense"


def save_model(model: SentenceTransformer, path: str | Path, scorer: str, *, query_length: int | None = None,
               colbert: ColbertTokens | None = None) -> None:
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
    colbert = colbert or ColbertTokens()
    config.update({**PYLATE_DEFAULTS, "query_length": min(query_length or length, length), "document_length": length,
                   "query_prefix": colbert.query_prefix, "document_prefix": colbert.document_prefix,
                   "do_query_expansion": colbert.query_expansion})
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


def saved_colbert_tokens(path: str | Path) -> ColbertTokens:
    """The ColBERT tokenization a saved model declares (PyLate's keys in ``config_sentence_transformers.json``).

    A folder without those keys (any plain sentence-transformers model) gives the defaults (all off).
    """
    config_path = Path(path) / "config_sentence_transformers.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    except (OSError, ValueError):
        config = {}
    if "do_query_expansion" not in config:  # not a PyLate-keyed folder
        return ColbertTokens()
    length = config.get("query_length")
    return ColbertTokens(str(config.get("query_prefix") or ""), str(config.get("document_prefix") or ""),
                         bool(config.get("do_query_expansion")), int(length) if isinstance(length, int) else None)


def is_maxsim_only(path: str | Path) -> bool:
    """Whether ``path`` is a saved ``maxsim`` model (PyLate's layout: token embeddings, no pooled embedding)."""
    modules_json = Path(path) / "modules.json"
    try:
        modules = json.loads(modules_json.read_text(encoding="utf-8")) if modules_json.is_file() else []
    except (OSError, ValueError):
        return False
    return _names_pylate_dense(modules)


def _names_pylate_dense(modules: Any) -> bool:
    return isinstance(modules, list) and any(isinstance(m, dict) and m.get("type") == PYLATE_DENSE_TYPE for m in modules)


def _read_model_json(file: Path) -> Any:
    """A JSON file of a saved model; missing, unreadable or invalid is a :class:`DataError` naming it."""
    from qaembed.jsonfiles import read_json

    if not file.is_file():
        raise DataError("missing", path=str(file))
    try:
        return read_json(file)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"unreadable ({type(exc).__name__}: {exc})", path=str(file)) from exc


def _module_folder(root: Path, value: Any, modules_json: Path, field: str) -> Path:
    """The folder a ``modules.json`` entry names, refused unless it is a folder inside ``root``."""
    if not isinstance(value, str):
        raise DataError(f"expected a folder path (a string), got {value!r}", path=str(modules_json), field=field)
    folder = root / value
    if not folder.resolve().is_relative_to(root.resolve()):  # "..", an absolute path, or a link leading out
        raise DataError(f"{value!r} resolves outside the model folder", path=str(modules_json), field=field)
    if not folder.is_dir():
        raise DataError(f"{value!r}: no such folder in the model", path=str(modules_json), field=field)
    return folder


def _pylate_dense(folder: Path) -> Any:
    """A PyLate ``Dense`` module folder as a sentence-transformers ``Dense`` on token embeddings."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from sentence_transformers.sentence_transformer.modules import Dense
    from torch import nn

    config_path = folder / "config.json"
    config = _read_model_json(config_path)
    if not isinstance(config, dict):
        raise DataError(f"expected a JSON object, got {type(config).__name__}", path=str(config_path))
    for key in ("in_features", "out_features"):
        if key not in config:
            raise DataError("missing", path=str(config_path), field=key)
        if not isinstance(config[key], int) or isinstance(config[key], bool) or config[key] < 1:
            raise DataError(f"expected a positive integer, got {config[key]!r}", path=str(config_path), field=key)
    if config.get("use_residual") or config.get("activation_function") != "torch.nn.modules.linear.Identity":
        raise ConfigError(f"{folder}: only linear PyLate projections (Identity, no residual) are supported")
    dense = Dense(config["in_features"], config["out_features"], bias=bool(config.get("bias", False)),
                  activation_function=nn.Identity(), module_input_name=TOKEN_KEY)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise DataError("missing (the projection's weights)", path=str(weights))
    try:
        state = load_file(str(weights))
    except (OSError, SafetensorError) as exc:
        raise DataError(f"unreadable (corrupt or truncated: {exc})", path=str(weights)) from exc
    try:
        dense.load_state_dict(state)
    except RuntimeError as exc:
        raise DataError(f"does not fit {config_path.name} ({' '.join(str(exc).split())[:300]})",
                        path=str(weights)) from exc
    return dense


def load_model(path: str | Path, device: str | None = None) -> SentenceTransformer:
    """Load a saved qaembed model, including a ``maxsim`` one in PyLate's layout (without PyLate).

    A folder whose ``modules.json`` names ``pylate.models.Dense.Dense`` is read as the transformer
    plus a sentence-transformers ``Dense`` on ``token_embeddings`` with the saved weight; any other
    folder is ``SentenceTransformer(path)``. A damaged PyLate-layout folder (an entry without
    ``path`` or ``type``, a module path outside the folder, a projection config without its sizes,
    missing or unreadable weights) is a :class:`DataError` naming the file and field.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Transformer

    path = Path(path)
    modules_json = path / "modules.json"
    modules = _read_model_json(modules_json) if modules_json.is_file() else []
    if not _names_pylate_dense(modules):
        return SentenceTransformer(str(path), device=device, trust_remote_code=False)
    loaded = []
    for index, entry in enumerate(modules):
        if not isinstance(entry, dict):
            raise DataError(f"expected a module entry (a JSON object), got {entry!r}", path=str(modules_json),
                            field=str(index))
        for key in ("type", "path"):
            if key not in entry:
                raise DataError("missing", path=str(modules_json), field=f"{index}.{key}")
        kind = entry["type"]
        folder = _module_folder(path, entry["path"], modules_json, f"{index}.path")
        if kind == PYLATE_DENSE_TYPE:
            loaded.append(_pylate_dense(folder))
        elif isinstance(kind, str) and kind.rsplit(".", 1)[-1] == "Transformer":
            loaded.append(Transformer.load(str(folder)))
        else:
            raise DataError(f"unexpected module {kind!r} in a PyLate-layout model (Transformer and "
                            f"{PYLATE_DENSE_TYPE} are read)", path=str(modules_json), field=f"{index}.type")
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


__all__ = ["TOKEN_KEY", "ColbertCollator", "ColbertTokens", "add_marker_tokens", "add_token_projection",
           "colbert_features", "colbert_tokenize", "saved_colbert_tokens", "load_model", "save_model", "token_dimension", "token_embeddings",
           "token_projection", "truncate_queries"]
