"""Raw MPyC baseline for ``predict`` with a logistic model (protocols/models/predict.py):
the same secure type (SecFxp(160, 40), the logistic model artifact's), no orchestration,
no artifact store. Party 1 inputs the weights as a secret (standing in for shares already
held), party 0 its rows; all three compute z = x·w + b, clamp it to [−8, 8], apply the
same odd cubic, and open the scores to party 0 only.

    python bench/raw_predict.py JOB_JSON -I i -P host:port ... --ssl --no-log
"""

import rawkit

job = rawkit.setup()

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from mpyc.runtime import mpc  # noqa: E402  (after setup: MPyC parses sys.argv on import)

from protocols.models.secure_math import SIGMOID_C1, SIGMOID_C3  # noqa: E402

N, D = job["rows"], job["d"]


async def main() -> None:
    clock = rawkit.Clock()
    await mpc.start()
    clock.lap("connect")
    fx = mpc.SecFxp(160, 40)
    if mpc.pid == 0:
        x = pq.read_table(job["file"]).to_pandas()[job["columns"]].to_numpy(dtype=float)
    else:
        x = np.zeros((N, D))
    w = np.array(job["weights"]) if mpc.pid == 1 else np.zeros(D + 1)
    clock.lap("local")
    xs = mpc.input(fx.array(x, integral=False), senders=0)
    ws = mpc.input(fx.array(w, integral=False), senders=1)
    z = xs @ ws[1:] + ws[0]
    lo = fx.array(np.full(N, -8.0), integral=False)
    hi = fx.array(np.full(N, 8.0), integral=False)
    c = mpc.np_minimum(mpc.np_maximum(z, lo), hi)
    s = 0.5 + c * SIGMOID_C1 + c * c * c * SIGMOID_C3
    opened = await mpc.output(s, receivers=[0])
    clock.lap("compute")
    sent = rawkit.bytes_sent(mpc)
    await mpc.shutdown()
    total = float(np.sum(np.asarray(opened, dtype=float))) if mpc.pid == 0 else 0.0
    rawkit.report({"score_sum": total}, sent, clock)


mpc.run(main())
