"""The aligned join on the tagged-helper route: owner A's per-key columns carried, still
secret, into owner B's row order, so that every matched key's two rows sit side by side
(``join_group_by``, ``join_correlation``, and :func:`aligned_rows` for whatever needs the
matched rows themselves, such as a vertical regression). Two data owners A, B and one
compute-only helper H, threshold t = 1 (``ensnif_mpc.jobs.join_path``).

How, after the tagging of ``protocols.join.tagged`` (steps 1–2 there: seeds K (A, B),
s_AH (A, H), s_HB (H, B); each owner sends H the 64-bit tags of its distinct keys
in a private random order), every party running every step, "→" being ``mpc.transfer``:

0. Sizes. Each owner announces its number of distinct keys, n_A and n_B, to everyone.
1. Matching. H finds, for every position j of B's list, A's position of the same tag
   (or none). Call τ(j) that position, or n_A + j for an unmatched j (a zero row
   appended to A's table): τ is an injection of [n_B] into [N], N = n_A + n_B.
2. First resharing (A and H). σ1 is a uniformly random permutation of [N] from s_AH.
   A appends n_B zero rows to its table X (in its tag order), permutes it by σ1 and
   sends B  Z = X[σ1] − R, R a pseudorandom (N × c) matrix from s_AH.
   Now Z (B) + R (H) = X[σ1].
3. Second resharing (H and B). H sends B  σ2 = σ1⁻¹∘τ  and  R[σ2] − C, C a fresh
   matrix from s_AH. B sets  Y_B = Z[σ2] + R[σ2] − C.  Then Y_B + C = X[τ]: row j is
   A's row of B's j-th key, or zeros. B holds Y_B, A and H both hold C.
4. Products with B's own columns W (n_B × d, B's tag order): B sends A  W − M, M from
   s_HB, in chunks of rows (each chunk folded in before the next, so memory stays a
   chunk). Y^T·W = Y_B^T·W (B) + C^T·(W − M) (A) + C^T·M (H); row by row the same
   with ∘ for :func:`aligned_rows`. Column sums of Y: Y_B (B) + C (A).
5. Into MPyC. In Z_2^k (numpy uint64, the group-by; k the whole bytes of the session's
   integer size, :func:`ring_bits`, and only k/8 bytes an element sent in steps 2–4:
   :class:`Ring2k`) the three shares become two
   (A sends B its share + e, H e) and one multiplication per output removes the one
   possible wrap-around (``protocols.join.tagged._into_mpc``, no comparison); in Z_p, p
   the MPyC field's modulus (object arrays, the correlation and :func:`aligned_rows`),
   each party secret-shares its additive share and the sum is the value itself.

Who sees what (semi-honest, one corrupted party, t = 1):
- A: its data, s_AH, K, n_B and W − M, pseudorandom under s_HB which A never sees. A
  knows σ1 but not σ2: σ1 is uniform and independent of τ, so A learns nothing of the
  matching, not even the match count.
- B: its data, s_HB, K, n_A, Z (masked by R, pseudorandom under s_AH), R[σ2] − C
  (masked by C) and σ2 = σ1⁻¹∘τ. For any fixed injection τ, σ1⁻¹∘τ with σ1 uniform is a
  uniformly random injection of [n_B] into [N]: B learns nothing of which of its keys
  matched (the unmatched ones point into A's zero rows, which σ1 hides among A's rows).
- H: s_AH, s_HB and both tag lists, as on the selection route: the sizes, the match
  count and which random positions matched. H receives no share in steps 2–4 (in step 5
  of the Z_2^64 products only A's fresh uniform e).
- In Z_2^k every masked element is sent reduced modulo 2^k; its mask, uniform modulo
  2^64, is uniform modulo 2^k, so each of those views is uniform as in Z_2^64. The ring's
  size k follows from the session's public integer size, never from the data.
- Step 5 is MPyC's usual t = 1 computation. So every single party's view is simulated
  from its input and its announced sizes (H: and the match count): t = 1 suffices, with
  the helper a third party distinct from both owners. Compared with the PRF route, where
  every party learns both sizes and the match count (and, for the group-by, how many
  groups each of B's keys has rows in), the owners learn only the other owner's size.

What breaks:
- Collusion (beyond t = 1, as on every route): A with H learns B's columns (W − M and
  M) and which of its keys matched; B with H learns A's columns (Z + R); an owner with H
  can test guessed keys of the other owner against the tags.
- Deviation: H alone chooses τ, so a deviating H can pair any of A's rows with any of
  B's, or select a single key (DP noise still bounds what one key moves a DP release).
  A party that sends wrong shares changes the result undetectably (semi-honest only).
  An owner whose policy forbids this asks for ``params.join_path = "prf-shuffle"``.
- K, the seeds and so σ1, R, C, M are fresh per job and live only in worker memory.

Reuse: :func:`aligned_rows` ``(ctx, sectype, keys, columns, widths) -> AlignedRows``.
Every party calls it at the same point of its program (the helper with ``keys = columns =
None``); each owner passes its distinct join keys (one per row) and an (n, c) integer
matrix of its per-key values, ``widths = (c_A, c_B)`` public. It returns, in B's private
row order (n_B rows, public), secure arrays of ``sectype``: ``present`` (1 where B's key
is also A's), ``a`` (A's row of that key, 0 elsewhere), ``b`` (B's row, 0 elsewhere) and,
at B only, ``order`` (row j is B's key ``keys[order[j]]``). With a SecFxp type the integers
enter as integral fixed-point values. Cost: O((n_A + n_B)·(c_A + c_B)) local work in Z_p
and one MPyC input of n_B·(1 + c_A + c_B) field elements per party; no comparisons.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from protocols.io import Context
from protocols.join import tagged
from protocols.join.common import _announce
from protocols.shuffle import permutation
from protocols.tagging import Ring64, RingP, partners


class Ring2k(Ring64):
    """Z_2^k for k a multiple of 8 up to 64 (the group-by's ring, sized to the session).

    The arithmetic is Ring64's uint64, which wraps modulo 2^64 and so is right modulo 2^k
    (2^k divides 2^64); only the low k/8 bytes of each element go on the wire
    (:func:`wire`), so every masked matrix costs k/8 bytes an element instead of 8. A
    masked element x − r with r uniform in Z_2^64 is, reduced modulo 2^k, uniform in
    Z_2^k: the messages stay independent of the data.
    """

    def __init__(self, bits: int) -> None:
        if bits % 8 or not 8 <= bits <= 64:
            raise ValueError(f"ring bits must be a multiple of 8 in [8, 64], got {bits}")
        self.bits = bits
        self.modulus = 1 << bits
        self.width = bits // 8

    def ints(self, x: np.ndarray) -> list[int]:
        """Ring elements as Python ints in [0, 2^k)."""
        return [int(v) % self.modulus for v in np.asarray(x, dtype=np.uint64).ravel()]


def ring_bits(bit_length: int) -> int:
    """The group-by's ring Z_2^k for a session of ``bit_length``-bit integers: k the
    whole bytes that hold ``bit_length`` bits (at most 64).

    Every output of the session is below 2^(bit_length − 2) in magnitude (the coordinator
    sizes the session to rows × declared bounds plus sign and headroom,
    ``ensnif_mpc.jobs.checks.sum_bits``, and a node refuses a source that outgrew it:
    ``catalog_stale``), so output + 2^(k − 2) lies in [0, 2^(k − 1)), as the two-share
    conversion (``tagged._into_mpc``) requires."""
    return min(64, 8 * -(-bit_length // 8))


Ring = Ring64 | RingP


def wire(ring: Ring, x: np.ndarray) -> np.ndarray:
    """A matrix of ring elements as it is sent: Ring2k's low bytes only, as an (n, c·k/8)
    uint8 matrix (one row per element row); any other ring's elements unchanged."""
    if not isinstance(ring, Ring2k) or ring.bits == 64:
        return x
    rows, cols = x.shape
    as_bytes = np.ascontiguousarray(x, dtype="<u8").view(np.uint8).reshape(rows, cols, 8)
    return np.ascontiguousarray(as_bytes[..., : ring.width]).reshape(rows, cols * ring.width)


def unwire(ring: Ring, x: np.ndarray, cols: int) -> np.ndarray:
    """The inverse of :func:`wire`: (n, cols) ring elements (uint64, top bytes zero)."""
    if not isinstance(ring, Ring2k) or ring.bits == 64:
        return x
    rows = x.shape[0]
    full = np.zeros((rows, cols, 8), dtype=np.uint8)
    full[..., : ring.width] = x.reshape(rows, cols, ring.width)
    return full.view("<u8").reshape(rows, cols)


@dataclass(frozen=True)
class Matching:
    """What sizes, tagging and matching left this party (same fields at every party)."""

    me: int
    a: int
    b: int
    h: int
    n_a: int
    n_b: int
    seeds: dict[str, bytes]
    order: np.ndarray | None  # an owner's private order of its keys (its tags' order)
    partner: np.ndarray | None  # H: for each of B's positions, A's matching one or −1


@dataclass(frozen=True)
class Shared:
    """This party's part of an aligned (n_B × width) matrix Y = b_part + ah_part: B holds
    b_part, A and H both hold ah_part (the same matrix C)."""

    b_part: np.ndarray | None
    ah_part: np.ndarray | None


@dataclass(frozen=True)
class AlignedRows:
    """Both owners' rows of every key of B, secret-shared, in B's private order."""

    rows: int  # n_B, known to every party
    present: Any  # (n_B,) secure array: 1 where the key is also A's, else 0
    a: Any  # (n_B, c_A): A's columns of the same key, 0 where not present
    b: Any  # (n_B, c_B): B's columns, 0 where not present
    order: np.ndarray | None = None  # at B only: row j is B's key keys[order[j]]


async def sizes(ctx: Context, mine: int | None) -> tuple[int, int]:
    """Step 0: (n_A, n_B), announced by the owners to every party."""
    me = ctx.index
    a, b = ctx.owners
    n_a = await _announce(ctx, 0, mine if me == a else None)
    n_b = await _announce(ctx, 1, mine if me == b else None)
    return n_a, n_b


async def match(ctx: Context, keys: np.ndarray | None, n_a: int, n_b: int, trace: Any) -> Matching:
    """Steps 1–2 of ``protocols.join.tagged`` and H's matching (step 1 above)."""
    a, b, h = tagged._roles(ctx)
    order, received, seeds = await tagged.exchange_tags(ctx, keys, trace)
    partner = partners(*received) if received is not None else None
    return Matching(ctx.index, a, b, h, n_a, n_b, seeds, order, partner)


def _seed(seed: bytes, label: bytes) -> bytes:
    return hashlib.sha256(b"ensnif-aligned\x00" + label + b"\x00" + seed).digest()


async def align(
    ctx: Context, m: Matching, ring: Ring, columns: np.ndarray | None, width: int, trace: Any
) -> Shared:
    """Steps 2–3: A's (n_A × width) matrix of ring elements, in A's own key order (None
    at the other parties), carried into B's tag order and shared as Y_B (B) + C (A, H)."""
    me, n = ctx.index, m.n_a + m.n_b
    sigma1 = mask_r = mask_c = None
    if me in (m.a, m.h):
        sigma1 = permutation(_seed(m.seeds["AH"], b"sigma1"), n)
        mask_r = ring.mask(m.seeds["AH"], b"R", (n, width))
        mask_c = ring.mask(m.seeds["AH"], b"C", (m.n_b, width))
    z = None
    if me == m.a:
        assert columns is not None and m.order is not None
        assert sigma1 is not None and mask_r is not None
        table = np.concatenate([columns[m.order], ring.zeros((m.n_b, width))])
        z = wire(ring, ring.sub(table[sigma1], mask_r))
    (z_got,) = trace.got(await tagged.transfer(ctx.mpc, z, [m.a], [m.b])) or [None]
    to_b = None
    if me == m.h:
        assert m.partner is not None and sigma1 is not None
        assert mask_r is not None and mask_c is not None
        target = np.where(m.partner >= 0, m.partner, m.n_a + np.arange(m.n_b))
        inverse = np.empty(n, dtype=np.int64)
        inverse[sigma1] = np.arange(n)
        sigma2 = inverse[target].astype(np.uint32 if n < 1 << 32 else np.int64)
        to_b = (sigma2, wire(ring, ring.sub(mask_r[sigma2], mask_c)))
    (got,) = trace.got(await tagged.transfer(ctx.mpc, to_b, [m.h], [m.b])) or [None]
    if me == m.b:
        sigma2, correction = got
        z_got = unwire(ring, z_got, width)
        return Shared(ring.add(z_got[sigma2], unwire(ring, correction, width)), None)
    return Shared(None, mask_c)


CHUNK_ROWS = 1 << 17  # B's masked columns go to A in chunks of this many rows (memory)


async def with_b(
    ctx: Context,
    m: Matching,
    ring: Ring,
    y: Shared,
    w: np.ndarray | None,
    depth: int,
    label: bytes,
    trace: Any,
    rowwise: int | None = None,
) -> np.ndarray:
    """Step 4: this party's additive share of Y^T·W (width × depth), W being B's (n_B ×
    depth) matrix of ring elements in B's tag order (None elsewhere); with ``rowwise = k``
    instead of column k of Y times every column of W, row by row (n_B × depth).

    B sends W − M in chunks of :data:`CHUNK_ROWS` rows (M from s_HB, drawn per chunk), and
    every party folds each chunk into its share before the next: no party holds more than
    a chunk of M or of W − M at once, and A starts on a chunk while B sends the next."""
    me = ctx.index
    own = y.b_part if me == m.b else y.ah_part
    assert own is not None
    width = own.shape[1]
    total = ring.zeros((width, depth))
    rows_out: list[np.ndarray] = []
    for start in range(0, m.n_b, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, m.n_b)
        tag = label + b"@" + str(start).encode()
        mask = ring.mask(m.seeds["HB"], tag, (stop - start, depth)) if me in (m.b, m.h) else None
        sent = None
        if me == m.b:
            assert w is not None and mask is not None
            sent = wire(ring, ring.sub(w[start:stop], mask))
        (got,) = trace.got(await tagged.transfer(ctx.mpc, sent, [m.b], [m.a])) or [None]
        sent = None
        right: np.ndarray | None = unwire(ring, got, depth) if me == m.a else mask
        if me == m.b:
            assert w is not None
            right = w[start:stop]
        assert right is not None
        left = own[start:stop]
        if rowwise is None:
            total = ring.add(total, ring.cross(left, right))
        else:
            rows_out.append(ring.mul(left[:, [rowwise]], right))
    if rowwise is None:
        return total
    return np.concatenate(rows_out) if rows_out else ring.zeros((0, depth))


def column_sums(m: Matching, ring: Ring, y: Shared, width: int) -> np.ndarray:
    """This party's additive share of Y's column sums (A, not H, counts C)."""
    if m.me == m.b:
        assert y.b_part is not None
        return ring.total(y.b_part)
    if m.me == m.a:
        assert y.ah_part is not None
        return ring.total(y.ah_part)
    return ring.zeros((width,))


def into_field(ctx: Context, sectype: Any, share: np.ndarray) -> Any:
    """Step 5 in Z_p: every party's additive share (field elements, any shape) into one
    secure array of ``sectype`` (its field's modulus is the ring's)."""
    mpc = ctx.mpc
    field_values = sectype.field.array(np.asarray(share, dtype=object))
    if _scale(sectype) == 1:
        mine = sectype.array(field_values)
    else:  # integers as fixed point: integral, so products need no truncation
        mine = sectype.array(field_values, integral=True)
    inputs = mpc.input(mine, senders=list(range(len(mpc.parties))))
    total = inputs[0]
    for other in inputs[1:]:
        total = total + other
    return total


def _scale(sectype: Any) -> int:
    """A secure type's encoding of the integer 1 (2^f for fixed point)."""
    return 1 << int(getattr(sectype, "frac_length", 0))


async def aligned_rows(
    ctx: Context,
    sectype: Any,
    keys: np.ndarray | None,
    columns: np.ndarray | None,
    widths: tuple[int, int],
) -> AlignedRows:
    """Both owners' per-key columns, aligned row by row and secret-shared (module
    docstring, "Reuse"). Reveals the two table sizes to every party and the match count
    to the helper only; runs only on the tagged-helper route's sessions."""
    me = ctx.index
    a, b = ctx.owners
    c_a, c_b = widths
    mine = len(keys) if keys is not None and me in (a, b) else None
    n_a, n_b = await sizes(ctx, mine)
    trace = tagged._Trace("aligned")
    m = await match(ctx, keys if me in (a, b) else None, n_a, n_b, trace)
    ring = RingP(sectype.field.modulus)
    one = _scale(sectype)
    # A's aligned columns: [1, 1 as sectype, its columns as sectype] (the raw 1 weights B's
    # columns below; with SecInt the first two coincide and one is dropped).
    lead = 1 if one == 1 else 2
    x = None
    if me == a:
        assert columns is not None
        values = np.asarray(columns, dtype=object).reshape(n_a, c_a) * one
        head = [np.ones((n_a, 1), dtype=object)] + ([] if lead == 1 else [np.full((n_a, 1), one)])
        x = ring.encode(np.concatenate([*head, values], axis=1))
    y = await align(ctx, m, ring, x, lead + c_a, trace)
    w = None
    if me == b:
        assert columns is not None and m.order is not None
        w = ring.encode(np.asarray(columns, dtype=object).reshape(n_b, c_b)[m.order] * one)
    b_share = await with_b(ctx, m, ring, y, w, c_b, b"rows", trace, rowwise=0)
    if me == b:
        own = y.b_part
    elif me == a:
        own = y.ah_part
    else:
        own = ring.zeros((n_b, lead + c_a))
    assert own is not None
    order = m.order if me == b else None
    if n_b == 0:
        return AlignedRows(0, None, None, None, order)
    shared = into_field(ctx, sectype, np.concatenate([own[:, lead - 1 :], b_share], axis=1))
    return AlignedRows(n_b, shared[:, 0], shared[:, 1 : 1 + c_a], shared[:, 1 + c_a :], order)
