"""A minimal MPyC program around ``protocols.ring.dealer`` for tests/protocols/test_kmeans_ring.py:
parties 0 and 1 are the owners A and B, party 2 the dealer H. The job file holds public
test values (signed 64-bit) and a public seed from which A and B split them into ring
shares; the program runs the engine's sign test, select, bit conversion and product
on them, then A and B exchange their result shares so every party can print them — a
test's output, never a protocol's.

    python tests/protocols/ring_compare_program.py JOB_JSON -I i -P host:port ... --ssl
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

import rawkit  # noqa: E402

job = rawkit.setup()

import numpy as np  # noqa: E402
from mpyc.runtime import mpc  # noqa: E402  (after setup: MPyC parses sys.argv on import)

from protocols.ring.dealer import Engine, from_plane  # noqa: E402


def split(values: np.ndarray, me: int) -> np.ndarray | None:
    """A's share: pseudorandom from the public test seed; B's: value − A's share."""
    if me == 2:
        return None
    rng = np.random.default_rng(job["seed"])
    a = rng.integers(0, 2**64, size=values.size, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return a if me == 0 else values - a


async def main() -> None:
    await mpc.start()
    clock = rawkit.Clock()
    me = mpc.pid
    eng = await Engine.start(mpc, 0, 1, 2)
    v = np.array(job["values"], dtype=np.int64).view(np.uint64)
    w = np.array(job["others"], dtype=np.int64).view(np.uint64)
    n = v.size
    sv, sw = split(v, me), split(w, me)
    neg = await eng.negative(sv, n)
    narrow = await eng.negative(sv, n, job["bits"])  # right only where |v| < 2^(bits−1)
    lo = None if sv is None else sv.reshape(n, 1)
    hi = None if sw is None else sw.reshape(n, 1)
    picked = await eng.select(neg, lo, hi, n, 1)  # w where v < 0, else v
    arith = await eng.to_arith(None if neg is None else neg.reshape(1, -1), 1, n)
    product = await eng.mul(sv, sw, (n,))
    clock.lap("engine")
    mine = None
    if me != 2:
        assert neg is not None and picked is not None and arith is not None
        assert product is not None and narrow is not None
        mine = [from_plane(neg, n), picked.ravel(), arith.ravel(), product, from_plane(narrow, n)]
    got = await mpc.transfer(mine, senders=[0, 1])
    a_part, b_part = got
    with np.errstate(over="ignore"):
        outputs = {
            "negative": (a_part[0] ^ b_part[0]).astype(int).tolist(),
            "select": (a_part[1] + b_part[1]).view(np.int64).tolist(),
            "arith": (a_part[2] + b_part[2]).view(np.int64).tolist(),
            "product": (a_part[3] + b_part[3]).view(np.int64).tolist(),
            "narrow": (a_part[4] ^ b_part[4]).astype(int).tolist(),
            "rounds": eng.rounds,
        }
    eng.write_trace()
    sent = rawkit.bytes_sent(mpc)
    await mpc.shutdown()
    rawkit.report(outputs, sent, clock)


mpc.run(main())
