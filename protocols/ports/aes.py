"""AES-128 under a secret-shared key: GC_test's first circuit, on GF(2^8) shares.

Who provides what: the first owner the 16 key bytes, the second owner the 16 plaintext
bytes, each as a `value` column of 16 integers 0..255 in FIPS-197 byte order (SCALE-MAMBA's
GC_test takes both key and message as secret inputs; so does this port). What is
computed: the AES-128 encryption of the block under the key (FIPS-197). What is revealed:
the 16 ciphertext bytes ``ct[0]`` .. ``ct[15]``, to the analyst only. The parties learn
the row counts (16 and 16) and one opening of the ciphertext under a uniformly random
pad (independent of the data), nothing else. A value outside 0..255 enters as MPyC maps
an integer into GF(2^8) (as a polynomial, reduced by the modulus), not mod 256: the
owner's dataset bounds should say 0..255, which its node enforces before any MPC.

Why GF(2^8) shares: SCALE-MAMBA runs AES as a Boolean circuit in its garbled-circuit
engine; MPyC has no Boolean circuits, but it has secure fields of characteristic 2.
With Shamir shares over GF(2^8) = GF(2)[x]/(x^8 + x^4 + x^3 + x + 1) (the modulus is
passed explicitly; it is also MPyC's default for 2^8), AddRoundKey is share addition,
ShiftRows a gather and MixColumns a public 16×16 matrix over the field: all free. The
only non-linear step is the S-box's inverse, x^254 (0 ↦ 0 as AES wants), by MPyC's
addition chain (9 rounds). Its affine map is GF(2)-linear, not GF(2^8)-linear, so the
inverse is split into 8 bit-shares (``np_to_bits``: one opening of the value masked by
random bits) and mapped back by a public 8-vector of bytes. The whole state is one array
(16 bytes per operation), and the key schedule's 4 S-boxes of the next round key ride in
the same batch as the state's 16: 10 S-box layers in all, ~10 rounds each.

Getting the ciphertext out, choice (a) of the brief: the worker seals prime-field shares
only, so the 16 bytes are moved to the session's prime field inside MPC by daBits
(:mod:`protocols.dabits`: random bits shared in both fields, one opening of the
ciphertext under a uniformly random pad) and handed to the runtime as secure integers.
That keeps the sealing path (delivery, result records, the analyst's interpolation)
untouched, for 2 extra rounds and 128 input bits per party; a GF(2^8) combine kind in
the result record would have changed three modules every protocol relies on.

The plaintext reference (:func:`encrypt`) is AES-128 written separately on numpy bytes
(S-box table from a brute-force inverse and the rotate-and-XOR affine form, xtime
MixColumns, the key schedule as an XOR-accumulate), checked against FIPS-197 appendix C.1,
GC_test's stated answer, and a random key against the ``cryptography`` package.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols.dabits import bytes_to_prime_field
from protocols.program import Program, program

BLOCK = 16
ROUNDS = 10
MODULUS = 0x11B  # x^8 + x^4 + x^3 + x + 1
AFFINE_CONSTANT = 0x63
RCON = (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36)


# -- the plaintext reference, on numpy bytes -------------------------------------------------
def _rotl8(b: Any, k: int) -> Any:
    return ((b << k) | (b >> (8 - k))) & 0xFF


def _xtime(b: Any) -> Any:
    return ((b << 1) ^ np.where(b & 0x80, 0x1B, 0)) & 0xFF


def _clear_mul(a: Any, b: Any) -> Any:
    """GF(2^8) products, elementwise (Russian-peasant over b's 8 bits)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    out = np.zeros(np.broadcast(a, b).shape, dtype=np.int64)
    for _ in range(8):
        out ^= np.where(b & 1, a, 0)
        a, b = _xtime(a), b >> 1
    return out


def _sbox_table() -> np.ndarray:
    x = np.arange(256, dtype=np.int64)
    products = _clear_mul(x[:, None], x[None, :])
    inverse = np.where(x == 0, 0, np.argmax(products == 1, axis=1))
    out = inverse.copy()
    for k in range(1, 5):
        out ^= _rotl8(inverse, k)
    return (out ^ AFFINE_CONSTANT).astype(np.int64)


SBOX = _sbox_table()
# ShiftRows on the flat state (byte r + 4c is row r of column c): s'[r, c] = s[r, c + r].
SHIFT = np.array([r + 4 * ((c + r) % 4) for c in range(4) for r in range(4)])
MIX = np.array([[2, 3, 1, 1], [1, 2, 3, 1], [1, 1, 2, 3], [3, 1, 1, 2]])


def _clear_mix(state: np.ndarray) -> np.ndarray:
    columns = state.reshape(4, 4)  # [c, r]
    doubled = _xtime(columns)
    mixed = (
        doubled
        ^ np.roll(doubled, -1, axis=1)
        ^ np.roll(columns, -1, axis=1)
        ^ np.roll(columns, -2, axis=1)
        ^ np.roll(columns, -3, axis=1)
    )
    return np.asarray(mixed, dtype=np.int64).ravel()


def expand_key(key: Any) -> np.ndarray:
    """The 11 round keys (11 × 16 bytes) of a 16-byte key (FIPS-197 §5.2)."""
    keys = [np.asarray(key, dtype=np.int64)]
    for rcon in RCON:
        words = keys[-1].reshape(4, 4).copy()
        t = SBOX[np.roll(words[3], -1)]
        t[0] ^= rcon
        words[0] ^= t
        keys.append(np.bitwise_xor.accumulate(words, axis=0).ravel())
    return np.stack(keys)


def encrypt(key: Any, plaintext: Any) -> np.ndarray:
    """AES-128 of one 16-byte block in the clear: the port's reference."""
    round_keys = expand_key(key)
    state = np.asarray(plaintext, dtype=np.int64) ^ round_keys[0]
    for r in range(1, ROUNDS + 1):
        state = SBOX[state][SHIFT]
        if r < ROUNDS:
            state = _clear_mix(state)
        state = state ^ round_keys[r]
    return np.asarray(state, dtype=np.int64)


# -- the secure program, on GF(2^8) shares ---------------------------------------------------
# S-box affine map: bit j of the inverse contributes rotl(0x1F, j) (itself and 4 rotations).
AFFINE_COLUMNS = np.array([int(_rotl8(0x1F, j)) for j in range(8)], dtype=object)
# ShiftRows then MixColumns as one public 16×16 matrix over GF(2^8), applied as x @ M.
_MIX_FLAT = np.kron(np.eye(4, dtype=np.int64), MIX)  # block diagonal per column
_PERMUTE = np.eye(BLOCK, dtype=np.int64)[SHIFT]  # (P x)[i] = x[SHIFT[i]]
ROUND_MATRIX = (_MIX_FLAT @ _PERMUTE).T.astype(object)  # entries 0..3, no overflow
LAST_MATRIX = _PERMUTE.T.astype(object)
# Next round key from the last one: w'_j = t ⊕ w_0 ⊕ … ⊕ w_j (prefix XORs, then t tiled).
KEY_PREFIX = np.kron(np.triu(np.ones((4, 4), dtype=np.int64)), np.eye(4, dtype=np.int64)).astype(
    object
)
KEY_TILE = np.tile(np.eye(4, dtype=np.int64), 4).astype(object)
ROT_WORD = np.array([13, 14, 15, 12])  # RotWord of the last word, w_3 = bytes 12..15


def _sbox(mpc: Any, x: Any) -> Any:
    inverse = mpc.np_pow(x, 254)
    return mpc.np_to_bits(inverse, 8) @ AFFINE_COLUMNS + AFFINE_CONSTANT


def secure_encrypt(mpc: Any, key: Any, plaintext: Any) -> Any:
    """AES-128 on GF(2^8) secure arrays of 16 bytes each; the ciphertext, still shared."""
    round_key, state = key, plaintext + key
    for r in range(1, ROUNDS + 1):
        substituted = _sbox(mpc, mpc.np_concatenate([state, round_key[ROT_WORD]]))
        t = substituted[BLOCK:] + np.array([RCON[r - 1], 0, 0, 0], dtype=object)
        round_key = round_key @ KEY_PREFIX + t @ KEY_TILE
        matrix = ROUND_MATRIX if r < ROUNDS else LAST_MATRIX
        state = substituted[:BLOCK] @ matrix + round_key
    return state


def _bytes(column: Any, what: str) -> None:
    if column.shape != (BLOCK,):
        raise ValueError(f"aes128 takes a {what} of {BLOCK} bytes, got {column.shape[0]} rows")


@program
async def aes128(p: Program) -> None:
    mpc = p.mpc
    gf = mpc.SecFld(modulus=MODULUS, char=2)
    key = await p.input_from(0, gf)
    plaintext = await p.input_from(1, gf)
    _bytes(key, "key")
    _bytes(plaintext, "plaintext")
    ciphertext = secure_encrypt(mpc, key, plaintext)
    p.reveal_to_analyst("ct", await bytes_to_prime_field(mpc, gf, p.sint(), ciphertext))
