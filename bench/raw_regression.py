"""Raw MPyC baseline for horizontal ridge regression (protocols/models/regression.py): the
same secure types (secure integers of the session's bit length for the summed statistics,
fixed point with 48 fractional bits for the solve), no orchestration, no singular check,
no standard errors. Parties 0 and 1 each read their parquet file, reduce it to n, Σz and
Σ z zᵀ on the integer grid (exactly, protocols/models/gram.py), secret-share that vector;
all three add, scale by the public bounds and centre with MPyC's stock fixed-point
arithmetic, and invert the d × d system by the protocol's own Newton–Schulz iteration
(``protocols.models.ns_solve``, the same solve, so the ratio measures the orchestration and
the protocol's cheaper scaling, not two different solves); the coefficients are opened to
every party.

    python bench/raw_regression.py JOB_JSON -I i -P host:port ... --ssl --no-log
"""

import rawkit

job = rawkit.setup()

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from mpyc.runtime import mpc  # noqa: E402  (after setup: MPyC parses sys.argv on import)

from protocols.models import ns_solve  # noqa: E402
from protocols.models.gram import moments, triangle  # noqa: E402

D, DECIMALS, BITS, RIDGE = job["d"], job["decimals"], job["bit_length"], job["ridge"]
ROWS, BOUNDS = job["rows"], job["bounds"]  # public: Σ rows, per column its grid bound
F = 64  # the protocol's FRAC_BITS


async def main() -> None:
    clock = rawkit.Clock()
    await mpc.start()
    clock.lap("connect")
    w = D + 1
    size = 1 + w + w * (w + 1) // 2
    sint = mpc.SecInt(BITS)
    if mpc.pid < 2:
        table = pq.read_table(job["files"][mpc.pid]).to_pandas()
        z = np.rint(table[job["columns"]].to_numpy() * 10**DECIMALS).astype(np.int64)
        m = moments(z, max(BOUNDS).bit_length())
        local = np.array([m.n, *m.sums, *m.cross], dtype=object)
    else:
        local = np.zeros(size, dtype=object)
    clock.lap("local")
    shared = mpc.input(sint.array(local), senders=[0, 1])
    total = shared[0] + shared[1]
    wide, fx = mpc.SecFxp(BITS + F + 8, F), mpc.SecFxp(2 * F, F)
    raw = mpc.convert(mpc.np_tolist(total), wide)
    r = ROWS.bit_length()
    e = [b.bit_length() for b in BOUNDS]

    def scale(x, k):  # x · 2^-k in steps exact in fixed point
        while k > F // 2:
            x, k = x * 2.0 ** -(F // 2), k - F // 2
        return x * 2.0**-k

    pairs = triangle(w)
    shifts = [r] + [r + e[j] for j in range(w)] + [r + e[j] + e[c] for j, c in pairs]
    v = mpc.convert([scale(x, k) for x, k in zip(raw, shifts, strict=True)], fx)
    n = v[0]
    t = mpc.np_fromlist(v[1 : 1 + w])
    q = [[None] * w for _ in range(w)]
    for i, (j, c) in enumerate(pairs):
        q[j][c] = q[c][j] = v[1 + w + i]
    # n·S = n·Σzzᵀ − Σz Σzᵀ (n cancels in the solution: no reciprocal), every entry ≤ 1.
    s = mpc.np_fromlist([v for row in q for v in row]).reshape(w, w) * n - mpc.np_outer(t, t)
    penalty = np.array([RIDGE * 10 ** (2 * DECIMALS) / 2.0 ** (r + 2 * e[j]) for j in range(D)])
    m = s[:D, :D] + fx.array(np.diag(penalty)) * n
    m_inv, _, _ = await ns_solve.inverse(
        mpc, fx, m, [], [], float(D + 1 + penalty.sum()), ns_solve.iterations()
    )
    gamma = mpc.np_matmul(m_inv, s[:D, D])
    coefs = [gamma[j] * 2.0 ** (e[D] - e[j]) for j in range(D)]
    opened = [float(v) for v in await mpc.output(coefs)]
    clock.lap("compute")
    sent = rawkit.bytes_sent(mpc)
    await mpc.shutdown()
    rawkit.report({f"coef[{j + 1}]": v for j, v in enumerate(opened)}, sent, clock)


mpc.run(main())
