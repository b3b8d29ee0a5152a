"""How long auto times each layer: BUDGET_SECONDS, or $ODEXPORT_TUNING_SECONDS (the test suite sets it
short, see conftest.py); a bad value is refused before any work."""

from __future__ import annotations

import pytest

from odexport.errors import InputError
from odexport.lowering.tuning import BUDGET_SECONDS, BUDGET_VARIABLE, tuning_budget


def test_the_budget_is_the_default_unless_the_variable_says_otherwise(monkeypatch):
    monkeypatch.delenv(BUDGET_VARIABLE, raising=False)
    assert tuning_budget() == BUDGET_SECONDS == 0.4
    monkeypatch.setenv(BUDGET_VARIABLE, "")
    assert tuning_budget() == BUDGET_SECONDS
    monkeypatch.setenv(BUDGET_VARIABLE, "0.05")
    assert tuning_budget() == 0.05


@pytest.mark.parametrize("value", ["fast", "-1", "nan", "inf", "61"])
def test_a_value_that_is_not_a_number_of_seconds_is_refused(monkeypatch, value):
    monkeypatch.setenv(BUDGET_VARIABLE, value)
    with pytest.raises(InputError, match=BUDGET_VARIABLE):
        tuning_budget()
