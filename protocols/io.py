"""The small I/O layer between a protocol program and its worker.

A program gets a :class:`Context` (its runtime, its own pre-processed input,
the session sizes) and returns named secure outputs; it never prints or opens
a secret. The worker turns those outputs into sealed shares for the analyst.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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

    def scaled(self, bound: float) -> int:
        """A parameter on the column's scale (values are integers times 10**decimals)."""
        return round(bound * 10**self.decimals)


@dataclass(frozen=True)
class SecureOutput:
    name: str
    value: Any  # a secure scalar (secint/secfxp) produced by the program
    # True when the value is on the column's decimal scale (a sum, a mean), False for a count.
    on_value_scale: bool = True
