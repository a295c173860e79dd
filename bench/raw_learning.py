"""Raw MPyC baseline for logistic regression and k-means (protocols/models/logistic.py,
kmeans.py, kmeans_ring.py): the same secure types and the same core functions on secure
arrays, no orchestration (no per-job certificates, no sealing, no noise for the DP mode).
k-means runs the two-owner ring route (the one a session of two owners and a helper
takes), or with ``"kmeans_route": "mpc"`` in the job file the all-MPyC iterations. Parties 0
and 1 each read their parquet file and secret-share their rows (and Gram matrix); all three
run the fit and open the result to every party.

    python bench/raw_learning.py JOB_JSON -I i -P host:port ... --ssl --no-log
"""

import rawkit

job = rawkit.setup()

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from mpyc.runtime import mpc  # noqa: E402  (after setup: MPyC parses sys.argv on import)

from protocols.models import kmeans as km, logistic as lr  # noqa: E402
from protocols.models.secure_math import box_grid  # noqa: E402

MODE, D = job["mode"], job["d"]
LOWER, UPPER = np.array(job["lower"]), np.array(job["upper"])


def rows() -> tuple[np.ndarray, np.ndarray]:
    table = pq.read_table(job["files"][mpc.pid]).to_pandas()
    return table[[f"x{j}" for j in range(D)]].to_numpy(float), table["y"].to_numpy()


def share(sectype, data, shape):
    parts = []
    for owner in (0, 1):
        mine = data if mpc.pid == owner else np.zeros(shape[owner], dtype=object)
        parts.append(mpc.input(sectype.array(np.asarray(mine, dtype=object)), senders=[owner])[0])
    return parts


async def main() -> None:
    clock = rawkit.Clock()
    await mpc.start()
    clock.lap("connect")
    sizes = job["sizes"]
    mine = rows() if mpc.pid < 2 else None
    clock.lap("local")
    if MODE == "logistic":
        sint = mpc.SecInt(lr.BITS)
        x = (
            None
            if mine is None
            else np.hstack(
                [lr.unit_grid(mine[0], LOWER, UPPER, lr.FX), np.full((len(mine[0]), 1), 1 << lr.FX)]
            ).astype(object)
        )
        xs = share(sint, x, [(n, D + 1) for n in sizes])
        ys = share(sint, None if mine is None else mine[1].astype(object), [(n,) for n in sizes])
        grams = share(sint, None if x is None else x.T @ x, [(D + 1, D + 1)] * 2)
        w = await lr.fit_exact(
            mpc,
            mpc.np_vstack(xs),
            mpc.np_hstack(ys),
            grams[0] + grams[1],
            sum(sizes),
            1.0,
            job["steps"],
        )
        out = await mpc.output(lr.raw_coefficients(mpc, w, LOWER, UPPER))
        opened = {f"coef[{j}]": int(v) / 2**lr.FOUT for j, v in enumerate(out)}
    elif MODE == "logistic_dp":  # the rounds without noise: what the orchestration adds
        sint = mpc.SecInt(lr.DP_BITS)
        a = None if mine is None else lr.design_matrix(mine[0], LOWER, UPPER)
        w = np.zeros(D + 1)
        for _ in range(job["steps"]):
            local = None if a is None else lr.clipped_gradient_sum(a, mine[1].astype(float), w, 1.0)
            parts = share(sint, local, [(D + 1,)] * 2)
            g = np.array([int(v) for v in await mpc.output(parts[0] + parts[1])])
            w = lr.descent_step(w, g, float(sum(sizes)), 1.0, job["learning_rate"])
        opened = {f"w[{j}]": float(v) for j, v in enumerate(w)}
    elif job.get("kmeans_route") == "mpc":  # all in MPyC: SecInt comparisons
        sint = mpc.SecInt(km.BITS)
        g = None if mine is None else box_grid(mine[0], LOWER, UPPER, km.FK).astype(object)
        xs = share(sint, g, [(n, D) for n in sizes])
        c0 = km.to_grid(np.array(job["initial"]).reshape(-1, D), LOWER, UPPER, km.FK + km.FC)
        c, counts = await km.kmeans_exact(mpc, mpc.np_vstack(xs), c0, job["iterations"])
        out = await mpc.output(mpc.np_reshape(c, (-1,)))
        opened = {f"c[{j}]": int(v) for j, v in enumerate(out)}
    else:  # the two-owner ring route (protocols.models.kmeans_ring), without orchestration
        from protocols.io import Context
        from protocols.models.kmeans_ring import PHASES, kmeans_ring

        ctx = Context(mpc, mpc.pid, [0, 1], None, {}, 32, 0, lambda *_: None)
        g = None if mine is None else box_grid(mine[0], LOWER, UPPER, km.FK)
        c0 = km.to_grid(np.array(job["initial"]).reshape(-1, D), LOWER, UPPER, km.FK + km.FC)
        c, counts = await kmeans_ring(ctx, g, np.asarray(c0, dtype=np.int64), job["iterations"])
        out = await mpc.output(mpc.np_reshape(c, (-1,)))
        clock.phases |= PHASES
        opened = {f"c[{j}]": int(v) for j, v in enumerate(out)}
    clock.lap("compute")
    sent = rawkit.bytes_sent(mpc)
    await mpc.shutdown()
    rawkit.report(opened, sent, clock)


mpc.run(main())
