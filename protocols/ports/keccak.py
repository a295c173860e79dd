"""Keccak-f[1600] on a secret state: the permutation of SHA-3, as arithmetic on bits.

Who provides what: the first owner the 1600-bit state as a column of 0/1 values, lane by
lane (lane (x, y) is bits 64·(x + 5y) .. 64·(x + 5y) + 63, least significant first, as
FIPS 202 orders a state's bytes). What is computed: the 24 rounds of Keccak-f[1600]
(θ, ρ, π, χ, ι). What is revealed: the 25 output lanes, to the analyst only; the parties
learn the row count (1600) and nothing else.

How: bits are secure integers 0/1; XOR is a + b − 2ab and AND is a product, so every step
is one array expression over all 1600 bits (ρ and π are a fixed permutation: indexing, no
communication). Each round takes 7 multiplication rounds (θ's five-way parity as a tree of
three, θ's D and its application, χ's AND-NOT and XOR); ι is linear (a public constant).
The same :func:`permute` runs on numpy integer arrays in the clear: it is the port's
plaintext reference, itself checked against FIPS 202 (SHA3-256 of the empty message via
a sponge over it, and the published permutation of the all-zero state).

SCALE-MAMBA evaluates Keccak_f as a garbled/Boolean circuit (Circuits/Bristol/
Keccak_f.txt) on sregint; MPyC has no Boolean circuits, hence the arithmetic form.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols.program import Program, program

ROUNDS = 24
LANE = 64
WIDTH = 25 * LANE


def _round_constants() -> list[int]:
    """ι's constants from the LFSR x^8 + x^6 + x^5 + x^4 + 1 (FIPS 202, rc(t))."""
    state, out = 1, []
    for _ in range(ROUNDS):
        constant = 0
        for j in range(7):
            if state & 1:
                constant |= 1 << ((1 << j) - 1)
            state = ((state << 1) ^ (0x71 if state & 0x80 else 0)) & 0xFF
        out.append(constant)
    return out


def _rotations() -> np.ndarray:
    offsets = np.zeros((5, 5), dtype=np.int64)
    x, y = 1, 0
    for t in range(24):
        offsets[x, y] = ((t + 1) * (t + 2) // 2) % LANE
        x, y = y, (2 * x + 3 * y) % 5
    return offsets


def _flat(x: Any, y: Any, z: Any) -> Any:
    return (x % 5 + 5 * (y % 5)) * LANE + z % LANE


_X, _Y, _Z = np.meshgrid(np.arange(5), np.arange(5), np.arange(LANE), indexing="ij")
_XZ_X, _XZ_Z = np.meshgrid(np.arange(5), np.arange(LANE), indexing="ij")
# θ: the five rows of each column (x, z), and D's two neighbours, on the flat 320 (x, z).
COLUMN = [_flat(_XZ_X, y, _XZ_Z).ravel() for y in range(5)]
D_LEFT = ((_XZ_X - 1) % 5 * LANE + _XZ_Z).ravel()
D_RIGHT = ((_XZ_X + 1) % 5 * LANE + (_XZ_Z - 1) % LANE).ravel()
# Every bit (x, y, z) of the state reads D at (x, z).
D_AT = np.empty(WIDTH, dtype=np.int64)
D_AT[_flat(_X, _Y, _Z).ravel()] = (_X * LANE + _Z).ravel()
# ρ then π as one gather: B[y, 2x + 3y, z] = A[x, y, z − r[x, y]].
_R = _rotations()
RHO_PI = np.empty(WIDTH, dtype=np.int64)
RHO_PI[_flat(_Y, 2 * _X + 3 * _Y, _Z).ravel()] = _flat(_X, _Y, _Z - _R[_X, _Y]).ravel()
# χ: A[x] = B[x] ⊕ (¬B[x+1] ∧ B[x+2]).
_ALL = _flat(_X, _Y, _Z).ravel()
CHI_1 = np.empty(WIDTH, dtype=np.int64)
CHI_1[_ALL] = _flat(_X + 1, _Y, _Z).ravel()
CHI_2 = np.empty(WIDTH, dtype=np.int64)
CHI_2[_ALL] = _flat(_X + 2, _Y, _Z).ravel()
# ι: the round constant's bits on lane (0, 0), which is bits 0..63 of the flat state.
IOTA = [
    np.array([(c >> i) & 1 if i < LANE else 0 for i in range(WIDTH)], dtype=np.int64)
    for c in _round_constants()
]


def _xor(a: Any, b: Any) -> Any:
    return a + b - 2 * (a * b)


def permute(bits: Any) -> Any:
    """Keccak-f[1600] of a flat array of 1600 bits (numpy integers or a secure array)."""
    for constant in IOTA:
        rows = [bits[i] for i in COLUMN]
        parity = _xor(_xor(_xor(rows[0], rows[1]), _xor(rows[2], rows[3])), rows[4])
        d = _xor(parity[D_LEFT], parity[D_RIGHT])
        bits = _xor(bits, d[D_AT])
        b = bits[RHO_PI]
        bits = _xor(b, (1 - b[CHI_1]) * b[CHI_2])
        bits = bits + constant - 2 * (bits * constant)  # ι: ⊕ a public constant, linear
    return bits


def lanes(bits: Any) -> Any:
    """The 25 lanes as integers, from a flat bit array (a linear map: free on shares)."""
    weights = np.array([1 << z for z in range(LANE)], dtype=object)
    return bits.reshape(25, LANE) @ weights


@program
async def keccak_f1600(p: Program) -> None:
    sint = p.sint(LANE + 8)  # bits stay 0/1; the packed lanes need 64 bits
    state = await p.input_from(0, sint)
    if state.shape != (WIDTH,):
        raise ValueError(f"keccak_f1600 takes a state of {WIDTH} bits, got {state.shape[0]}")
    p.reveal_to_analyst("lane", lanes(permute(state)))
