"""A Rescue-style sponge hash of a secret vector, in the prime field GF(2^64 − 59).

Who provides what: the first owner a column of field elements (integers in [0, p)),
absorbed two at a time. What is computed: a sponge of rate 2 and capacity 1 over a
Rescue-style permutation of width 3 — per round the S-box x^3, an MDS matrix and round
constants, then the inverse S-box x^(1/3) (3 is invertible mod p − 1, as p ≡ 2 mod 3),
the MDS matrix and constants — and the digest is the first state element. What is
revealed: the digest, to the analyst only; the parties learn the row count.

This is a Rescue-*style* construction for a known-answer port, not a standardized Rescue
or Rescue-Prime instance: its parameters (a Cauchy MDS matrix, constants from SHAKE-128,
ROUNDS rounds) are this module's own and no security level is claimed. The same
:func:`permute` runs on clear integers mod p as the plaintext reference.

SCALE-MAMBA's Programs/Rescue implements Rescue with its own constants in MAMBA over its
prime; its values are not those of this instance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from protocols.program import Program, program

P = 2**64 - 59  # prime, ≡ 2 mod 3
ALPHA = 3
ALPHA_INV = pow(ALPHA, -1, P - 1)
WIDTH, RATE = 3, 2
ROUNDS = 4


def _constants() -> np.ndarray:
    stream = hashlib.shake_128(b"ensnif rescue-style constants").digest(16 * 2 * WIDTH * ROUNDS)
    values = [
        int.from_bytes(stream[16 * i : 16 * i + 16], "little") % P
        for i in range(2 * WIDTH * ROUNDS)
    ]
    return np.array(values, dtype=object).reshape(ROUNDS, 2, WIDTH)


CONSTANTS = _constants()
MDS = np.array(
    [[pow(x + y, -1, P) for y in (4, 5, 6)] for x in (1, 2, 3)], dtype=object
)  # a Cauchy matrix: every square submatrix invertible


def permute(state: Any, power: Callable[[Any, int], Any], mix: Callable[[Any], Any]) -> Any:
    """The permutation, written once for clear integers and secure field arrays alike."""
    for r in range(ROUNDS):
        state = mix(power(state, ALPHA)) + CONSTANTS[r, 0]
        state = mix(power(state, ALPHA_INV)) + CONSTANTS[r, 1]
    return state


def clear_hash(values: list[int]) -> int:
    state = np.zeros(WIDTH, dtype=object)
    padded = list(values) + [1] + [0] * (-(len(values) + 1) % RATE)  # 10* padding
    for i in range(0, len(padded), RATE):
        state[:RATE] = (state[:RATE] + np.array(padded[i : i + RATE], dtype=object)) % P
        state = (
            permute(
                state,
                lambda v, e: np.array([pow(int(x), e, P) for x in v], dtype=object),
                lambda v: (MDS @ v) % P,
            )
            % P
        )
    return int(state[0])


@program
async def rescue_hash(p: Program) -> None:
    mpc = p.mpc
    field = mpc.SecFld(P)
    values = await p.input_from(0, field)
    n = values.shape[0]
    pad = np.array([1] + [0] * (-(n + 1) % RATE), dtype=object)
    padded = mpc.np_concatenate([values, field.array(pad)])
    mds = field.array(MDS)
    state = field.array(np.zeros(WIDTH, dtype=object))
    for i in range(0, padded.shape[0], RATE):
        block = mpc.np_concatenate([padded[i : i + RATE], field.array(np.zeros(1, dtype=object))])
        state = permute(state + block, mpc.np_pow, lambda v: mds @ v)
    p.reveal_to_analyst("digest", state[0])
