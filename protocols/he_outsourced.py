"""An outsourced dataset's aggregates as secret-shared inputs (the MPC half of
``ensnif_mpc/he/outsource.py``, whose docstring holds the security argument).

Who provides what: every party of the job inputs its additive share of the owner's masked
totals M_k (sealed to it by the owner's client, forwarded by the helper that stores the
ciphertexts); the helper inputs its share minus its mask totals R_k. Nobody inputs a value
in the clear.

How: the inputs are added (free), giving d_k = M_k − R_k ∈ (−t, t) with d_k ≡ S_k mod t,
and the true value S_k ∈ (−t/2, t/2) is d_k + t·([d_k < −t/2] − [d_k > t/2]): two secure
comparisons per output, vectorized over the K outputs. The result is then converted to
the job's own secure integer type and used like any owner's pre-aggregated input.

What is revealed: nothing; the outputs stay secret-shared.

What leaks: the number of outputs K (public: the job's protocol and the dataset's
declared bins fix it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# The plain modulus as an integer, so this module needs no TenSEAL (checked equal to
# ensnif_mpc.he.bfv.T by tests/protocols/test_he_outsourced.py).
PLAIN_MODULUS = 288230376150876161
CONVERSION_BITS = 64  # |d| < t < 2^58: comparisons on 64-bit secure integers


def forward_shares(mpc: Any, helper: int, forwarded: Any) -> Any:
    """The helper sends every party the owner's sealed shares with the batch's digest
    (``ensnif_mpc.he.outsource.Forwarded``); each party opens only its own share."""
    return mpc.transfer(forwarded, senders=[helper])


async def outsourced_totals(mpc: Any, mine: Sequence[int], target: Any | None = None) -> Any:
    """The K exact totals of an outsourced dataset, secret-shared; ``mine`` is this party's
    additive share (the helper's already minus its masks). ``target``: the job's secure
    integer type to convert to (None: keep the 64-bit conversion type)."""
    secint = mpc.SecInt(CONVERSION_BITS)
    parties = list(range(len(mpc.parties)))
    shared = mpc.input(secint.array(np.array([int(v) for v in mine], dtype=object)), parties)
    d = mpc.np_sum(mpc.np_stack(shared), axis=0)
    half = PLAIN_MODULUS // 2
    wrapped_up = d > half
    wrapped_down = d < -half
    exact = d + (wrapped_down - wrapped_up) * PLAIN_MODULUS
    if target is None or target is secint:
        return exact
    converted = mpc.convert(list(exact), target)
    return mpc.np_fromlist(converted)


async def outsourced_rows(mpc: Any, mine: Sequence[int], sectype: Any) -> Any:
    """An outsourced column's rows, secret-shared (``ensnif_mpc/he/outsource_rows.py``):
    the parties' additive shares (the helper's minus its masks) add up to each row exactly,
    no correction needed; a secure array of ``sectype``."""
    parties = list(range(len(mpc.parties)))
    shared = mpc.input(sectype.array(np.array([int(v) for v in mine], dtype=object)), parties)
    return mpc.np_sum(mpc.np_stack(shared), axis=0)
