"""The runtime's check of what a member program revealed against its manifest (no MPyC
needed: the values only have to say whether they are fixed point)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ensnif_mpc.errors import PolicyViolation
from ensnif_mpc.jobs.member_program import Bundle, Manifest
from protocols.io import SecureOutput
from protocols.member import declared_outputs

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "programs" / "big_baskets"


class Int:  # a secure integer as far as the check can tell
    pass


class Fixed:
    frac_length = 16


def _manifest() -> Manifest:
    return Bundle.from_path(EXAMPLE).manifest


def test_outputs_come_back_in_release_order_and_noised_as_the_release_says() -> None:
    revealed = [SecureOutput("sum_above", Int(), True, False), SecureOutput("count_above", Int())]
    out = declared_outputs(_manifest(), revealed, noisy=True)
    assert [o.name for o in out] == ["count_above", "sum_above"]
    assert all(o.noisy for o in out) and out[1].on_value_scale


@pytest.mark.parametrize(
    "revealed",
    [
        [SecureOutput("count_above", Int())],  # one declared output missing
        [
            SecureOutput("count_above", Int()),
            SecureOutput("sum_above", Int()),
            SecureOutput("rows", Int()),
        ],  # one undeclared
        [SecureOutput("count_above", Int()), SecureOutput("count_above", Int())],  # twice
        [SecureOutput("count_above", Int()), SecureOutput("sum_above", Fixed())],  # wrong kind
    ],
)
def test_anything_but_the_declared_outputs_is_refused(revealed: list[SecureOutput]) -> None:
    with pytest.raises(PolicyViolation) as info:
        declared_outputs(_manifest(), revealed, noisy=False)
    assert info.value.reason == "undeclared_output"
