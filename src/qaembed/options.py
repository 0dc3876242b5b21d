"""Typed options of the named components (losses, batching strategies, mining), checked in one place.

* :func:`parse_options`: a dict of options against a pydantic config, as a :class:`ConfigError`
  that names the component, the option, what was wrong and what is allowed;
* :func:`named_union`: the pydantic type of a config section ``{name: ..., options: {...}}`` whose
  options are the named component's own typed config: a tagged union over a registry, so a
  training config is typed down to every option and a bad one fails when the file is read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, create_model, field_serializer

from qaembed.errors import ConfigError, validation_problems

ConfigT = TypeVar("ConfigT", bound=BaseModel)

SEED_MAX = 2**32 - 1
# A seed as every config takes it: what numpy's and torch's generators accept (set_seed refuses the rest).
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]


def parse_options(kind: str, name: str, config_class: type[ConfigT], options: Mapping[str, Any] | BaseModel | None) -> ConfigT:
    """``config_class(**options)``, or a ConfigError like ``loss 'infonce': option 'temperature': ...``.

    An instance of ``config_class`` is returned as it is (already validated).
    """
    if isinstance(options, config_class):
        return options
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(f"{kind} {name!r}: options must be a mapping, got {type(options).__name__}")
    data = dict(options or {})
    try:
        return config_class.model_validate(data)
    except ValidationError as exc:
        allowed = ", ".join(config_class.model_fields)
        problems = []
        for problem in validation_problems(exc, data):
            field = problem.field
            if not field:  # a rule over several options
                problems.append(problem.message)
            elif problem.kind == "extra_forbidden" and "." not in field:
                problems.append(f"unknown option {field!r} (allowed: {allowed})")
            else:
                problems.append(f"option {field!r}: {problem.message}")
        raise ConfigError(f"{kind} {name!r}: " + "; ".join(problems)) from exc


def unknown_name_error(kind: str, name: str, allowed: Mapping[str, Any]) -> ConfigError:
    return ConfigError(f"unknown {kind} {name!r}; allowed: {', '.join(sorted(allowed))}")


class NamedSection(BaseModel):
    """Base of a ``{name, options}`` section; options are written back as they were given (defaults omitted)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @field_serializer("options", check_fields=False)
    def _given_options(self, options: BaseModel, info: Any) -> dict[str, Any]:
        return options.model_dump(mode=info.mode, exclude_unset=True)


def named_union(registry: Mapping[str, Any], *, key: str = "name", default: str | None = None,
                base: type[BaseModel] = NamedSection, suffix: str = "Section") -> Any:
    """The tagged union of ``{key: NAME, options: <NAME's config_class>}`` over ``registry`` (name -> class).

    ``default`` is the name assumed when a mapping has no ``key`` (``loss: {options: ...}``).
    Each member is a model ``<Class><suffix>`` with ``key`` fixed to its name and ``options``
    defaulting to the config class's defaults; ``base`` adds shared fields (e.g. a weight).
    """
    members = []
    for name, cls in registry.items():
        model = create_model(
            f"{cls.__name__}{suffix}",
            __base__=base,
            **{key: (Literal[name], name), "options": (cls.config_class, Field(default_factory=cls.config_class))},
        )
        members.append(Annotated[model, Tag(name)])
    return Annotated[Union[tuple(members)], Discriminator(_tag_of(key, default))]  # noqa: UP007 (a runtime tuple)


def _tag_of(key: str, default: str | None) -> Callable[[Any], Any]:
    def tag(value: Any) -> Any:
        if isinstance(value, Mapping):
            return value.get(key, default)
        return getattr(value, key, None)

    tag.__name__ = key  # pydantic names the discriminator after it in errors: "unknown name ... (key())"
    return tag
