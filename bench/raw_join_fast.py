"""Raw MPyC baseline of the tagged-helper intersection_sum (protocols/join/tagged.py) as a plain
MPyC program, no orchestration: owners 0 and 1, helper 2, threshold 1.

It runs the same local arithmetic (``protocols.tagging``: HMAC tags, AES-CTR streams, the
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

from protocols import tagging  # noqa: E402  (numpy, hashlib and cryptography only)

A_SPEC, B_SPEC = job["owners"]
DECIMALS = job["decimals"]
A, B, H = 0, 1, 2
clock = rawkit.Clock()


async def transfer(obj, sender, receiver):
    return await mpc.transfer(obj, senders=[sender], receivers=[receiver])


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
        mine_tags = tagging.tags(seeds["K"], [keys[i] for i in order.tolist()]).tobytes()
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
    secint = mpc.SecInt(68)
    inputs = mpc.input([secint(s % (1 << 64)) for s in shares], senders=[A, B, H])
    out = []
    for j in range(3):
        s = mpc.sum([inputs[p][j] for p in (A, B, H)])
        out.append(s - ((s >= 1 << 64) + (s >= 1 << 65)) * (1 << 64) - tagging.OFFSET)
    matched, rows, total = (int(x) for x in await mpc.output(out))
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
        },
        sent,
        clock,
    )


mpc.run(main())
