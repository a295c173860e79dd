"""What every private join shares: the roles, the owners' per-key inputs, pseudonymization
by a PRF after the resharing shuffle, matching in the clear, and per-key contribution
bounding for the DP releases. The pipeline and its leakage are in ``protocols.join``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ensnif_mpc.errors import InvalidJobSpec
from protocols.io import Context
from protocols.registry import (
    KEY_TYPES,
    NUMERIC,
    Role,
)

KEY = Role(
    "key", KEY_TYPES, "the join key (e.g. a customer id); int or string, same type on both sides"
)
VALUE = Role("value", NUMERIC, "the numeric column to aggregate over matching keys")
GROUP = Role("group", frozenset({"int", "string"}), "the categorical group-by column")
FILTER = Role(
    "filter",
    NUMERIC,
    "a column its owner thresholds locally per key (params.threshold)",
    required=False,
)


# -- the shared machinery ---------------------------------------------------------------
async def _announce(ctx: Context, position: int, value: int | None) -> int:
    """A public size announced by the owner at ``position`` (every party takes part)."""
    owner = ctx.owners[position]
    got = await ctx.mpc.transfer(value if ctx.index == owner else None, senders=[owner])
    return int(got[0] if isinstance(got, list) else got)


def _input(
    ctx: Context, position: int, sectype: Any, data: np.ndarray | None, shape: tuple[int, ...]
) -> Any:
    """The owner at ``position`` secret-shares ``data``; the others pass a placeholder."""
    owner = ctx.owners[position]
    values = data if ctx.index == owner else np.zeros(shape, dtype=object)
    return ctx.mpc.input(sectype.array(np.asarray(values, dtype=object)), senders=[owner])[0]


def match(ps_a: np.ndarray, ps_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (ia, ib) with ps_a[ia] == ps_b[ib]; A's pseudonyms are unique.

    A sort and a binary search over public pseudonyms: O((n + m) log n).
    """
    if len(ps_a) == 0 or len(ps_b) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    order = np.argsort(ps_a, kind="stable")
    ordered = ps_a[order]
    if np.any(ordered[1:] == ordered[:-1]):
        raise ArithmeticError("two keys of one owner share a pseudonym after pre-aggregation")
    pos = np.minimum(np.searchsorted(ordered, ps_b), len(ordered) - 1)
    hit = ordered[pos] == ps_b
    ib = np.nonzero(hit)[0]
    return order[pos[hit]], ib


async def _pseudonymize(ctx: Context, keys_a: Any, keys_b: Any) -> tuple[np.ndarray, np.ndarray]:
    from protocols import prf

    mpc = ctx.mpc
    secfld = type(keys_a).sectype if hasattr(type(keys_a), "sectype") else type(keys_a)
    k = await prf.random_key(mpc, secfld)
    both = mpc.np_concatenate((keys_a, keys_b))
    ps = await prf.pseudonyms(mpc, both, k)
    return ps[: len(keys_a)], ps[len(keys_a) :]


def _secfld(ctx: Context) -> Any:
    from protocols import prf

    return ctx.mpc.SecFld(prf.Q)


def _hashed(keys: np.ndarray) -> np.ndarray:
    from protocols import prf

    return prf.hash_keys(keys)


def keyed(local: Any, by: list[str], **kwargs: Any) -> Any:
    """The owner's per-key pre-aggregation, without groups whose key is missing.

    A row with no key (NULL, or an empty string in a CSV) cannot be joined; two
    owners' empty keys must not match each other. Such rows are left out here.
    """
    from ensnif_mpc.data.sources import Aggregate

    agg = local.aggregate(by=by, **kwargs)
    keys = agg.keys["key"]
    if keys.dtype.kind in "iu":  # an int column has no missing keys
        return agg
    cells = np.asarray(keys, dtype=object)
    missing = np.full(len(cells), None, dtype=object)  # elementwise, no loop over keys
    present = np.asarray((cells != missing) & (cells != ""), dtype=bool)
    if present.all():
        return agg
    return Aggregate(
        keys={r: v[present] for r, v in agg.keys.items()},
        values={m: v[present] for m, v in agg.values.items()},
        rows=agg.rows,
        groups=int(present.sum()),
    )


def _select_sum(ctx: Context, array: Any, idx: np.ndarray, sectype: Any) -> Any:
    if len(idx) == 0:
        return sectype(0)
    return ctx.mpc.np_sum(array[idx])


# -- contribution bounding for the DP releases -----------------------------------------------
CAP = "max_rows_per_key"


def row_cap(params: Mapping[str, Any]) -> int:
    """The most rows one key contributes to a DP release (params.max_rows_per_key, default 1)."""
    cap = params.get(CAP, 1)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise InvalidJobSpec(f"params.{CAP}: expected a positive integer, got {cap!r}")
    return cap


def _scaled_sums(sums: np.ndarray, counts: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """s·a/n rounded half up, (2·s·a + n) // (2·n), and 0 where n = 0: exact Python ints
    (numpy's object arithmetic, one call per operation, not one loop per row)."""
    n = np.asarray(counts, dtype=object)
    s = np.asarray(sums, dtype=object)
    a = np.asarray(kept, dtype=object)
    empty = np.asarray(counts, dtype=np.int64) == 0
    denominator = np.where(empty, 1, n)
    out = (2 * s * a + n) // (2 * denominator)
    out[empty] = 0
    return np.asarray(out, dtype=object)


def capped(sums: np.ndarray, counts: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Per key: its count capped at ``cap`` and its sum scaled to that count, keeping the
    key's mean (rounded half up): a key with n rows of sum s counts a = min(n, cap) rows
    of sum s·a/n. Exact integers."""
    n = np.asarray(counts, dtype=np.int64).reshape(-1)
    if len(n) != len(np.asarray(sums, dtype=object).reshape(-1)):
        raise ValueError("capped: sums and counts differ in length")
    a = np.minimum(n, cap)
    return a.astype(object), _scaled_sums(np.asarray(sums, dtype=object).reshape(-1), n, a)


def cap_per_key(
    keys: np.ndarray, columns: np.ndarray, counts: np.ndarray, sums: np.ndarray, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """(key, group) rows capped so that a key counts at most ``cap`` rows over all groups.

    Greedy in the listed groups' order: each (key, group) row keeps a = min(n, what the key
    has left) of its n rows and the sum s·a/n (its mean kept, rounded half up). Rows stay
    in the table (with zeros where nothing is left), so the table's shape is unchanged.

    Vectorized: with the rows sorted by (key, group), what a key has left before a row is
    cap − min(cap, the key's rows in its earlier groups), since the greedy fill keeps
    every earlier row whole until the cap is reached.
    """
    n = np.asarray(counts, dtype=np.int64).reshape(-1)
    if len(n) == 0:
        return np.zeros(0, dtype=object), np.zeros(0, dtype=object)
    _, key_id = np.unique(np.asarray(keys), return_inverse=True)
    key_id = key_id.reshape(-1)
    order = np.lexsort((np.asarray(columns, dtype=np.int64), key_id))
    ids, rows = key_id[order], n[order]
    before = np.cumsum(rows) - rows  # rows of every earlier (key, group) in this order
    first = np.ones(len(ids), dtype=bool)
    first[1:] = ids[1:] != ids[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(len(ids)), 0))
    earlier = before - before[start]  # the same key's rows in its earlier groups
    kept_sorted = np.minimum(rows, np.maximum(cap - earlier, 0))
    kept = np.empty(len(n), dtype=np.int64)
    kept[order] = kept_sorted
    return kept.astype(object), _scaled_sums(np.asarray(sums, dtype=object).reshape(-1), n, kept)
