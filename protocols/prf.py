"""Pseudonyms for private joins: a PRF evaluated in MPC on secret-shared keys.

The function is the Dodis–Yampolskiy PRF in the group of secp256k1 (prime
order q, no pairing, DDH believed hard):

    F_k(x) = (1 / (k + x)) · G

where x = H(join key) ∈ Z_q is hashed by the owner locally before it is
secret-shared (SHA-256 with a domain tag, so int and string keys never
collide) and k ∈ Z_q is a uniformly random key that exists only as a sharing
(every party inputs a random element; the sum is uniform if one is honest).

How it runs. In MPC over GF(q): u = 1/(k + x) with one multiplication and one
opening of a masked value: open c = r·(k+x) for a jointly random r, then
u = r·c⁻¹. The product is computed with MPyC's resharing multiplication, so
what is opened is a fresh degree-t sharing of c and nothing else. (MPyC 0.11's
own ``np_reciprocal`` opens the raw degree-2t product A(X)·R(X) in large
fields; its shares determine the polynomial, which a single party can factor
to get k + x up to two candidates — an attack a party that knows some x then
turns into k. It must not be used here; see ``reciprocal``.)
The parties never open u. Instead, for each element, t+1 designated parties
publish λ_i·u_i·G — their Shamir share of u, weighted by the Lagrange
coefficient of their set at 0, "in the exponent" — and everyone adds those
points: Σ λ_i u_i · G = u · G. Designated sets rotate over chunks, so each
party does (t+1)/n of the elliptic-curve work.

Security argument (semi-honest, honest majority):
- Shares of u are t-wise independent (u is r·c⁻¹ with r a fresh random
  sharing), so publishing λ_i u_i·G from t+1 parties reveals u·G and nothing
  else: the published points of any t+1 parties are a deterministic function of
  u·G plus uniformly random points (the other coefficients of the polynomial).
- What a party then sees is the set {F_k(x)} for the shuffled keys. It knows
  many inputs x (its own customer ids) but neither k nor the positions of its
  rows (the shuffle), and it never sees k + x in the clear. Deciding whether a
  revealed point equals F_k(x') for a chosen x' — linking a pseudonym to an
  id — is distinguishing DY outputs from random, which reduces to q-DDHI in the
  group (Dodis–Yampolskiy 2005; Boneh–Boyen for the inversion form). Unlike
  the field-only shortcut 1/(k + x) in GF(p), whose outputs let a party that
  knows x solve for k with one division, here recovering k from F_k(x) and x is
  a discrete logarithm. Cheon's attack on q-type assumptions costs about
  sqrt(q/d) for d ≈ the number of outputs, i.e. beyond 2^110 here.
- Pseudonyms are 33-byte compressed points; two distinct keys collide with
  probability about N²/q ≈ 2^-220 for a million rows.

Leakage by construction: equal keys give equal pseudonyms, so the parties see
the multiplicity pattern of the keys they input (owners de-duplicate by
pre-aggregating per key first, so in practice only the match pattern shows).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from protocols.shuffle import lagrange_at_zero

# Order of the secp256k1 group.
Q = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
POINT_BYTES = 33


def hash_keys(keys: np.ndarray) -> np.ndarray:
    """Join keys (int or str) to elements of Z_q, by the owner, before secret sharing."""
    out = np.empty(len(keys), dtype=object)
    for i, key in enumerate(keys.tolist()):
        if isinstance(key, str):
            data = b"ensnif-key\x00s" + key.encode()
        else:
            data = b"ensnif-key\x00i" + int(key).to_bytes(16, "big", signed=True)
        out[i] = int.from_bytes(hashlib.sha256(data).digest(), "big") % Q
    return out


def designated(chunk: int, n: int, t: int) -> tuple[int, ...]:
    """The t+1 parties that publish points for one chunk (rotating, so work is spread)."""
    return tuple(sorted((chunk + j) % n for j in range(t + 1)))


async def random_key(mpc: Any, secfld: Any) -> Any:
    """A uniformly random shared key: every party contributes a random field element."""
    import secrets

    contributions = mpc.input(secfld(secrets.randbelow(Q)), senders=list(range(len(mpc.parties))))
    return mpc.sum(contributions)


async def reciprocal(mpc: Any, a: Any) -> Any:
    """1/a elementwise for a shared array over GF(q) with no zero entry; opens only r·a.

    r is jointly random (every party inputs a random array; the sum is uniform if one
    party is honest), r·a is a resharing multiplication (a fresh degree-t sharing), so
    the opened c = r·a is a uniformly random nonzero element independent of a.
    """
    import secrets

    secarray = type(a)
    field = secarray.sectype.field
    length = len(a)
    mine = field.array(
        np.array([secrets.randbelow(Q - 1) + 1 for _ in range(length)], dtype=object)
    )
    contributions = mpc.input(secarray(mine), senders=list(range(len(mpc.parties))))
    r = contributions[0]
    for other in contributions[1:]:
        r = r + other
    c = await mpc.output(a * r)
    values = np.asarray(c.value if hasattr(c, "value") else c, dtype=object)
    if np.any(values % Q == 0):
        raise ArithmeticError("k + x or the mask is zero (probability ~2^-250); rerun the job")
    inverse = field.array(np.array([pow(int(v), -1, Q) for v in values], dtype=object))
    return r * inverse


async def pseudonyms(mpc: Any, keys: Any, prf_key: Any) -> np.ndarray:
    """F_k(x) for every element of the shared array ``keys``: a public array of 33-byte points."""
    from coincurve import PublicKey

    length = len(keys)
    if length == 0:
        return np.zeros(0, dtype=f"S{POINT_BYTES}")
    u = await reciprocal(mpc, keys + prf_key)
    own = np.asarray((await mpc.gather(u)).value, dtype=object)
    n, t, me = len(mpc.parties), mpc.threshold, mpc.pid
    chunks = np.array_split(np.arange(length), n)
    # First every point this party publishes (all its chunks), then the exchanges: the
    # parties compute in parallel instead of one waiting for the other's transfer.
    mine: dict[int, np.ndarray] = {}
    for c, idx in enumerate(chunks):
        members = designated(c, n, t)
        if me in members:
            lam = lagrange_at_zero(members, me, Q)
            scalars = own[idx] * lam % Q
            if np.any(scalars == 0):
                raise ArithmeticError("a share of 1/(k+x) is zero (probability ~2^-256)")
            raw = b"".join(
                PublicKey.from_valid_secret(int(s).to_bytes(32, "big")).format(False)
                for s in scalars
            )
            mine[c] = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 65)
    published: dict[tuple[int, int], np.ndarray] = {}
    for c in range(len(chunks)):
        for member in designated(c, n, t):
            # Every party takes part in every transfer (MPyC matches messages by order).
            got = await mpc.transfer(mine.get(c) if member == me else None, senders=[member])
            published[(c, member)] = got[0] if isinstance(got, list) else got
    out = np.empty(length, dtype=f"S{POINT_BYTES}")
    for c, idx in enumerate(chunks):
        members = designated(c, n, t)
        columns = [published[(c, m)] for m in members]
        if len(columns) == 1:
            out[idx] = [PublicKey(row.tobytes()).format() for row in columns[0]]
            continue
        out[idx] = [
            PublicKey.combine_keys([PublicKey(row.tobytes()) for row in rows]).format()
            for rows in zip(*columns, strict=True)
        ]
    return out
