"""Raw MPyC baseline for the throughput program (protocols/ports/throughput.py): the same n
products, comparisons or random bits in one vectorized batch, the same secure type, no
orchestration. Party 0 holds the values 1..37 (cycled to n pairs) and secret-shares them.

    python bench/raw_throughput.py JOB_JSON -I i -P host:port ... --ssl --no-log
"""

import rawkit

job = rawkit.setup()

import numpy as np  # noqa: E402
from mpyc.runtime import mpc  # noqa: E402  (after setup: MPyC parses sys.argv on import)

KIND, N, BITS = job["kind"], job["n"], job["bit_length"]
VALUES = np.arange(1, 38)


async def main() -> None:
    clock = rawkit.Clock()
    await mpc.start()
    clock.lap("connect")
    sint = mpc.SecInt(2 * BITS + 32)
    if KIND == "bits":
        b = mpc.np_random_bits(sint, N)
        out = mpc.np_sum(b * b - b)
    else:
        held = VALUES if mpc.pid == 0 else np.zeros(len(VALUES), dtype=int)
        x = mpc.input(sint.array(np.array(held, dtype=object)), senders=0)
        ia = np.arange(N) % len(VALUES)
        a, c = x[ia], x[(ia + 1) % len(VALUES)]
        out = mpc.np_sum(a * c) if KIND == "mul" else mpc.np_sum(a < c)
    result = int(await mpc.output(out))
    clock.lap("compute")
    sent = rawkit.bytes_sent(mpc)
    await mpc.shutdown()
    rawkit.report({"result": result}, sent, clock)


mpc.run(main())
