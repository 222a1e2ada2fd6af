"""One registry idiom for every pluggable kind: losses, metrics, datasets, backbones, optimisers,
schedules and calibrators.

A builder is registered under a snake_case name with ``@REGISTRY.register("name")``. Its
keyword-only parameters (typed, with defaults) are its hyper-parameters: they become the config
section's schema (``schema(name)``), so a misspelled or mistyped key fails before anything runs.
Positional parameters are what the caller supplies at build time (``num_classes``, model
parameters, ...). Modelled on torchvision's ``models/_api.py`` (duplicate name = error, unknown
name lists the known ones).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from calibexp.errors import CalibexpError


def closest(word: str, choices: typing.Iterable[str]) -> str:
    """' (did you mean X?)' for the nearest choice, or '' when nothing is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


class Registry:
    """Name -> builder, for one kind of component."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[..., Any]] = {}
        self._info: dict[str, dict[str, Any]] = {}

    def register(
        self, name: str, **info: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a builder under ``name``; ``info`` is kept for ``info(name)`` (e.g. the
        metric prefix a calibrator logs under)."""

        def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._builders:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            if name != name.lower() or not name.replace("_", "").isalnum():
                raise ValueError(f"{self.kind} name '{name}' must be snake_case")
            self._builders[name] = builder
            self._info[name] = info
            return builder

        return decorator

    def names(self) -> list[str]:
        return sorted(self._builders)

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._builders:
            raise CalibexpError(
                f"unknown {self.kind} '{name}'{closest(name, self._builders)}; "
                f"known: {', '.join(self.names())}"
            )
        return self._builders[name]

    def info(self, name: str) -> dict[str, Any]:
        self.get(name)  # the unknown-name error
        return self._info[name]

    def build(self, name: str, *args: Any, **params: Any) -> Any:
        return self.get(name)(*args, **params)

    def schema(self, name: str) -> type:
        """A dataclass with ``name`` plus the builder's keyword-only hyper-parameters."""
        return _schema_of(self.kind, name, self.get(name))


@functools.cache
def _schema_of(kind: str, name: str, builder: Callable[..., Any]) -> type:
    hints = typing.get_type_hints(builder)
    fields: list[tuple[str, Any, Any]] = [("name", str, dataclasses.field(default=name))]
    for param in inspect.signature(builder).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if param.default is inspect.Parameter.empty:
            raise TypeError(f"{kind} '{name}': hyper-parameter '{param.name}' needs a default")
        default = param.default
        field = (
            dataclasses.field(default_factory=lambda d=default: list(d))
            if isinstance(default, (list, tuple))
            else dataclasses.field(default=default)
        )
        fields.append((param.name, hints[param.name], field))
    cls_name = "".join(part.title() for part in f"{kind}_{name}".split("_")) + "Config"
    return dataclasses.make_dataclass(cls_name, fields, frozen=True)


def hyperparameters(section: Any) -> dict[str, Any]:
    """The builder keyword arguments held by a component config section (all fields but name)."""
    return {
        f.name: getattr(section, f.name) for f in dataclasses.fields(section) if f.name != "name"
    }
