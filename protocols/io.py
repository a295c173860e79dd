"""The small I/O layer between a protocol program and its worker.

A program gets a :class:`Context` (its runtime, its own pre-processed input,
the session sizes) and returns named secure outputs; it never prints or opens
a secret. The worker turns those outputs into sealed shares for the analyst.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import numpy as np


@dataclass
class Context:
    mpc: Any  # the MPyC runtime of this worker process
    index: int
    owners: list[int]
    values: np.ndarray | None  # this owner's column as integers scaled by 10**decimals
    params: dict[str, Any]
    bit_length: int
    decimals: int
    progress: Callable[[str, float], None]

    @property
    def is_owner(self) -> bool:
        return self.index in self.owners

    def scaled_bound(self, bound: float, upper: bool) -> int:
        """A filter bound on the column's integer scale (values are integers × 10**decimals).

        A bound between two grid points must not admit the point beyond it: an upper
        bound is floored and a lower bound ceiled, on the exact decimal the user wrote
        (a float product such as 0.29 * 100 = 28.999... would floor wrongly).
        """
        exact = Decimal(repr(float(bound))).scaleb(self.decimals)
        return int(exact.to_integral_value(ROUND_FLOOR if upper else ROUND_CEILING))


@dataclass(frozen=True)
class SecureOutput:
    name: str
    value: Any  # a secure scalar (secint/secfxp) produced by the program
    # True when the value is on the column's decimal scale (a sum, a mean), False for a count.
    on_value_scale: bool = True
