"""The one registry idiom: duplicate names, unknown names, schemas from builder signatures."""

from __future__ import annotations

import dataclasses

import pytest

from calibexp.errors import CalibexpError
from calibexp.registry import Registry, hyperparameters


def test_duplicate_name_is_an_error():
    reg = Registry("widget")
    reg.register("a")(lambda: 1)
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        reg.register("a")(lambda: 2)


def test_names_must_be_snake_case():
    with pytest.raises(ValueError, match="snake_case"):
        Registry("widget").register("BadName")(lambda: 1)


def test_unknown_name_lists_the_known_ones():
    reg = Registry("widget")
    for name in ("focal", "brier", "ce"):
        reg.register(name)(lambda name=name: name)
    with pytest.raises(CalibexpError) as err:
        reg.get("focl")
    assert (
        str(err.value) == "unknown widget 'focl' (did you mean 'focal'?); known: brier, ce, focal"
    )


def test_schema_is_the_keyword_only_hyperparameters():
    reg = Registry("widget")

    @reg.register("w")
    def build(num_classes: int, *, gamma: float = 2.0, steps: list[int] = [1, 2]) -> tuple:  # noqa: B006
        return num_classes, gamma, steps

    schema = reg.schema("w")
    fields = {f.name: f.type for f in dataclasses.fields(schema)}
    assert fields == {"name": str, "gamma": float, "steps": list[int]}
    section = schema(gamma=3.0)
    assert section.name == "w" and hyperparameters(section) == {"gamma": 3.0, "steps": [1, 2]}
    assert reg.build("w", 10, **hyperparameters(section)) == (10, 3.0, [1, 2])


def test_hyperparameters_need_defaults():
    reg = Registry("widget")
    reg.register("w")(lambda *, x: x)
    with pytest.raises(TypeError, match="needs a default"):
        reg.schema("w")


@pytest.mark.parametrize("kind", ["data", "model", "loss", "optim", "schedule"])
def test_every_registered_component_has_a_valid_schema(kind):
    from calibexp.config import component_registries

    registry = component_registries()[kind]
    assert registry.names()
    for name in registry.names():
        section = registry.schema(name)()  # every hyper-parameter has a default
        assert section.name == name
