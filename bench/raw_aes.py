"""Raw MPyC baseline for the aes128 port: the same GF(2^8) circuit
(protocols.ports.aes.secure_encrypt) on one block, the key from party 0 and the block from
party 1, the ciphertext opened directly in GF(2^8) to every party: no worker, no daBits, no
sealing.

    python bench/raw_aes.py JOB_JSON -I i -P host:port ... --ssl --no-log
"""

import sys
from pathlib import Path

import rawkit

job = rawkit.setup()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from mpyc.runtime import mpc  # noqa: E402  (after setup: MPyC parses sys.argv on import)

from protocols.ports.aes import MODULUS, secure_encrypt  # noqa: E402


async def main() -> None:
    clock = rawkit.Clock()
    await mpc.start()
    clock.lap("connect")
    gf = mpc.SecFld(modulus=MODULUS, char=2)
    zeros = np.zeros(16, dtype=object)
    mine = [np.array(job["key"], dtype=object), np.array(job["block"], dtype=object)]
    key = mpc.input(gf.array(mine[0] if mpc.pid == 0 else zeros.copy()), senders=0)
    block = mpc.input(gf.array(mine[1] if mpc.pid == 1 else zeros.copy()), senders=1)
    opened = await mpc.output(secure_encrypt(mpc, key, block))
    clock.lap("compute")
    sent = rawkit.bytes_sent(mpc)
    await mpc.shutdown()
    rawkit.report({"ct": bytes(int(v) for v in opened.value).hex()}, sent, clock)


mpc.run(main())
