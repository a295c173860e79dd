"""What the statistics share: exact values of opened fixed-point numbers and the
family's size limits.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

MAX_BINS = 4096  # histogram bins and quantile grid points: one secure vector of this length


def exact(x: Any) -> Fraction:
    """A number as the exact decimal a person wrote (0.29 is 29/100, not its float)."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, float):
        return Fraction(repr(float(x)))  # numpy's repr of a float64 is not a decimal
    return Fraction(int(x))


def _decimal_places(x: Fraction) -> int:
    """The number of decimals of an exact decimal (its denominator divides 10^e)."""
    e = 0
    while (x * 10**e).denominator != 1:
        e += 1
    return e
