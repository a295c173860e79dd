"""Three-party MPyC program for tests/protocols/test_transfer_labels.py: party 0 sends party 1
ROUNDS messages in a row with ``mpc.transfer`` while party 1 is busy, so that all of them
arrive before party 1 asks for the first. Party 1 prints how many distinct receive buffers
(program-counter labels) party 0's messages occupy, then what it received, in order.

    PROBE_ROUNDS=200 python transfer_probe.py -I i -P 127.0.0.1:p0 -P ... -P ...
"""

import asyncio
import os
import time

from mpyc.runtime import mpc

ROUNDS = int(os.environ["PROBE_ROUNDS"])


async def main() -> None:
    await mpc.start()
    buffered = -1
    if mpc.pid == 1:
        buffers = mpc.parties[0].protocol.buffers

        def waiting() -> int:  # messages from party 0 read but not yet asked for
            return sum(isinstance(v, bytes | bytearray) for v in buffers.values())

        time.sleep(1.0)  # busy (as a party computing its own part): nothing is read
        while waiting() < ROUNDS:
            await asyncio.sleep(0.01)  # the event loop now reads every message
        buffered = waiting()
    got = []
    for i in range(ROUNDS):
        mine = f"m{i}" if mpc.pid == 0 else None
        got += await mpc.transfer(mine, senders=[0], receivers=[1])
    if mpc.pid == 1:
        print("buffered", buffered, flush=True)
        print("received", " ".join(got), flush=True)
    await mpc.shutdown()


mpc.run(main())
