"""Bytes shared in GF(2^8) to secure integers of the session's prime field, by daBits.

Why: the worker re-randomizes and seals prime-field Shamir shares only (protocols/delivery.py,
the result record's ``combine``), and MPyC's ``convert`` goes between prime fields and
secure integers, not out of a binary field. A program that computes in GF(2^8) (AES) moves
its outputs here before it hands them to the runtime; the sealing path is unchanged.

How: a daBit is one random bit shared in both fields. Every party inputs n random bits in
both; their XOR is the pad r, uniformly random as long as one party is honest: a plain sum
of the GF(2^8) inputs, and a + b − 2ab products in the prime field (one round per party
after the first). The parties open c = x ⊕ r, byte by byte in GF(2^8); each bit of x is
then c_j + (1 − 2c_j)·r_j in the prime field, linear because c is public, and the byte
Σ 2^j x_j as well.

What is revealed: c, to every party; it is x under a uniformly random one-time pad, so it
is independent of x and of the data. What leaks: nothing (the sizes are public). Passive
security, like the rest of the MPyC stack: a party that inputs a non-bit breaks
correctness, not the others' privacy against an honest-but-curious party.
"""

from __future__ import annotations

import secrets
from functools import reduce
from typing import Any

import numpy as np

BITS = 8
WEIGHTS = np.array([1 << j for j in range(BITS)], dtype=object)


async def bytes_to_prime_field(mpc: Any, gf: Any, sint: Any, value: Any) -> Any:
    """The 1-D GF(2^8) secure array ``value`` as a secure array of ``sint`` (each byte as
    its integer 0..255: bit j is the coefficient of x^j)."""
    if gf.field.order != 1 << BITS or len(value.shape) != 1:
        raise ValueError("bytes_to_prime_field takes a 1-D array over GF(2^8)")
    n = value.shape[0]
    mine = [secrets.randbits(1) for _ in range(n * BITS)]
    everyone = list(range(len(mpc.parties)))
    # Two arrays: MPyC's field arrays convert an object array's entries in place.
    pads_gf = mpc.input(gf.array(np.array(mine, dtype=object)), senders=everyone)
    pads_p = mpc.input(sint.array(np.array(mine, dtype=object)), senders=everyone)
    r_gf = reduce(lambda a, b: a + b, pads_gf).reshape(n, BITS)
    r_p = reduce(lambda a, b: a + b - 2 * (a * b), pads_p).reshape(n, BITS)
    masked = await mpc.output(value + r_gf @ WEIGHTS)  # x ⊕ r: a one-time pad, safe to open
    c = (np.array([int(v) for v in masked.value], dtype=object)[:, None] >> np.arange(BITS)) & 1
    return (r_p * (1 - 2 * c) + c) @ WEIGHTS
