"""Raw MPyC baseline: the same aggregate with the same secure types, no orchestration.

Run as one process per party (the bench launches them):
    python bench/raw_aggregate.py DIR PROTOCOL ROWLEVEL -M3 -I i -P host:port ... --ssl
Each owner reads DIR/party<i>.npy (integers on the column's scale); the result is opened
and every party prints a JSON line with the value, its time inside MPyC and bytes sent.
ROWLEVEL=1 secret-shares every row instead of the owner's local (sum, count).
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

directory, protocol, rowlevel, bit_length = (
    sys.argv[1],
    sys.argv[2],
    sys.argv[3] == "1",
    int(sys.argv[4]),
)
os.chdir(directory)
sys.argv = [sys.argv[0], *sys.argv[5:]]

from mpyc.runtime import mpc  # noqa: E402  (after argv holds MPyC's options)

OWNERS = [0, 1]


async def main():
    t0 = time.perf_counter()
    await mpc.start()
    if protocol == "mean":
        f = max(32, bit_length + 30)
        stype = mpc.SecFxp(2 * f, f)
    else:
        stype = mpc.SecInt(bit_length)
    mine = mpc.pid in OWNERS
    values = np.load(f"party{mpc.pid}.npy") if mine else None
    if rowlevel:
        n = [int(x) for x in json.loads(Path("sizes.json").read_text())]
        shared = [
            mpc.input(
                stype.array(
                    values.astype(object) if mpc.pid == o else np.zeros(n[o], dtype=object)
                ),
                senders=o,
            )
            for o in OWNERS
        ]
        total = mpc.sum([mpc.np_sum(s) for s in shared])
        count = stype(sum(n))
    else:
        local = np.array([int(values.sum()), values.size] if mine else [0, 0], dtype=object)
        parts = mpc.input(stype.array(local), senders=OWNERS)
        both = mpc.np_sum(mpc.np_stack(parts), axis=0)
        total, count = both[0], both[1]
    result = total / count if protocol == "mean" else total
    value = await mpc.output(result)
    sent = sum(p.protocol.nbytes_sent for p in mpc.parties if p.pid != mpc.pid and p.protocol)
    await mpc.shutdown()
    print(
        json.dumps({"value": float(value), "seconds": time.perf_counter() - t0, "bytes_sent": sent})
    )


mpc.run(main())
