"""Raw MPyC baseline for the private joins intersection_sum and join_group_by: the pipeline
of protocols/join.py written as a plain MPyC program, no orchestration.

It reuses the join's building blocks — ``protocols.prf`` (key hashing, the shared PRF
key, Dodis–Yampolskiy pseudonyms on secp256k1) and ``protocols.shuffle`` (the resharing
shuffle) — so that the difference with a full Ensnif job is the orchestration, not the
cryptography. The matching of ``protocols.join`` is written out: importing that module
would bring Ensnif's data layer (0.3 s of imports). Each owner reads its own CSV and pre-aggregates
per key with Arrow; every party prints its time per phase.

    python bench/raw_join.py JOB_JSON -I i -P host:port ... --ssl --no-log
"""

from decimal import ROUND_FLOOR, Decimal

import rawkit

job = rawkit.setup()

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
from mpyc.runtime import mpc  # noqa: E402  (after setup: MPyC parses sys.argv on import)

from protocols import prf  # noqa: E402  (prf and shuffle import only numpy and hashlib)
from protocols.shuffle import Shuffler  # noqa: E402

PROTOCOL, BITS, DECIMALS = job["protocol"], job["bit_length"], job["decimals"]
A, B = job["owners"]
clock = rawkit.Clock()


def per_key(owner: dict, values: dict[str, int], by: tuple[str, ...] = ("key",)) -> pa.Table:
    """GROUP BY the owner's roles ``by`` with count and exact sums of the given columns
    (column -> decimals): the owner's local pre-aggregation."""
    names = [owner[r] for r in by]
    table = rawkit.read(owner["file"], names + list(values), strings=tuple(names))
    columns = {r: table.column(owner[r]) for r in by}
    columns.update({c: pa.array(rawkit.scaled(table, c, d)) for c, d in values.items()})
    aggregates = [(c, "sum") for c in values] + [([], "count_all")]
    return pa.table(columns).group_by(list(by)).aggregate(aggregates)


async def announce(owner: int, value: int | None) -> int:
    got = await mpc.transfer(value if mpc.pid == owner else None, senders=[owner])
    return int(got[0] if isinstance(got, list) else got)


def share(owner: int, sectype, data, shape: tuple):
    values = data if mpc.pid == owner else np.zeros(shape, dtype=object)
    return mpc.input(sectype.array(np.asarray(values, dtype=object)), senders=[owner])[0]


def match(ps_a: np.ndarray, ps_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As protocols.join.match: positions with equal pseudonyms, by a sort and a binary
    search (A's pseudonyms are unique after pre-aggregation)."""
    if len(ps_a) == 0 or len(ps_b) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(ps_a, kind="stable")
    ordered = ps_a[order]
    pos = np.minimum(np.searchsorted(ordered, ps_b), len(ordered) - 1)
    hit = ordered[pos] == ps_b
    return order[pos[hit]], np.nonzero(hit)[0]


def threshold_flags(totals: list[int], threshold: float, decimals: int) -> np.ndarray:
    """1 where a key's scaled total exceeds the threshold, compared exactly on the scale."""
    cut = int(Decimal(repr(float(threshold))).scaleb(decimals).to_integral_value(ROUND_FLOOR))
    return np.array([1 if int(v) > cut else 0 for v in totals], dtype=object)


_reciprocal = prf.reciprocal


async def _timed_reciprocal(runtime, a):
    """prf.reciprocal, timed apart from the point work of prf.pseudonyms that follows it."""
    clock.lap("prf: shared key")
    out = await _reciprocal(runtime, a)
    clock.lap("prf: reciprocal (mask, multiply, open, invert)")
    return out


prf.reciprocal = _timed_reciprocal


async def pseudonymize(key_a, key_b):
    k = await prf.random_key(mpc, type(key_a).sectype)
    ps = await prf.pseudonyms(mpc, mpc.np_concatenate((key_a, key_b)), k)
    clock.lap("prf: points (publish, transfer, combine)")
    return ps[: len(key_a)], ps[len(key_a) :]


async def intersection_sum(secfld, secint) -> dict[str, float]:
    mine_a = mine_b = None
    if mpc.pid == 0:
        t = per_key(A, {A["value"]: DECIMALS})
        sums = np.array(t.column(f"{A['value']}_sum").to_pylist(), dtype=object)
        counts = np.array(t.column("count_all").to_pylist(), dtype=object)
        clock.lap("read")
        mine_a = (prf.hash_keys(np.array(t.column("key").to_pylist(), dtype=object)), sums, counts)
    if mpc.pid == 1:
        t = per_key(B, {})
        clock.lap("read")
        mine_b = prf.hash_keys(np.array(t.column("key").to_pylist(), dtype=object))
    clock.lap("hash")
    n_a = await announce(0, None if mine_a is None else len(mine_a[0]))
    n_b = await announce(1, None if mine_b is None else len(mine_b))
    key_a = share(0, secfld, None if mine_a is None else mine_a[0], (n_a,))
    sum_a = share(0, secint, None if mine_a is None else mine_a[1], (n_a,))
    cnt_a = share(0, secint, None if mine_a is None else mine_a[2], (n_a,))
    key_b = share(1, secfld, mine_b, (n_b,))
    await mpc.gather([key_a, sum_a, cnt_a, key_b])
    clock.lap("input")
    key_a, sum_a, cnt_a = await Shuffler(mpc).apply([key_a, sum_a, cnt_a])
    (key_b,) = await Shuffler(mpc).apply([key_b])
    await mpc.gather([key_a, sum_a, cnt_a, key_b])
    clock.lap("shuffle")
    ps_a, ps_b = await pseudonymize(key_a, key_b)
    ia, _ = match(ps_a, ps_b)
    clock.lap("match")
    rows, total = await mpc.output([mpc.np_sum(cnt_a[ia]), mpc.np_sum(sum_a[ia])])
    clock.lap("aggregate")
    rows, total = int(rows), int(total) / 10**DECIMALS
    return {
        "keys": len(ia),
        "rows": rows,
        "sum": total,
        "mean": total / rows if rows else float("nan"),
        "distinct_keys_a": n_a,
        "distinct_keys_b": n_b,
    }


async def join_group_by(secfld, secint) -> dict[str, float]:
    groups = [str(g) for g in job["params"]["groups"]]
    width = 2 * len(groups)
    mine_a = mine_b = None
    if mpc.pid == 0:
        t = per_key(A, {A["filter"]: job["filter_decimals"]})
        flags = threshold_flags(
            t.column(f"{A['filter']}_sum").to_pylist(),
            job["params"]["threshold"],
            job["filter_decimals"],
        )
        clock.lap("read")
        mine_a = (prf.hash_keys(np.array(t.column("key").to_pylist(), dtype=object)), flags)
    if mpc.pid == 1:
        t = per_key(B, {B["value"]: DECIMALS}, by=("key", "group"))
        t = t.filter(pc.is_in(t.column("group"), pa.array(groups)))
        column = {g: i for i, g in enumerate(groups)}
        cols = np.array([column[g] for g in t.column("group").to_pylist()], dtype=np.int64)
        weights = np.zeros((len(cols), width), dtype=object)
        weights[:] = 0
        rows = np.arange(len(cols))
        weights[rows, cols] = t.column("count_all").to_pylist()
        weights[rows, cols + len(groups)] = t.column(f"{B['value']}_sum").to_pylist()
        clock.lap("read")
        mine_b = (prf.hash_keys(np.array(t.column("key").to_pylist(), dtype=object)), weights)
    clock.lap("hash")
    n_a = await announce(0, None if mine_a is None else len(mine_a[0]))
    n_b = await announce(1, None if mine_b is None else len(mine_b[0]))
    key_a = share(0, secfld, None if mine_a is None else mine_a[0], (n_a,))
    flag_a = share(0, secint, None if mine_a is None else mine_a[1], (n_a,))
    key_b = share(1, secfld, None if mine_b is None else mine_b[0], (n_b,))
    weights_b = share(1, secint, None if mine_b is None else mine_b[1], (n_b, width))
    await mpc.gather([key_a, flag_a, key_b, weights_b])
    clock.lap("input")
    key_a, flag_a = await Shuffler(mpc).apply([key_a, flag_a])
    shuffle_b = Shuffler(mpc)
    (key_b,) = await shuffle_b.apply([key_b])
    await mpc.gather([key_a, flag_a, key_b])
    clock.lap("shuffle")
    ps_a, ps_b = await pseudonymize(key_a, key_b)
    ia, ib = match(ps_a, ps_b)
    clock.lap("match")
    selector = mpc.np_update(secint.array(np.zeros(n_b, dtype=object)), ib, flag_a[ia])
    (selector,) = await shuffle_b.apply([selector], inverse=True)
    totals = await mpc.output(mpc.np_matmul(selector, weights_b))
    clock.lap("aggregate")
    out: dict[str, float] = {"distinct_keys_a": n_a, "rows_b": n_b}
    for i, g in enumerate(groups):
        count, total = int(totals[i]), int(totals[len(groups) + i]) / 10**DECIMALS
        out[f"count[{g}]"] = count
        out[f"sum[{g}]"] = total
        out[f"mean[{g}]"] = total / count if count else float("nan")
    return out


async def main() -> None:
    await mpc.start()
    clock.lap("start")
    secfld, secint = mpc.SecFld(prf.Q), mpc.SecInt(BITS)
    program = intersection_sum if PROTOCOL == "intersection_sum" else join_group_by
    outputs = await program(secfld, secint)
    sent = rawkit.bytes_sent(mpc)
    await mpc.shutdown()
    rawkit.report(outputs, sent, clock)


mpc.run(main())
