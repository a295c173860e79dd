"""Raw MPyC baseline of the tagged-helper intersection_sum (protocols/join/tagged.py) and,
with ``"protocol": "join_group_by"`` in the job file, of the aligned group-by join
(protocols/join/aligned.py) as plain MPyC programs, no orchestration: owners 0 and 1,
helper 2, threshold 1.

It runs the same local arithmetic (``protocols.tagging``: CBC-MAC-AES tags, AES-CTR streams, the
helper's selection, dot products in Z_2^64) and the same transfers, then opens the three
sums to every party (a raw program's output) instead of sealing shares to an analyst. Each
owner reads its own CSV and pre-aggregates per key with Arrow; every party prints its time
per phase.

    python bench/raw_join_fast.py JOB_JSON -I i -P host:port ... --ssl --no-log
"""

import secrets

import rawkit

job = rawkit.setup()

import numpy as np  # noqa: E402
from mpyc.runtime import mpc  # noqa: E402  (after setup: MPyC parses sys.argv on import)

from protocols import tagging, transport_stats  # noqa: E402  (numpy, hashlib, cryptography)

COUNTS = transport_stats.install()  # rounds counted as the worker counts them

A_SPEC, B_SPEC = job["owners"]
DECIMALS = job["decimals"]
A, B, H = 0, 1, 2
clock = rawkit.Clock()


async def transfer(obj, sender, receiver):
    return await mpc.transfer(obj, senders=[sender], receivers=[receiver])


async def into_mpc(shares: list[int], bits: int = 64):
    """Three additive shares in Z_2^bits (A's with the offset 2^(bits-2)) to secints: A
    sends B its share + e and H e; B and H input theirs and their top bits; the wrap is
    their OR."""
    count, low = len(shares), np.uint64((1 << bits) - 1)
    ring = np.array([s % (1 << bits) for s in shares], dtype=np.uint64)
    e = np.frombuffer(secrets.token_bytes(8 * count), "<u8") & low if mpc.pid == A else None
    e_got = await transfer(None if e is None else e.tobytes(), A, H)
    with np.errstate(over="ignore"):
        a_got = await transfer(None if e is None else ((ring + e) & low).tobytes(), A, B)
        mine = np.zeros(count, dtype=np.uint64)
        if mpc.pid == B:
            mine = (ring + np.frombuffer(a_got[0], "<u8")) & low
        elif mpc.pid == H:
            mine = (ring - np.frombuffer(e_got[0], "<u8")) & low
    secint = mpc.SecInt(bits + 4)
    values = [int(v) for v in mine] + [int(v) >> (bits - 1) for v in mine]
    x_b, x_h = mpc.input(secint.array(np.array(values, dtype=object)), senders=[B, H])
    wraps = x_b[count:] + x_h[count:] - x_b[count:] * x_h[count:]
    return x_b[:count] + x_h[:count] - wraps * (1 << bits) - (1 << (bits - 2))


def narrow(x, width: int):
    """Ring elements as sent in Z_2^(8·width): each uint64's low ``width`` bytes."""
    rows, cols = x.shape
    return np.ascontiguousarray(x.view(np.uint8).reshape(rows, cols, 8)[..., :width])


def widen(x, width: int):
    """The inverse of :func:`narrow`: (rows, cols) uint64 with the top bytes zero."""
    rows, cols = x.shape[:2]
    full = np.zeros((rows, cols, 8), dtype=np.uint8)
    full[..., :width] = x
    return full.view("<u8").reshape(rows, cols)


def per_key(owner: dict, value: bool):
    import pyarrow as pa

    names = [owner["key"]] + ([owner["value"]] if value else [])
    table = rawkit.read(owner["file"], names, strings=(owner["key"],))
    columns = {"key": table.column(owner["key"])}
    if value:
        columns["v"] = pa.array(rawkit.scaled(table, owner["value"], DECIMALS))
    aggregates = ([("v", "sum")] if value else []) + [([], "count_all")]
    return pa.table(columns).group_by(["key"]).aggregate(aggregates)


async def main() -> None:
    await mpc.start()
    clock.lap("start")
    me = mpc.pid
    keys, columns = None, np.zeros((2, 0), dtype=np.int64)
    if me == A:
        t = per_key(A_SPEC, True)
        keys = t.column("key").to_pylist()
        columns = np.array(
            [t.column("count_all").to_numpy(), t.column("v_sum").to_numpy()], dtype=np.int64
        )
    elif me == B:
        keys = per_key(B_SPEC, False).column("key").to_pylist()
    clock.lap("read")
    seeds = {}
    for name, sender, receiver in (("K", A, B), ("AH", A, H), ("HB", H, B)):
        mine = secrets.token_bytes(32) if me == sender else None
        got = await transfer(mine, sender, receiver)
        seeds[name] = mine if me == sender else (got[0] if got else None)
    order = None
    mine_tags = None
    if me in (A, B):
        order = tagging.private_order(len(keys))
        mine_tags = tagging.tags(seeds["K"], keys)[order].tobytes()
    clock.lap("tags")
    got_a = await transfer(mine_tags if me == A else None, A, H)
    got_b = await transfer(mine_tags if me == B else None, B, H)
    sel = None
    if me == H:
        sel = tagging.select(np.frombuffer(got_a[0], "<u8"), np.frombuffer(got_b[0], "<u8"))
    clock.lap("match")
    n_a = columns.shape[1]
    w = None
    if me == A:
        v = tagging.as_ring(columns[:, order])
        w = (v - tagging.stream(seeds["AH"], b"q", 2 * n_a).reshape(2, n_a)).tobytes()
    w_got = await transfer(w, A, B)
    u = None
    if me == H:
        u = (sel - tagging.stream(seeds["HB"], b"r", len(sel))).tobytes()
    u_got = await transfer(u, H, A)
    if me == A:
        uu = np.frombuffer(u_got[0], "<u8")
        shares = [tagging.OFFSET, tagging.OFFSET + tagging.dot(v[0], uu)]
        shares.append(tagging.OFFSET + tagging.dot(v[1], uu))
    elif me == B:
        ww = np.frombuffer(w_got[0], "<u8").reshape(2, -1)
        r = tagging.stream(seeds["HB"], b"r", ww.shape[1])
        shares = [0, tagging.dot(ww[0], r), tagging.dot(ww[1], r)]
    else:
        r = tagging.stream(seeds["HB"], b"r", len(sel))
        q = tagging.stream(seeds["AH"], b"q", 2 * len(sel)).reshape(2, len(sel))
        shares = [int(sel.sum()), tagging.dot(q[0], r), tagging.dot(q[1], r)]
    clock.lap("dot products")
    matched, rows, total = (int(x) for x in await mpc.output(await into_mpc(shares)))
    clock.lap("into MPyC and open")
    sent = rawkit.bytes_sent(mpc)
    await mpc.shutdown()
    total_value = total / 10**DECIMALS
    rawkit.report(
        {
            "keys": matched,
            "rows": rows,
            "sum": total_value,
            "mean": total_value / rows if rows else float("nan"),
            "mpc_rounds": COUNTS.rounds,
        },
        sent,
        clock,
    )


def pivot_b(owner: dict, groups: list[str]):
    """B's distinct keys and its [counts by group | sums by group] table (int64)."""
    import pyarrow as pa

    table = rawkit.read(
        owner["file"],
        [owner["key"], owner["group"], owner["value"]],
        strings=(owner["key"], owner["group"]),
    )
    columns = {
        "key": table.column(owner["key"]),
        "g": table.column(owner["group"]),
        "v": pa.array(rawkit.scaled(table, owner["value"], DECIMALS)),
    }
    agg = pa.table(columns).group_by(["key", "g"]).aggregate([("v", "sum"), ([], "count_all")])
    labels = np.array(agg.column("g").to_pylist(), dtype=object)
    keep = np.isin(labels, groups)
    col = np.searchsorted(np.array(groups, dtype=object), labels[keep])
    keys, row = np.unique(
        np.array(agg.column("key").to_pylist(), dtype=object)[keep], return_inverse=True
    )
    out = np.zeros((len(keys), 2 * len(groups)), dtype=np.int64)
    out[row, col] = agg.column("count_all").to_numpy()[keep]
    out[row, col + len(groups)] = agg.column("v_sum").to_numpy()[keep]
    return keys.tolist(), out


async def group_by_main() -> None:
    """σ1 (A, H) then σ2 = σ1⁻¹∘τ (H, B) carry A's flags to B's keys; one product with
    B's pivoted table in Z_2^k (k the whole bytes of the job's bit_length, as the protocol:
    k/8 bytes an element sent); 2·|groups| outputs into MPyC and opened."""
    import hashlib

    from protocols.shuffle import permutation

    await mpc.start()
    clock.lap("start")
    me = mpc.pid
    groups = sorted(str(g) for g in job["params"]["groups"])
    ring = tagging.Ring64()
    bits = min(64, 8 * -(-int(job.get("bit_length", 64)) // 8))
    width = bits // 8  # bytes an element on the wire
    keys, flags, table = None, None, None
    if me == A:
        t = per_key(A_SPEC, True)
        keys = t.column("key").to_pylist()
        cut = round(job["params"]["threshold"] * 10**DECIMALS)
        flags = (t.column("v_sum").to_numpy() > cut).astype(np.int64)[:, None]
    elif me == B:
        keys, table = pivot_b(B_SPEC, groups)
    clock.lap("read")
    sizes = [len(keys) if me == owner else None for owner in (A, B)]
    n_a, n_b = [(await mpc.transfer(sizes[i], senders=[o]))[0] for i, o in enumerate((A, B))]
    seeds = {}
    for name, sender, receiver in (("K", A, B), ("AH", A, H), ("HB", H, B)):
        mine = secrets.token_bytes(32) if me == sender else None
        got = await transfer(mine, sender, receiver)
        seeds[name] = mine if me == sender else (got[0] if got else None)
    order = mine_tags = None
    if me in (A, B):
        order = tagging.private_order(len(keys))
        mine_tags = tagging.tags(seeds["K"], keys)[order].tobytes()
    clock.lap("tags")
    got_a = await transfer(mine_tags if me == A else None, A, H)
    got_b = await transfer(mine_tags if me == B else None, B, H)
    n = n_a + n_b
    if me in (A, H):
        sigma1 = permutation(hashlib.sha256(b"sigma1" + seeds["AH"]).digest(), n)
        mask_r = ring.mask(seeds["AH"], b"R", (n, 1))
        mask_c = ring.mask(seeds["AH"], b"C", (n_b, 1))
    z = None
    if me == A:
        padded = np.concatenate([ring.encode(flags[order]), ring.zeros((n_b, 1))])
        z = narrow(ring.sub(padded[sigma1], mask_r), width)
    z_got = await transfer(z, A, B)
    to_b = None
    if me == H:
        tau = tagging.partners(np.frombuffer(got_a[0], "<u8"), np.frombuffer(got_b[0], "<u8"))
        tau = np.where(tau >= 0, tau, n_a + np.arange(n_b))
        inverse = np.empty(n, dtype=np.int64)
        inverse[sigma1] = np.arange(n)
        sigma2 = inverse[tau].astype(np.uint32)
        to_b = (sigma2, narrow(ring.sub(mask_r[sigma2], mask_c), width))
    got = await transfer(to_b, H, B)
    clock.lap("align")
    columns = 2 * len(groups)
    mask_m = ring.mask(seeds["HB"], b"M", (n_b, columns)) if me in (B, H) else None
    w = None
    if me == B:
        w = ring.encode(table[order])
    sent = narrow(ring.sub(w, mask_m), width) if me == B else None
    w_got = await transfer(sent, B, A)
    if me == B:
        sigma2, correction = got[0]
        y_b = ring.add(widen(z_got[0], width)[sigma2], widen(correction, width))
        share = ring.cross(y_b, w)
    elif me == A:
        share = ring.cross(mask_c, widen(w_got[0], width))
    else:
        share = ring.cross(mask_c, mask_m)
    shares = [v % (1 << bits) for v in ring.ints(share[0])]
    if me == A:
        shares = [(s + (1 << (bits - 2))) % (1 << bits) for s in shares]
    clock.lap("products")
    opened = [int(x) for x in await mpc.output(await into_mpc(shares, bits))]
    clock.lap("into MPyC and open")
    sent = rawkit.bytes_sent(mpc)
    await mpc.shutdown()
    result = {}
    for i, g in enumerate(groups):
        result[f"count[{g}]"] = opened[i]
        result[f"sum[{g}]"] = opened[len(groups) + i] / 10**DECIMALS
    result["mpc_rounds"] = COUNTS.rounds
    rawkit.report(result, sent, clock)


mpc.run(group_by_main() if job.get("protocol") == "join_group_by" else main())
