"""The real worker, except that its protocol program never gets past its first step.

Run as ``python stalled_worker.py JOB_DIR``. It connects to its peers like any
worker (so its status reaches "computing") and then waits forever before feeding
its input: the other parties cannot finish without it, which makes "kill a party
in the middle of a job" deterministic however fast the protocol is.
"""

from __future__ import annotations

import asyncio
import sys

import protocols.aggregates as aggregates
from protocols import worker


async def _stall(ctx, _sectype):  # the signature of the function it replaces
    ctx.progress("computing", 0.15)
    await asyncio.Event().wait()


if __name__ == "__main__":
    aggregates._owner_partials = _stall
    sys.exit(worker.main())
