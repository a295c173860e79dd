"""Raw MPyC baseline for group_by: per public group, count and sum of a numeric column, as
protocols/grouped.py does it, no orchestration.

Each data owner reads its own CSV, groups its rows locally (Arrow) and lays its
(count, sum) out on the public list of groups (zeros where it has none); one secure
array of shape (2, G) per owner is input, the arrays are added and opened, and each
mean is sum / count in the clear (counts are outputs of group_by).

    python bench/raw_groupby.py JOB_JSON -I i -P host:port ... --ssl --no-log
"""

import rawkit

job = rawkit.setup()

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from mpyc.runtime import mpc  # noqa: E402  (after setup: MPyC parses sys.argv on import)

GROUPS = [str(g) for g in job["params"]["groups"]]
OWNERS = list(range(len(job["owners"])))
DECIMALS = job["decimals"]


def local_table() -> np.ndarray:
    """This owner's [count; sum] per public group, shape (2, G)."""
    out = np.zeros((2, len(GROUPS)), dtype=object)
    out[:] = 0
    if mpc.pid not in OWNERS:
        return out
    owner = job["owners"][mpc.pid]
    table = rawkit.read(owner["file"], [owner["group"], owner["value"]], strings=(owner["group"],))
    scaled = pa.array(rawkit.scaled(table, owner["value"], DECIMALS))
    grouped = (
        pa.table({"g": table.column(owner["group"]), "v": scaled})
        .group_by("g")
        .aggregate([("v", "count"), ("v", "sum")])
    )
    position = {g: i for i, g in enumerate(GROUPS)}
    for g, n, s in zip(
        *(grouped.column(c).to_pylist() for c in ("g", "v_count", "v_sum")), strict=True
    ):
        if g in position:
            out[0, position[g]], out[1, position[g]] = n, s
    return out


async def main() -> None:
    clock = rawkit.Clock()
    await mpc.start()
    clock.lap("start")
    secint = mpc.SecInt(job["bit_length"])
    local = local_table()
    clock.lap("read")
    shared = mpc.input(secint.array(local), senders=OWNERS)
    totals = await mpc.output(mpc.np_sum(mpc.np_stack(shared), axis=0))
    clock.lap("mpc")
    outputs: dict[str, float] = {}
    for i, g in enumerate(GROUPS):
        count, total = int(totals[0, i]), int(totals[1, i]) / 10**DECIMALS
        outputs[f"count[{g}]"] = count
        outputs[f"sum[{g}]"] = total
        outputs[f"mean[{g}]"] = total / count if count else float("nan")
    sent = rawkit.bytes_sent(mpc)
    await mpc.shutdown()
    rawkit.report(outputs, sent, clock)


mpc.run(main())
