"""Exact k-means for two owners and one helper (t = 1): the iterations in Z_2^64 with the
helper as dealer (``protocols.ring.dealer``), the division in MPyC.

Route: a session of exactly three parties, threshold 1 and two owners (A, B; the third
party H is the dealer) runs this; any other session runs the all-MPyC iterations of
``protocols.models.kmeans`` (same outputs and empty-cluster rule, no dealer).

What is computed, per iteration, with the rows on the box grid (integers in [0, 2^12],
``kmeans.FK``) and the centroids at 2^-(FK+FC) of the box, secret-shared between A and B:

1. Scores ‖c_j‖² − 2^(FC+1)·x·c_j for every row and centroid (a difference of two lies
   within ±2^(ℓ−1), ℓ = :func:`score_bits` (d) ≤ 64, so none wraps the ring and the sign
   test needs only ℓ bits). x is an owner's own plaintext row; its product with
   the other owner's centroid share uses a matrix triple whose big side is the rows'
   mask: once per job, A sends B E_A = X_A − U_A (U_A pseudorandom from s_AH, so E_A is
   uniform to B), and B sends A E_B likewise. Each iteration a fresh small mask V (d × k,
   from the seed of the owner holding the centroid share) hides the centroid share, F = c
   share − V, and H deals U·V as shares. Reusing U is safe because U never meets anything
   but fresh masks: E is sent once, each F is masked by its own V, and each share of U·V
   by a fresh stream; no combination of them gives B (or A) a linear equation in U alone.
   ‖c_j‖² is a Beaver product of k × d elements.
2. Argmin per row by a tournament over the k scores (k − 1 comparisons, ⌈log2 k⌉ levels,
   ties to the lower index as ``np.argmin``): each comparison is the sign of the
   difference (``Engine.negative``), each winner's score a one-round select; the one-hot
   assignment is built from the comparison bits top-down by ANDs of bits and converted to
   arithmetic shares by daBits.
3. Counts (column sums of the one-hot shares, local) and sums one-hot^T · X: the product
   of one owner's one-hot share with the other's plaintext rows reuses E and U, the
   one-hot share masked by a fresh pseudorandom W (n × k) from the sender's seed with H,
   and H deals W^T·U as shares.
4. Into MPyC: A and B secret-share their ring shares of the k·(d + 1) counts and sums and
   their top bits; the one possible wrap of the two shares (the values are below 2^63) is
   removed by one multiplication (the OR of the top bits, as ``protocols.join.tagged``).
   MPyC divides (:func:`divide`: the empty-cluster rule and final rounding of
   ``kmeans.divide``, the reciprocal normalized from the counts' few bits).
5. Back to the ring: A secret-shares a fresh uniform R < 2^61 per centroid value
   (the values are below 2^21), and B alone receives c + R: statistically within 2^-40 of
   uniform, whatever c is. B's ring share is c + R, A's −R.

What is revealed: the final centroids and cluster sizes, to the analyst, as on the
all-MPyC route. What each party sees (semi-honest, one corrupted party): A and B only
values under fresh masks from seeds they do not hold (``protocols.ring.dealer``), E_A or
E_B once, and c + R (B); H the two seeds and its MPyC shares, never a share of data. The
row counts n_A, n_B are announced (public in the catalog, as today). What breaks:
collusion of H with an owner reconstructs everything (every row's assignment included);
a deviating party changes the result undetectably; an owner colluding with the other
sees the rows — beyond t = 1, as on every route.

Cost per iteration, n = n_A + n_B rows: (k − 1)·n comparisons on ℓ = :func:`score_bits`
bits (46 at d = 5: 87 ANDs each, packed 64 to a word); at d = k = 5 about 175 bytes per
row each way between the owners and 210 from H to B (measured); 9·⌈log2 k⌉ + 2 ring
rounds (the sign test's opening and six AND levels and the select per tournament level,
⌈log2 k⌉ − 1 AND levels and one conversion for the one-hot, the scores' and the sums'
exchanges) plus about 65 of MPyC's division. Per-element Python loops: none; memory is
linear in n (nothing is chunked).
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Any

import numpy as np

from ensnif_mpc.jobs import join_path
from protocols.io import Context
from protocols.models import inputs
from protocols.models.kmeans import BITS, FC, FK, divide as divide_mpc
from protocols.models.secure_math import as_fixed, as_int, shift
from protocols.ring.dealer import ONES, Engine, words

ROUTE = join_path.DEALER  # the manifest names it (ensnif_mpc.jobs.join_path)
MPC_ROUTE = join_path.MPC_ONLY
MASK_BITS = 61  # the statistical mask of step 5: c < 2^21, so c + R hides c within 2^-40
PHASES: dict[str, float] = {}  # wall seconds per step in this process (benchmarks read it)


def score_bits(d: int) -> int:
    """The signed range of a difference of two scores, in bits: ‖c‖² ≤ d·(2^20 + 1)² and
    2^(FC+1)·x·c ≤ d·2^41·(1 + 2^-20) (rows ≤ 2^12, centroids ≤ 2^20 + 1 after the
    division's rounding), so |Δ| < 3d·2^40·(1 + 2^-18) < 2^(40 + ⌈log2(3d + 1)⌉ + 1)."""
    return min(64, 2 * (FK + FC) + math.ceil(math.log2(3 * d + 1)) + 2)


def _lap(name: str, since: float) -> float:
    now = time.perf_counter()
    PHASES[name] = PHASES.get(name, 0.0) + now - since
    return now


def route(n_parties: int, threshold: int, n_owners: int) -> str:
    """The exact release's route, from the session alone (every party decides alike, and
    the manifest says the same: ``join_path.choose``)."""
    return str(join_path.choose("kmeans", n_parties, threshold, n_owners, {}))


def _u64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.int64).view(np.uint64)


class _Rows:
    """What this party holds of the rows: its own grid rows, the other owner's masked rows
    E, and its own mask U (H: both masks)."""

    def __init__(self, engine: Engine, n_a: int, n_b: int, d: int) -> None:
        self.engine, self.n_a, self.n_b, self.d = engine, n_a, n_b, d
        self.x: np.ndarray | None = None
        self.e: np.ndarray | None = None
        self.u: dict[str, np.ndarray] = {}

    async def start(self, x: np.ndarray | None) -> None:
        eng, d = self.engine, self.d
        label = eng.label("U")
        shapes = {"A": (self.n_a, d), "B": (self.n_b, d)}
        for owner in ("A", "B"):
            if eng.role in (owner, "H"):
                self.u[owner] = eng.seeded(owner, label, shapes[owner], "U")
        out: list[np.ndarray] = []
        if eng.role != "H":
            assert x is not None
            self.x = _u64(x)
            with np.errstate(over="ignore"):
                out = [self.x - self.u[eng.role]]
        other = "B" if eng.role == "A" else "A"
        got = await eng.swap("rows", out, [shapes[other]] if eng.role != "H" else None)
        if got:
            self.e = got[0]


async def _scores(eng: Engine, rows: _Rows, c: np.ndarray | None, k: int) -> np.ndarray | None:
    """Shares of ‖c_j‖² − 2^(FC+1)·x·c_j, (n, k), rows of A then rows of B."""
    d, n_a, n_b = rows.d, rows.n_a, rows.n_b
    label = eng.label("score")
    # For A's rows the centroid share to hide is B's (V1 from s_BH); for B's rows A's (V2).
    shapes = [(n_a, k), (n_b, k)]
    if eng.role == "H":
        v1 = eng.seeded("B", label, (d, k), "V")
        v2 = eng.seeded("A", label, (d, k), "V")
        with np.errstate(over="ignore"):
            z1 = rows.u["A"] @ v1 - eng.seeded("A", label, shapes[0], "Z1")
            z2 = rows.u["B"] @ v2 - eng.seeded("A", label, shapes[1], "Z2")
        await eng.correct([z1, z2], shapes)
        await eng.triples((k, d))
        await eng.swap("score", [])
        return None
    got = await eng.correct(None, shapes)
    a, b, t = await eng.triples((k, d))
    assert c is not None and rows.x is not None and rows.e is not None
    with np.errstate(over="ignore"):
        v = eng.seeded(eng.role, label, (d, k), "V")
        f_mine, e_mine, g_mine = c.T - v, c - a, c - b
        f_o, e_o, g_o = await eng.swap("score", [f_mine, e_mine, g_mine])
        e, g = e_mine + e_o, g_mine + g_o
        sq = t + e * b + g * a
        if eng.role == "A":
            sq = sq + e * g
            own = rows.x @ (c.T + f_o) + eng.seeded("A", label, shapes[0], "Z1")
            other = rows.e @ v + eng.seeded("A", label, shapes[1], "Z2")
            xc = np.vstack([own, other])
        else:
            own = rows.x @ (c.T + f_o) + got[1]
            other = rows.e @ v + got[0]
            xc = np.vstack([other, own])
        norms = sq.sum(axis=1, dtype=np.uint64)
        return np.asarray(norms[None, :] - xc * np.uint64(2 << FC))


async def _argmin(
    eng: Engine, scores: np.ndarray | None, n: int, k: int, d: int
) -> np.ndarray | None:
    """One-hot (n, k) arithmetic shares of each row's first smallest score: a tournament."""
    w = words(n)
    pad = w * 64
    vals: list[np.ndarray | None] = [None] * k
    if scores is not None:
        full = np.zeros((pad, k), dtype=np.uint64)
        full[:n] = scores
        vals = [full[:, j : j + 1] for j in range(k)]
    levels: list[list[np.ndarray | None]] = []
    while len(vals) > 1:
        pairs = len(vals) // 2
        lo = hi = diff = None
        if scores is not None:
            lo = np.vstack([vals[2 * i] for i in range(pairs)])  # type: ignore[misc]
            hi = np.vstack([vals[2 * i + 1] for i in range(pairs)])  # type: ignore[misc]
            with np.errstate(over="ignore"):
                diff = (hi - lo).ravel()
        bits = await eng.negative(diff, pairs * pad, score_bits(d))  # 1: the right is smaller
        won = await eng.select(bits, lo, hi, pairs * pad, 1)
        levels.append([None if bits is None else bits[i * w : (i + 1) * w] for i in range(pairs)])
        nxt: list[np.ndarray | None] = [
            None if won is None else won[i * pad : (i + 1) * pad] for i in range(pairs)
        ]
        if len(vals) % 2:
            nxt.append(vals[-1])
        vals = nxt
    # Top-down: the winner of every match is selected where its parent is.
    one = None if scores is None else np.full(w, ONES if eng.role == "A" else 0, dtype=np.uint64)
    sel: list[np.ndarray | None] = [one]
    for depth, matches in enumerate(reversed(levels)):
        pairs = len(matches)
        if depth == 0:
            right = matches
        else:
            x = y = None
            if scores is not None:
                x = np.concatenate([sel[i] for i in range(pairs)])
                y = np.concatenate(matches)
            triple = await eng.bit_triples((pairs * w,))
            both = await eng.band(x, y, triple)
            right = [None if both is None else both[i * w : (i + 1) * w] for i in range(pairs)]
        below: list[np.ndarray | None] = []
        for i in range(pairs):
            parent, r = sel[i], right[i]
            below += [None if r is None or parent is None else parent ^ r, r]
        if len(sel) > pairs:
            below.append(sel[-1])
        sel = below
    planes = None if scores is None else np.stack(sel)  # type: ignore[arg-type]
    onehot = await eng.to_arith(planes, k, pad)
    return None if onehot is None else np.ascontiguousarray(onehot[:, :n].T)


async def _sums(
    eng: Engine, rows: _Rows, onehot: np.ndarray | None, k: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Shares of the per-cluster sums one-hot^T · X (k, d) and counts (k,)."""
    d, n_a, n_b = rows.d, rows.n_a, rows.n_b
    label = eng.label("sums")
    shapes = [(k, d), (k, d)]
    if eng.role == "H":
        w1 = eng.seeded("B", label, (n_a, k), "W")
        w2 = eng.seeded("A", label, (n_b, k), "W")
        with np.errstate(over="ignore"):
            y1 = w1.T @ rows.u["A"] - eng.seeded("A", label, (k, d), "Y1")
            y2 = w2.T @ rows.u["B"] - eng.seeded("A", label, (k, d), "Y2")
        await eng.correct([y1, y2], shapes)
        await eng.swap("sums", [])
        return None
    got = await eng.correct(None, shapes)
    assert onehot is not None and rows.x is not None and rows.e is not None
    mine_rows = onehot[:n_a] if eng.role == "A" else onehot[n_a:]
    other_rows = onehot[n_a:] if eng.role == "A" else onehot[:n_a]
    incoming = (n_a, k) if eng.role == "A" else (n_b, k)
    with np.errstate(over="ignore"):
        mask = eng.seeded(eng.role, label, other_rows.shape, "W")
        (g,) = await eng.swap("sums", [other_rows - mask], [incoming])
        sums = mine_rows.T @ rows.x + g.T @ rows.u[eng.role] + other_rows.T @ rows.e
        if eng.role == "A":
            sums = (
                sums + eng.seeded("A", label, (k, d), "Y1") + eng.seeded("A", label, (k, d), "Y2")
            )
        else:
            sums = sums + got[0] + got[1]
        counts = onehot.sum(axis=0, dtype=np.uint64)
    return sums, counts


async def _into_mpc(ctx: Context, eng: Engine, values: np.ndarray | None, count: int) -> Any:
    """Ring shares of ``count`` values in [0, 2^63) at A and B → MPyC secints."""
    mpc = ctx.mpc
    sint = mpc.SecInt(BITS)
    mine = np.zeros(2 * count, dtype=object)
    if values is not None:
        flat = np.asarray(values, dtype=np.uint64).ravel()
        mine = np.array([int(v) for v in flat] + [int(v) >> 63 for v in flat], dtype=object)
    x_a, x_b = mpc.input(sint.array(mine), senders=[eng.a, eng.b])
    top_a, top_b = x_a[count:], x_b[count:]
    wraps = top_a + top_b - top_a * top_b
    return x_a[:count] + x_b[:count] - wraps * (1 << 64)


async def _from_mpc(ctx: Context, eng: Engine, c: Any, shape: tuple[int, int]) -> np.ndarray | None:
    """MPyC centroids (values in [0, 2^21)) → ring shares: A masks with a fresh R, B gets c + R."""
    mpc = ctx.mpc
    sint = type(c).sectype
    size = shape[0] * shape[1]
    r = np.zeros(size, dtype=object)
    if eng.role == "A":
        raw = np.frombuffer(secrets.token_bytes(8 * size), dtype="<u8") >> np.uint64(64 - MASK_BITS)
        r = np.array([int(v) for v in raw], dtype=object)
    (masked_r,) = mpc.input(sint.array(r), senders=[eng.a])
    opened = await mpc.output(c.reshape(size) + masked_r, receivers=[eng.b])
    if eng.role == "A":
        with np.errstate(over="ignore"):
            return (np.uint64(0) - raw.astype(np.uint64)).reshape(shape)
    if eng.role == "B":
        return np.array([int(v) for v in opened], dtype=np.uint64).reshape(shape)
    return None


NEWTON = 4  # steps from 2.914 − 2b for b in [1/2, 1): error below 2^-32 (MPyC's own count)
FX = 32  # the reciprocal's fractional bits


async def divide(mpc: Any, sums: Any, counts: Any, c: Any, n: int) -> Any:
    """sums / counts at 2^(FK+FC), an empty cluster keeping its centroid ``c`` — as
    ``kmeans.divide`` but with the reciprocal normalized from the counts' l = bit_length(n)
    bits (public n ≥ every count) instead of MPyC's 64-bit normalization of a fixed-point
    number, which was most of its time: N' = N + [N = 0], nf = 2^(l − 1 − ⌊log2 N'⌋) from
    the highest bit, b = N'·nf / 2^l ∈ [1/2, 1), c ≈ 1/b by Newton in SecFxp(64, 32), and
    S/N = S·nf·c / 2^l. The reciprocal keeps 32 significant bits whatever N (kmeans.divide
    keeps 32 fractional ones), so the only error left is the final probabilistic rounding
    at 2^-(FK+FC). Sizes: S·nf·c < 2^(2l + 45) must fit the 96-bit integers: l ≤ 25 (else
    kmeans.divide runs)."""
    sint = type(c).sectype
    width = max(1, n.bit_length())  # l above
    if 2 * width + 46 > BITS or width > FX:
        return await divide_mpc(mpc, sums, counts, c)
    k, d = sums.shape
    empty = counts == 0
    safe = (counts + empty).reshape(k, 1)
    bits = mpc.np_to_bits(safe, width)  # (k, 1, l), low to high
    nf = mpc.np_find(np.flip(bits, axis=-1), 1, cs_f=lambda b, i: (b + 1) * 2**i)
    nf = nf.reshape(k, 1)
    b = await as_fixed(mpc, safe * nf * (1 << (FX - width)), FX)
    r = 2.9142135623731 - b * 2
    for _ in range(NEWTON):
        r *= 2 - r * b
    r_int = await as_int(mpc, sint, r)  # 1/b at 2^FX
    moved = shift(mpc, (sums * nf) * r_int, FX + width - FC)
    keep = empty.reshape(k, 1)
    return moved + keep * (c - moved)


async def kmeans_ring(
    ctx: Context, x: np.ndarray | None, c0: np.ndarray, steps: int
) -> tuple[Any, Any]:
    """The exact iterations on this route. ``x``: this owner's rows on the box grid (int64,
    n × d; None at H); ``c0``: the public initial centroids at 2^(FK+FC) (k × d ints).
    Returns the final centroids (MPyC secints at 2^(FK+FC)) and the cluster sizes."""
    mpc = ctx.mpc
    a, b = ctx.owners
    (h,) = [i for i in range(len(mpc.parties)) if i not in (a, b)]
    k, d = c0.shape
    n_a = await inputs.announce(ctx, 0, None if x is None or ctx.index != a else len(x))
    n_b = await inputs.announce(ctx, 1, None if x is None or ctx.index != b else len(x))
    eng = await Engine.start(mpc, a, b, h)
    rows = _Rows(eng, n_a, n_b, d)
    await rows.start(x)
    c: np.ndarray | None = None
    if eng.role == "A":
        c = _u64(np.asarray(c0, dtype=np.int64))
    elif eng.role == "B":
        c = np.zeros((k, d), dtype=np.uint64)
    sint = mpc.SecInt(BITS)
    c_mpc = sint.array(np.asarray(c0, dtype=object))
    counts_mpc = None
    n = n_a + n_b
    clock = time.perf_counter()
    for t in range(steps):
        scores = await _scores(eng, rows, c, k)
        clock = _lap("scores", clock)
        onehot = await _argmin(eng, scores, n, k, d)
        clock = _lap("argmin", clock)
        got = await _sums(eng, rows, onehot, k)
        clock = _lap("sums", clock)
        flat = None if got is None else np.concatenate([got[0].ravel(), got[1]])
        both = await _into_mpc(ctx, eng, flat, k * (d + 1))
        sums, counts_mpc = both[: k * d].reshape(k, d), both[k * d :]
        c_mpc = await divide(mpc, sums, counts_mpc, c_mpc, n)
        if t + 1 < steps:
            c = await _from_mpc(ctx, eng, c_mpc, (k, d))
        else:
            await mpc.barrier()
        clock = _lap("division (MPyC)", clock)
        ctx.progress("training", 0.1 + 0.8 * (t + 1) / steps)
    eng.write_trace()
    return c_mpc, counts_mpc
