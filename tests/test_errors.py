"""A value in a refusal reads as the user would type it on the command line."""

from __future__ import annotations

import pytest

from kernellab.errors import show


@pytest.mark.parametrize(
    ("value", "typed"),
    [
        (True, "true"),
        (None, "null"),
        ([1, 2], "[1,2]"),
        (0.01, "0.01"),
        ("abc", "abc"),
        # strings Hydra's grammar would read as another type were typed quoted
        ("true", "'true'"),
        ("null", "'null'"),
        ("5", "'5'"),
        ("1e-3", "'1e-3'"),
    ],
)
def test_a_value_is_shown_as_typed(value, typed):
    assert show(value) == typed
