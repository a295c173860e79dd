"""Raw MPyC baseline for the vertical regression (protocols/models/vertical.py): the same
secure types (secure integers of the session's bit length for the cross products, fixed
point with 48 fractional bits for the solve) and the same arithmetic after the join, but
NO private join: the owners' key lists are public here, every party matches them in the
clear, and each owner secret-shares only its matched rows in that public order. So the
gap to the Ensnif job is the private join (tagging, the helper's matching, the two
resharings) plus orchestration; no singular check, no standard errors.

    python bench/raw_vertical.py JOB_JSON -I i -P host:port ... --ssl --no-log
"""

import rawkit

job = rawkit.setup()

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from mpyc.runtime import mpc  # noqa: E402  (after setup: MPyC parses sys.argv on import)

DA, DB, DECIMALS, BITS, RIDGE = (
    job["da"],
    job["db"],
    job["decimals"],
    job["bit_length"],
    job["ridge"],
)
BOUNDS = job["bounds"]  # public: per column of Z its grid bound (A's, B's, the label)
F = 48


async def main() -> None:
    clock = rawkit.Clock()
    await mpc.start()
    clock.lap("connect")
    d = DA + DB
    w = d + 1
    sint = mpc.SecInt(BITS)
    mine = None
    if mpc.pid < 2:
        table = pq.read_table(job["files"][mpc.pid]).to_pandas()
        mine = table.sort_values("key")
    keys = await mpc.transfer(None if mine is None else mine["key"].to_numpy(), senders=[0, 1])
    common, ia, ib = np.intersect1d(keys[0], keys[1], return_indices=True)
    m = len(common)
    parts = []
    for owner, (idx, cols) in enumerate(((ia, job["columns"][0]), (ib, job["columns"][1]))):
        rows = np.zeros((m, len(cols)), dtype=object)
        if mpc.pid == owner:
            assert mine is not None
            grid = np.rint(mine[cols].to_numpy() * 10**DECIMALS).astype(np.int64)
            rows = grid[idx].astype(object)
        parts.append(mpc.input(sint.array(rows), senders=owner))
    clock.lap("local")
    z = mpc.np_hstack(parts)
    gram = mpc.np_matmul(mpc.np_transpose(z), z)
    sums = mpc.np_sum(z, axis=0)
    wide, fx = mpc.SecFxp(BITS + F + 8, F), mpc.SecFxp(2 * F, F)  # 2f bits for 1/x
    r = max(1, m.bit_length())
    e = [b.bit_length() for b in BOUNDS]

    def scale(x, k):  # x · 2^-k in steps exact in fixed point
        while k > F // 2:
            x, k = x * 2.0 ** -(F // 2), k - F // 2
        return x * 2.0**-k

    flat = mpc.convert(mpc.np_tolist(mpc.np_reshape(gram, (w * w,))), wide)
    q = mpc.np_fromlist(
        mpc.convert(
            [scale(flat[j * w + c], r + e[j] + e[c]) for j in range(w) for c in range(w)], fx
        )
    ).reshape(w, w)
    t = mpc.np_fromlist(
        mpc.convert(
            [scale(v, r + e[j]) for j, v in enumerate(mpc.convert(mpc.np_tolist(sums), wide))], fx
        )
    )
    n = fx(m * 2.0**-r)
    s = q - mpc.np_outer(t, t / n)
    penalty = np.array([RIDGE * 10 ** (2 * DECIMALS) / 2.0 ** (r + 2 * e[j]) for j in range(d)])
    a = mpc.np_hstack((s[:d, :d] + np.diag(penalty), s[:d, d:]))
    for k in range(d):
        row = a[k] * (1 / a[k, k])
        unit = np.zeros(d)
        unit[k] = 1.0
        a = a - mpc.np_outer(a[:, k] - unit, row)
    gamma = a[:, d]
    coefs = [gamma[j] * 2.0 ** (e[d] - e[j]) for j in range(d)]
    opened = [float(v) for v in await mpc.output(coefs)]
    clock.lap("compute")
    sent = rawkit.bytes_sent(mpc)
    await mpc.shutdown()
    rawkit.report({f"coef[{j + 1}]": v for j, v in enumerate(opened)}, sent, clock)


mpc.run(main())
