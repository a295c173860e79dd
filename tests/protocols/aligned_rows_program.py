"""A minimal MPyC program around ``protocols.join.aligned.aligned_rows`` for
tests/protocols/test_join_aligned.py: parties 0 and 1 are the owners (their tables come
from the job file; each reads only its own), party 2 the helper. It opens the aligned
rows to every party — a test's output, never a protocol's — and the second owner tells
the others its private row order, so the test can check every row against pandas.

    python tests/protocols/aligned_rows_program.py JOB_JSON -I i -P host:port ... --ssl
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

import rawkit  # noqa: E402

job = rawkit.setup()

import numpy as np  # noqa: E402
from mpyc.runtime import mpc  # noqa: E402  (after setup: MPyC parses sys.argv on import)

from protocols.io import Context  # noqa: E402
from protocols.join.aligned import aligned_rows  # noqa: E402


def opened(values: list) -> list:
    return [int(v) if job["fxp"] == 0 else float(v) for v in np.asarray(values).ravel()]


async def main() -> None:
    await mpc.start()
    clock = rawkit.Clock()
    me = mpc.pid
    ctx = Context(mpc, me, [0, 1], None, {}, 32, 0, lambda *_: None)
    keys = columns = None
    if me in (0, 1):
        table = job["owners"][me]
        keys = np.array(table["keys"], dtype=object)
        columns = np.array(table["columns"], dtype=object).reshape(len(keys), -1)
    sectype = mpc.SecFxp(2 * job["fxp"] + 40, job["fxp"]) if job["fxp"] else mpc.SecInt(40)
    rows = await aligned_rows(ctx, sectype, keys, columns, tuple(job["widths"]))
    clock.lap("aligned rows")
    mine = None
    if me == 1:
        assert keys is not None and rows.order is not None
        mine = [str(k) for k in keys[rows.order].tolist()]
    (order_keys,) = await mpc.transfer(mine, senders=[1])
    outputs = {"keys": order_keys, "rows": rows.rows}
    if rows.rows:
        present, a, b = [await mpc.output(v) for v in (rows.present, rows.a, rows.b)]
        outputs |= {"present": opened(present), "a": opened(a), "b": opened(b)}
    sent = rawkit.bytes_sent(mpc)
    await mpc.shutdown()
    rawkit.report(outputs, sent, clock)


mpc.run(main())
