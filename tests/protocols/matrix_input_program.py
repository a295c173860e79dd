"""A minimal MPyC program around ``protocols.program.Program.input_from`` for a role given
a list of columns, for tests/protocols/test_matrix_input.py: parties 0 and 1 are owners
whose CSV files (from the job file) hold the listed columns, party 2 the helper. Owner 0's
features come in as a secure rows × columns array, owner 1's as per-column sums, both on
the session's grid and in fixed point; the program opens them to every party — a test's
output, never a protocol's.

    python tests/protocols/matrix_input_program.py JOB_JSON -I i -P host:port ... --ssl
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

import rawkit  # noqa: E402

job = rawkit.setup()

from mpyc.runtime import mpc  # noqa: E402  (after setup: MPyC parses sys.argv on import)

from ensnif_mpc.data.schema import Column  # noqa: E402
from ensnif_mpc.data.sources import SourceSpec, open_source  # noqa: E402
from protocols.io import Context, LocalData  # noqa: E402
from protocols.program import Program  # noqa: E402


async def main() -> None:
    await mpc.start()
    clock = rawkit.Clock()
    me = mpc.pid
    local = None
    if me in (0, 1):
        columns = tuple(Column(**c) for c in job["columns"])
        source = open_source(SourceSpec("csv", job["files"][me]), columns)
        local = LocalData(source, {}, job["decimals"], lists={"features": job["features"]})
    lists = ({"features": job["features"]},) * 2
    ctx = Context(
        mpc, me, [0, 1], local, {}, 40, job["decimals"], lambda *_: None, input_role_lists=lists
    )
    p = Program(ctx)
    secint, fixed = p.sint(40), p.fixed(24)
    grid = await p.input_from(0, secint, "features")
    sums = await p.input_from(1, secint, "features", reduce="sum")
    real = await p.input_from(0, fixed, "features")
    real_sums = await p.input_from(1, fixed, "features", reduce="sum")
    count = await p.input_from(1, secint, "features", reduce="count")
    outputs = {
        "shape": list(grid.shape),
        "grid": [int(v) for v in await mpc.output(grid.reshape(-1))],
        "sums": [int(v) for v in await mpc.output(sums)],
        "real": [float(v) for v in await mpc.output(real.reshape(-1))],
        "real_sums": [float(v) for v in await mpc.output(real_sums)],
        "count": int(await mpc.output(count)),
    }
    sent = rawkit.bytes_sent(mpc)
    await mpc.shutdown()
    rawkit.report(outputs, sent, clock)


mpc.run(main())
