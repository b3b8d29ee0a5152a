"""The one Registry every kind of named record uses (precisions, targets, runtimes, lowerings)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from odexport.backends import list_backends, list_targets
from odexport.errors import InputError
from odexport.lowering import list_lowerings
from odexport.precisions import list_precisions
from odexport.registry import Registry


@dataclass(frozen=True)
class Item:
    name: str


def test_names_come_in_registration_order_or_by_name():
    assert Registry("item").names() == []
    plain, ordered = Registry("item"), Registry("item", ordered_by_name=True)
    for registry in (plain, ordered):
        for name in ("b", "a", "c"):
            registry.register(Item(name))
    assert plain.names() == ["b", "a", "c"] and [item.name for item in plain] == ["b", "a", "c"]
    assert ordered.names() == ["a", "b", "c"] and [item.name for item in ordered] == ["a", "b", "c"]


def test_an_unknown_name_is_an_input_error_listing_the_choices():
    registry = Registry("runtime", also=("all",))
    registry.register(Item("x"))
    with pytest.raises(InputError) as caught:
        registry.get("y")
    assert caught.value.message == "unknown runtime 'y'"
    assert caught.value.hint == "choose one of: x, all"
    assert caught.value.exit_code == 2


def test_once_refuses_a_second_record_of_a_name_and_unregister_forgets():
    registry = Registry("lowering")
    first = registry.register(Item("x"), once=True)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(Item("x"), once=True)
    assert registry.get("x") is first and "x" in registry
    registry.unregister("x")
    assert "x" not in registry and registry.names() == []


@pytest.mark.parametrize("names, expected", [
    (list_precisions, ["fp32", "fp16", "bf16", "int8"]),
    (list_targets, ["onnx", "onnxruntime", "openvino"]),
])
def test_the_library_registries_list_what_they_always_did(names, expected):
    assert names() == expected


def test_runtimes_and_lowerings_are_registered():
    assert {"onnxruntime", "openvino", "reference"} <= set(list_backends())
    assert list_lowerings() == sorted(list_lowerings()) and "decomposed" in list_lowerings()
