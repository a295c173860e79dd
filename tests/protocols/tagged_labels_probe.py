"""Three-party MPyC program for tests/protocols/test_tagged_labels.py: does any exchange of
the private joins send one peer two messages under one program-counter label?

MPyC 0.11 files every incoming payload under its (peer, label) in
``MessageExchanger.buffers``; a second payload under a label whose buffer still holds one
calls ``set_result`` on bytes and breaks ``data_received`` (or, if the first was already
taken, lingers to be read in place of a later message). Two detectors, installed before
``mpc.start()`` at every party:

- at the sender, every (peer, label) of ``MessageExchanger.send``: a repeat is a collision;
- at the receiver, a ``buffers`` dict that notices ``data_received`` finding bytes where it
  expects a waiting Future (a payload under a label that already holds one).

The run, with party 1 busy at first so that payloads pile up in its buffers: the aligned
join (``aligned_rows``, with B's masked columns in many small chunks), the tagged route's
two-share conversion (``tagged._into_mpc``, checked against the value its shares encode),
the PRF route's point exchange (``prf.pseudonyms``), then a burst of concurrent transfers
from parties 0 and 2 to party 1 (issued without waiting, small and 200 kB payloads,
checked in order). Then party 0 sends party 1 two payloads under one label on purpose:
both detectors must see that one (the check can fail). Counts are taken before and after.

Party 0 prints every party's counts and checks (rawkit's report).

    python tests/protocols/tagged_labels_probe.py JOB_JSON -I i -P host:port ... --ssl
"""

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

import rawkit  # noqa: E402

job = rawkit.setup()

import asyncio  # noqa: E402
import hashlib  # noqa: E402
import pickle  # noqa: E402
from asyncio import Future  # noqa: E402

import numpy as np  # noqa: E402
from mpyc.asyncoro import MessageExchanger  # noqa: E402
from mpyc.runtime import mpc  # noqa: E402  (after setup: MPyC parses sys.argv on import)

from protocols import prf, tagging  # noqa: E402
from protocols.io import Context  # noqa: E402
from protocols.join import aligned, tagged  # noqa: E402

SENT: set[tuple[int, int]] = set()
COUNTS = {"sent": 0, "send_repeats": 0, "receive_collisions": 0}
_send = MessageExchanger.send


def watched_send(self, pc, payload):
    COUNTS["sent"] += 1
    if (self.peer_pid, pc) in SENT:
        COUNTS["send_repeats"] += 1
    SENT.add((self.peer_pid, pc))
    _send(self, pc, payload)


class _Dropped:
    def set_result(self, payload) -> None:  # the colliding payload, dropped after counting
        pass


class WatchedBuffers(dict):
    """MPyC's receive buffers; ``data_received`` pops with one argument, ``receive`` with
    two, so a one-argument pop that finds bytes is a second payload under one label."""

    def pop(self, key, *default):
        value = super().pop(key, *default)
        if not default and not isinstance(value, Future):
            COUNTS["receive_collisions"] += 1
            return _Dropped()
        return value


MessageExchanger.send = watched_send


def watch_buffers() -> None:
    for peer in mpc.parties:
        if peer.pid != mpc.pid and peer.protocol is not None:
            protocol = peer.protocol
            buffered = WatchedBuffers(protocol.buffers)
            protocol.buffers = buffered


async def main() -> None:
    await mpc.start()
    watch_buffers()
    me = mpc.pid
    checks = {}
    if me == 1:
        time.sleep(1.0)  # busy: what the others send now waits in the buffers
    rng = np.random.default_rng(job["seed"])
    keys_all = rng.choice(10_000, size=(2, 700), replace=False)
    keys_all[1, :300] = keys_all[0, :300]  # 300 shared keys
    ctx = Context(mpc, me, [0, 1], None, {}, 32, 0, lambda *_: None)
    aligned.CHUNK_ROWS = 16  # B's masked columns in 44 chunks
    keys = columns = None
    if me in (0, 1):
        keys = keys_all[me].astype(np.int64)
        columns = (keys[:, None] % 97).astype(object)
    rows = await aligned.aligned_rows(ctx, mpc.SecInt(40), keys, columns, (1, 1))
    present = [int(v) for v in await mpc.output(rows.present)]
    checks["aligned_matches"] = sum(present) == 300

    # The two-share conversion: every party's share derived from a common seed, summing
    # to OFFSET + target in Z_2^64; the conversion must give back the targets.
    targets = [int(t) for t in rng.integers(-(2**60), 2**60, size=5)]
    parts = rng.integers(0, 2**64, size=(3, 5), dtype=np.uint64)
    with np.errstate(over="ignore"):
        parts[0] = np.array([(t + tagging.OFFSET) % 2**64 for t in targets], dtype=np.uint64)
        parts[0] -= parts[1] + parts[2]
    converted = await tagged._into_mpc(ctx, [int(v) for v in parts[me]])
    checks["into_mpc"] = [int(v) for v in await mpc.output(converted)] == targets

    # The PRF route's exchange of published points (several transfers per party and peer).
    secfld = mpc.SecFld(prf.Q)
    prf_keys = mpc.input(secfld.array(np.array([5, 7, 5, 9, 11, 7], dtype=object)), senders=0)
    pseudonyms = await prf.pseudonyms(mpc, prf_keys, await prf.random_key(mpc, secfld))
    checks["prf"] = pseudonyms[0] == pseudonyms[2] and pseudonyms[1] == pseudonyms[5]
    checks["prf"] = bool(checks["prf"] and len(set(pseudonyms.tolist())) == 4)

    # A burst: 2 senders × 150 transfers to party 1, issued without waiting in between.
    burst = []
    for i in range(150):
        for sender in (0, 2):
            size = 200_000 if i % 3 == 0 else 10
            body = hashlib.sha256(b"%d/%d" % (sender, i)).digest() * (size // 32 + 1)
            burst.append(mpc.transfer(body[:size] if me == sender else None, [sender], [1]))
    got = [await t for t in burst]
    if me == 1:
        want = []
        for i in range(150):
            for sender in (0, 2):
                size = 200_000 if i % 3 == 0 else 10
                body = hashlib.sha256(b"%d/%d" % (sender, i)).digest() * (size // 32 + 1)
                want.append([body[:size]])
        checks["burst_in_order"] = got == want

    # Every party's counts so far; the exchange is also a barrier: nobody sends the forced
    # collision below before every party has taken its count.
    before = await mpc.transfer(dict(COUNTS))
    if me == 0:  # two payloads to party 1 under one label, on purpose
        for obj in ("first", "second"):
            mpc.parties[1].protocol.send(0x5EED, pickle.dumps(obj))
    if me == 1:
        await asyncio.sleep(1.0)  # both arrive before anything asks for the label
    after = await mpc.transfer({"after": dict(COUNTS), "checks": checks})
    everyone = [{"before": b, **a} for b, a in zip(before, after, strict=True)]
    sent = rawkit.bytes_sent(mpc)
    await mpc.shutdown()
    rawkit.report({"parties": everyone}, sent, rawkit.Clock())


mpc.run(main())
