"""Raw MPyC baseline for sum, mean and variance: the same secure types and the same local
pre-aggregation as protocols/aggregates.py and protocols/statistics.py, no orchestration
(it imports MPyC, numpy and Arrow only: Ensnif's data layer would add 0.3 s of imports).

Each data owner reads its own CSV, reduces its column locally to (sum, count) — or
(count, sum, sum of squares) for the variance — on the session's decimal scale, and
secret-shares only that; the parties add the partials and open the result.

    python bench/raw_aggregate.py JOB_JSON -I i -P host:port ... --ssl --no-log
"""

import rawkit

job = rawkit.setup()

import numpy as np  # noqa: E402
import rawstats  # noqa: E402
from mpyc.runtime import mpc  # noqa: E402  (after setup: MPyC parses sys.argv on import)

PROTOCOL, BITS, DECIMALS = job["protocol"], job["bit_length"], job["decimals"]
OWNERS = list(range(len(job["owners"])))


def local_partials() -> np.ndarray:
    """This owner's exact partials: [sum, count] or, for the variance, [count, sum, sumsq]."""
    if mpc.pid not in OWNERS:
        return np.zeros(3 if PROTOCOL == "variance" else 2, dtype=object)
    owner = job["owners"][mpc.pid]
    x = rawkit.scaled(rawkit.read(owner["file"], [owner["value"]]), owner["value"], DECIMALS)
    total, count = int(x.sum()), int(x.size)
    if PROTOCOL != "variance":
        return np.array([total, count], dtype=object)
    if x.size and int(np.abs(x).max()) ** 2 * x.size >= 2**63:
        raise OverflowError("sum of squares would overflow int64; use Python ints")
    return np.array([count, total, int((x * x).sum())], dtype=object)


def mean_frac_bits(bit_length: int) -> int:
    """As protocols.aggregates.mean_frac_bits: l = 2f, f holds the sum plus 30 bits."""
    return max(32, bit_length + 30)


async def variance(stype, partials) -> tuple:
    """As protocols.statistics.variance: A / (N(N-1)) with A = N·Q − S², one normalization."""
    _, width_d, _ = rawstats.moment_sizes(BITS, DECIMALS)
    n, s, q = mpc.np_tolist(mpc.np_sum(mpc.np_stack(partials), axis=0))
    a, d = n * q - s * s, n * (n - 1)
    zero, m, four_down, big_k = rawstats.normalize(
        mpc, mpc.np_fromlist([d * 10**DECIMALS]), width_d
    )
    y = rawstats.rsqrt_mantissa(m + zero)
    inverse = rawstats.shift_down(mpc, y * y * four_down, 2 * big_k)
    (few,) = mpc.np_tolist(zero)
    (inv,) = mpc.np_tolist(inverse)
    return a * inv, few


async def main() -> None:
    clock = rawkit.Clock()
    await mpc.start()
    clock.lap("start")
    if PROTOCOL == "mean":
        f = mean_frac_bits(BITS)
        stype = mpc.SecFxp(2 * f, f)
    elif PROTOCOL == "variance":
        width_a, _, f = rawstats.moment_sizes(BITS, DECIMALS)
        stype = mpc.SecFxp(f + width_a + 6, f)
    else:
        stype = mpc.SecInt(BITS)
    local = local_partials()
    clock.lap("read")
    partials = mpc.input(stype.array(local), senders=OWNERS)
    scale = 10**DECIMALS
    if PROTOCOL == "variance":
        value, few = await variance(stype, partials)
        result, few = await mpc.output([value, few])
        outputs = {"variance": float("nan") if few else float(result) / scale}
    else:
        totals = mpc.np_sum(mpc.np_stack(partials), axis=0)
        if PROTOCOL == "mean":
            empty = totals[1] == 0
            mean, empty = await mpc.output([totals[0] / (totals[1] + empty), empty])
            outputs = {"mean": float("nan") if empty else float(mean) / scale}
        else:
            outputs = {"sum": int(await mpc.output(totals[0])) / scale}
    clock.lap("mpc")
    sent = rawkit.bytes_sent(mpc)
    await mpc.shutdown()
    rawkit.report(outputs, sent, clock)


mpc.run(main())
