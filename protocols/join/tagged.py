"""The tagged-helper route of intersection_size and intersection_sum: two data owners A, B
and one compute-only helper H, threshold t = 1 (``ensnif_mpc.jobs.join_path``).

What is computed: the number of keys both owners hold and (intersection_sum) the sum of
A's per-key totals and row counts over those keys, exactly as on the PRF route.

How, in order (every party runs every step; "→" is MPyC's point-to-point ``mpc.transfer`` over
the session's mutual-TLS links, which reaches only the named receivers; each call is an
MPyC coroutine that forks its own program-counter label when called, so consecutive
or concurrent transfers from one party to the same peer never share a receive buffer —
tests/protocols/test_transfer_labels.py, and test_tagged_labels.py, which runs these
exchanges under a sender-side and a receiver-side collision detector):

1. Seeds. A draws three fresh 256-bit secrets for this job: the tag key K (A → B only),
   s_AH (A → H) and H draws s_HB (H → B). A transfer reaches only its named receivers:
   H never receives K. From each seed, AES-256-CTR gives a pseudorandom stream.
2. Tags. Each owner pre-aggregates per key, puts its distinct keys in a private uniformly
   random order (a fresh local permutation), and sends H only tag(k), in that order:
   CBC-MAC over AES-256 under a key derived from K of k's prefix-free block encoding,
   truncated to 64 bits (``protocols.tagging.tags``; a PRF, computed for all keys at once
   with one AES call per block position instead of one hash per key in Python).
3. Matching. H computes the selection sel ∈ {0,1}^{n_A} (sel_i = 1 when A's i-th tag is
   among B's) and its count c.
4. The dot product Σ_i v_i·sel_i for each of A's columns v (sum, count), in the ring
   Z_2^64: H sends A u = sel − r with r = stream(s_HB); A sends B w = v − q with
   q = stream(s_AH). Then A holds a = Σ v·u, B holds b = Σ w·r, H holds h = Σ q·r, and
   a + b + h = Σ v·sel (mod 2^64). The arithmetic is numpy on uint64 vectors.
5. Into MPyC (``_into_mpc``). A adds a public offset to its shares (H adds c to the keys
   column). A turns the three additive shares into two: it sends a fresh uniform e to H
   and its share + e to B. B and H secret-share their shares and their top bits; MPyC
   adds them and removes the one possible wrap-around with one multiplication per output
   (the wrap is the OR of the two top bits, since the offset output is below 2^63), no
   comparison, and hands the outputs to the worker (DP noise, sealing) as on every
   route.

Who sees what (semi-honest, one corrupted party, t = 1):
- A: K, s_AH, its own data and u = sel − r. r is pseudorandom under s_HB, which A never
  sees, so u is indistinguishable from uniform: A learns nothing new, not even B's size.
- B: K, s_HB, its own data and w = v − q, pseudorandom under s_AH which B never sees:
  B learns A's number of distinct keys (the length of w) and nothing else.
- H: s_AH, s_HB and the two tag lists. Without K the tags of distinct keys are
  independent random 64-bit strings (CBC-MAC over AES is a PRF on a prefix-free message
  space, and a truncated PRF is a PRF); equal keys give equal tags. Both
  lists are in orders H does not know, so H learns the two sizes, the match count c and
  which of A's random positions matched — a uniformly random c-subset given c, that is,
  nothing beyond c. Its other messages are the shares of step 5.
- Step 5: B sees A's share + e and H sees e, e fresh and uniform, so each sees one
  uniform value; the MPyC part is MPyC's usual t = 1 computation, where a single party
  sees independent shares. The analyst gets only the outputs, sealed (and noised under DP).
So t = 1 suffices: every view above is that of a single party; the route needs the
helper to be a third party distinct from both owners, which is the session's shape.
Compared with the PRF route, where every party learns both sizes and c, the owners learn
less (A nothing, B only A's size) and H the same.

What breaks:
- Collusion of two parties (beyond t = 1, as for every route): A or B with H can tag any
  guessed key and test whether the other owner holds it (a dictionary attack on the
  tags), and learn which of its own keys matched; B with H recovers A's values (w + q).
- Deviation: the helper alone chooses sel. A deviating H can select any subset of A's
  randomly ordered rows — e.g. a single row, so that an exact release shows one key's
  value (DP noise still bounds what any one key's value moves a DP release) — and
  nobody notices. On the PRF route every party matches for itself. An owner whose
  policy forbids this runs the job with ``params.join_path = "prf-shuffle"``.
- Key reuse: K and the seeds are drawn fresh for each job and live only in the workers'
  memory. Tags under a reused K would let H link keys across jobs.
- Tags are 64 bits: two different keys share a tag with probability n_A·n_B / 2^64
  (5·10^-8 at 10^6 keys a side), which would count one key too many.
"""

from __future__ import annotations

import json
import os
import pickle
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from protocols import partitions
from protocols.io import Context, SecureOutput
from protocols.join.common import capped, keyed, row_cap
from protocols.tagging import OFFSET, as_ring, dot, private_order, select, stream, tags

TRACE_ENV = "ENSNIF_TRACE_JOIN"  # tests: each party writes what it held and received
TRACE_FILE = "join_trace.json"


# -- the roles --------------------------------------------------------------------------------
class _Trace:
    """With ENSNIF_TRACE_JOIN=1 (tests only): what this party held and every payload it got."""

    def __init__(self, role: str) -> None:
        self.on = os.environ.get(TRACE_ENV) == "1"
        self.data: dict[str, Any] = {"role": role, "tag_key": None, "received": []}

    def got(self, objs: list[Any]) -> list[Any]:
        if self.on:
            for obj in objs:
                if isinstance(obj, np.ndarray) and obj.dtype != object:
                    raw = obj.tobytes()
                elif isinstance(obj, bytes | bytearray):
                    raw = bytes(obj)
                else:  # the aligned join's tuples and Z_p (object) arrays
                    raw = pickle.dumps(obj)
                self.data["received"].append(raw.hex())
        return objs

    def write(self, mpc: Any) -> None:
        if self.on:
            # Every peer link, which the transfers above used, is a TLS connection.
            self.data["tls_links"] = [
                p.protocol.transport.get_extra_info("ssl_object") is not None
                for p in mpc.parties
                if p.pid != mpc.pid
            ]
            Path(TRACE_FILE).write_text(json.dumps(self.data))


async def transfer(
    mpc: Any, obj: Any, senders: Sequence[int], receivers: Sequence[int]
) -> list[Any]:
    """What this party receives of ``obj`` from ``senders`` (empty unless a receiver)."""
    return list(await mpc.transfer(obj, senders=list(senders), receivers=list(receivers)))


def _roles(ctx: Context) -> tuple[int, int, int]:
    a, b = ctx.owners
    (h,) = [i for i in range(len(ctx.mpc.parties)) if i not in (a, b)]
    return a, b, h


async def _match(
    ctx: Context, keys: np.ndarray | None, trace: _Trace, padding: int = 0
) -> tuple[np.ndarray | None, np.ndarray | None, dict[str, bytes]]:
    """Steps 1–3: seeds, tags, matching. Returns (A's private order or None, H's selection
    or None, the seeds this party holds)."""
    order, received, seeds = await exchange_tags(ctx, keys, trace, padding)
    sel = None
    if received is not None:
        sel = select(*received)
    return order, sel, seeds


async def exchange_tags(
    ctx: Context, keys: np.ndarray | None, trace: _Trace, padding: int = 0
) -> tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray] | None, dict[str, bytes]]:
    """Steps 1–2: seeds and tags. Returns (an owner's private order of its keys or None,
    H's two tag lists (A's, B's; each in its owner's private order) or None, the seeds
    this party holds). ``protocols.join.aligned`` builds on it. ``padding`` (A only, a
    partitioned job): that many dummy entries with fresh random tags after A's keys,
    ordered with them (``protocols.partitions.padding``)."""
    mpc, me = ctx.mpc, ctx.index
    a, b, h = _roles(ctx)
    seeds: dict[str, bytes] = {}
    fresh = {"K": a, "AH": a, "HB": h}
    route = {"K": [b], "AH": [h], "HB": [b]}
    for name, sender in fresh.items():
        mine = secrets.token_bytes(32) if me == sender else None
        got = trace.got(await transfer(mpc, mine, [sender], route[name]))
        if me == sender:
            assert mine is not None
            seeds[name] = mine
        elif me in route[name]:
            seeds[name] = got[0]
    if "K" in seeds:
        trace.data["tag_key"] = seeds["K"].hex()
    order = None
    mine_tags: dict[int, bytes] = {}
    if me in (a, b):
        assert keys is not None
        pad = padding if me == a else 0
        order = private_order(len(keys) + pad)
        own = tags(seeds["K"], keys)
        if pad:
            dummies = np.frombuffer(secrets.token_bytes(8 * pad), dtype="<u8")
            own = np.concatenate([own, dummies])
        mine_tags[me] = own[order].tobytes()  # tag, then reorder the tags
    received = []
    for owner in (a, b):
        got = trace.got(await transfer(mpc, mine_tags.get(owner), [owner], [h]))
        received += got
    if me != h:
        return order, None, seeds
    tags_a, tags_b = (np.frombuffer(t, dtype="<u8") for t in received)
    return order, (tags_a, tags_b), seeds


async def _into_mpc(
    ctx: Context, shares: list[int], trace: _Trace | None = None, bits: int = 64
) -> list[Any]:
    """Step 5: every party's additive shares (one per output, in Z_2^64, summing to the
    output plus OFFSET) into MPyC secints, with one multiplication per output and no
    comparison. (With ``bits = k < 64`` the same in Z_2^k, the offset 2^(k−2) and the
    top bit k − 1: the aligned group-by's smaller ring, ``protocols.join.aligned.Ring2k``.)

    First to two shares: A draws a fresh uniform e, sends e to H and its share + e to B
    (each sees one uniform value), so B holds x_B and H holds x_H with
    x_B + x_H ≡ S (mod 2^64), S = output + OFFSET ∈ [0, 2^63) (the route's integers have
    at most 62 bits). As integers x_B + x_H is S or S + 2^64, and since S's top bit is 0
    the wrap is exactly "x_B's or x_H's top bit is set" (:func:`protocols.tagging.wrap_bit`):
    B and H secret-share their share and its top bit, and
    output = x_B + x_H − 2^64·(β + η − β·η) − OFFSET.
    """
    mpc, me = ctx.mpc, ctx.index
    a, b, h = _roles(ctx)
    count, low = len(shares), np.uint64((1 << bits) - 1)
    ring = np.array([s % (1 << bits) for s in shares], dtype=np.uint64)
    got = (lambda objs: objs) if trace is None else trace.got
    e = np.frombuffer(secrets.token_bytes(8 * count), dtype="<u8") & low if me == a else None
    (e_got,) = got(await transfer(mpc, None if e is None else e.tobytes(), [a], [h])) or [None]
    with np.errstate(over="ignore"):
        to_b = None if e is None else ((ring + e) & low).tobytes()
        (a_got,) = got(await transfer(mpc, to_b, [a], [b])) or [None]
        mine = np.zeros(count, dtype=np.uint64)
        if me == b:
            mine = (ring + np.frombuffer(a_got, dtype="<u8")) & low
        elif me == h:
            mine = (ring - np.frombuffer(e_got, dtype="<u8")) & low
    secint = mpc.SecInt(max(ctx.bit_length, bits + 4))
    values = [int(v) for v in mine] + [int(v) >> (bits - 1) for v in mine]
    x_b, x_h = mpc.input(secint.array(np.array(values, dtype=object)), senders=[b, h])
    top_b, top_h = x_b[count:], x_h[count:]
    wraps = top_b + top_h - top_b * top_h
    offset = OFFSET if bits == 64 else 1 << (bits - 2)
    out = x_b[:count] + x_h[:count] - wraps * (1 << bits) - offset
    return list(out.tolist())


def _owner_a_columns(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """A's distinct keys and its columns (row counts, sums) as a (2, n) int64 matrix,
    over all its rows (a partitioned job splits them in ``_owner_a_input``)."""
    from protocols.join.intersection import _value_where

    assert ctx.local is not None
    agg = keyed(
        ctx.local,
        ["key"],
        measures=[("count", None), ("sum", "value")],
        where=_value_where(ctx.params),
    )
    sums, counts = agg.values["sum:value"], agg.values["count"]
    if ctx.dp:  # bounded contribution per key: what the sensitivity assumes
        counts, sums = capped(sums, counts, row_cap(ctx.params))
    columns = np.array([np.asarray(counts, dtype=np.int64), np.asarray(sums, dtype=np.int64)])
    return agg.keys["key"], columns.reshape(2, -1)


async def _owner_a_input(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """A's keys and columns of this session: all of them, or, in a partitioned job
    (``protocols.partitions.owner_input``: each session reads its own share), its partition's with
    the columns padded with zeros to the partition's public length."""
    keys, columns, total = await partitions.owner_input(
        lambda: _owner_a_columns(ctx), local=ctx.local
    )
    assert columns is not None
    if partitions.current() is not None:
        pad = partitions.padding(total, len(keys))
        columns = np.pad(columns, ((0, 0), (0, pad)))
    return keys, columns


async def _owner_keys(ctx: Context) -> Any:
    """An owner's distinct keys of this session (all, or its partition's)."""
    assert ctx.local is not None
    local = ctx.local
    keys, _, _ = await partitions.owner_input(lambda: (_keys_of(local), None), local=local)
    return keys


def _keys_of(local: Any) -> Any:
    return keyed(local, ["key"]).keys["key"]


# -- the programs -----------------------------------------------------------------------------
async def intersection_size(ctx: Context) -> list[SecureOutput]:
    """Tagged-helper route of ``intersection_size``: the helper inputs its count."""
    mpc, me = ctx.mpc, ctx.index
    a, b, h = _roles(ctx)
    trace = _Trace("helper" if me == h else f"owner{ctx.owners.index(me)}")
    keys = None
    if me in (a, b):
        keys = await _owner_keys(ctx)
    ctx.progress("tagging", 0.3)
    _, sel, _ = await _match(ctx, keys, trace)
    count = int(sel.sum()) if sel is not None else 0
    secint = mpc.SecInt(ctx.bit_length)
    (shared,) = mpc.input([secint(count)], senders=[h])
    trace.write(mpc)
    return [SecureOutput("count", shared[0], on_value_scale=False)]


async def intersection_sum(ctx: Context) -> list[SecureOutput]:
    """Tagged-helper route of ``intersection_sum``: keys, rows and sum over matching keys."""
    mpc, me = ctx.mpc, ctx.index
    a, b, h = _roles(ctx)
    trace = _Trace("helper" if me == h else f"owner{ctx.owners.index(me)}")
    keys: np.ndarray | None = None
    columns = np.zeros((2, 0), dtype=np.int64)
    if me == a:
        keys, columns = await _owner_a_input(ctx)
    elif me == b:
        keys = await _owner_keys(ctx)
    ctx.progress("tagging", 0.3)
    # A partitioned job pads A's vector to a public length (zero columns, random tags).
    pad = columns.shape[1] - len(keys) if me == a and keys is not None else 0
    order, sel, seeds = await _match(ctx, keys, trace, pad)
    ctx.progress("aggregating", 0.6)
    # A → B: w = v − q in A's private order (q from s_AH); H → A: u = sel − r (r from s_HB).
    n_a = columns.shape[1]
    w_bytes = None
    if me == a:
        assert order is not None
        v = as_ring(columns[:, order])
        q = stream(seeds["AH"], b"q", 2 * n_a).reshape(2, n_a)
        w_bytes = (v - q).tobytes()
    (w_got,) = trace.got(await transfer(mpc, w_bytes, [a], [b])) or [None]
    u_bytes = None
    if me == h:
        assert sel is not None
        r = stream(seeds["HB"], b"r", len(sel))
        u_bytes = (sel - r).tobytes()
    (u_got,) = trace.got(await transfer(mpc, u_bytes, [h], [a])) or [None]
    with np.errstate(over="ignore"):
        if me == a:
            u = np.frombuffer(u_got, dtype="<u8")
            shares = [OFFSET, OFFSET + dot(v[0], u), OFFSET + dot(v[1], u)]
        elif me == b:
            w = np.frombuffer(w_got, dtype="<u8").reshape(2, -1)
            r = stream(seeds["HB"], b"r", w.shape[1])
            shares = [0, dot(w[0], r), dot(w[1], r)]
        else:
            assert sel is not None
            r = stream(seeds["HB"], b"r", len(sel))
            q = stream(seeds["AH"], b"q", 2 * len(sel)).reshape(2, len(sel))
            shares = [int(sel.sum()), dot(q[0], r), dot(q[1], r)]
    keys_out, rows_out, sum_out = await _into_mpc(ctx, [s % (1 << 64) for s in shares], trace)
    trace.write(mpc)
    return [
        SecureOutput("keys", keys_out, on_value_scale=False),
        SecureOutput("rows", rows_out, on_value_scale=False),
        SecureOutput("sum", sum_out),
    ]


def takes_route(ctx: Context, protocol: str) -> bool:
    """True when this session runs ``protocol`` on the tagged-helper route (every party
    decides the same from its session: parties, threshold, owners, params, integer size)."""
    from ensnif_mpc.jobs import join_path

    path = join_path.choose(
        protocol,
        len(ctx.mpc.parties),
        ctx.mpc.threshold,
        len(ctx.owners),
        ctx.params,
        ctx.bit_length,
    )
    return path == join_path.TAGGED
