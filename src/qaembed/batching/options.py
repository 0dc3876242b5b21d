"""Validate a dict of options against a pydantic config, as a :class:`ConfigError`.

Shared by :func:`qaembed.batching.build_strategy` and :func:`qaembed.losses.build_loss`:
the message names the loss or strategy, the field, what was wrong, and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from qaembed.errors import ConfigError

ConfigT = TypeVar("ConfigT", bound=BaseModel)


def parse_options(kind: str, name: str, config_class: type[ConfigT], options: Mapping[str, Any] | None) -> ConfigT:
    """``config_class(**options)``, or a ConfigError like ``loss 'infonce': option 'temperature': ...``."""
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(f"{kind} {name!r}: options must be a mapping, got {type(options).__name__}")
    try:
        return config_class.model_validate(dict(options or {}))
    except ValidationError as exc:
        allowed = ", ".join(config_class.model_fields)
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error.get("loc", ())) or "(options)"
            if error.get("type") == "extra_forbidden":
                problems.append(f"unknown option {field!r} (allowed: {allowed})")
            else:
                problems.append(f"option {field!r}: {error.get('msg')} (got {error.get('input')!r})")
        raise ConfigError(f"{kind} {name!r}: " + "; ".join(problems)) from exc


def unknown_name_error(kind: str, name: str, allowed: Mapping[str, Any]) -> ConfigError:
    return ConfigError(f"unknown {kind} {name!r}; allowed: {', '.join(sorted(allowed))}")
