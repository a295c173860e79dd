"""Three-party MPyC program for tests/protocols/test_he_outsourced.py and
bench/he_outsource.py: party 0 is a live owner with its column in the clear, party 1 a
member with no data, party 2 the helper that stores an outsourced dataset.

The helper does what a node's worker does before its MPC connects
(``protocols.he_outsourced.helper_stage``): it masks the outsourced outputs under
encryption and leaves the request in a job directory (``$PROBE_JOB_DIR``: a running helper
node's, served to the owner's real `ensnif outsource serve`; else ``$PROBE_DIR``, answered
by the test's in-process owner client), then waits for the sealed shares. In the MPC
(``converted_input``) the helper forwards them with the batch's digest; every party opens
its own with its per-job key
(``$PROBE_DIR/party_<i>.key``), and the MPC adds the live owner's pre-aggregates to the
outsourced totals. Party 0 prints the opened totals (a test program: a job would seal
them to its analyst) and, with ``PROBE_TIMING``, the seconds each step took.

    PROBE_DIR=... python he_outsourced_probe.py -I i -P 127.0.0.1:p0 -P ... -P ...
"""

import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from mpyc.runtime import mpc

from ensnif_mpc.errors import EnsnifError
from ensnif_mpc.security.mpc_session import PeerBinding
from protocols.he_outsourced import converted_input, helper_stage, outsourced_totals

HELPER = 2
DIR = Path(os.environ["PROBE_DIR"])
OUTPUTS = json.loads(os.environ["PROBE_OUTPUTS"])
JOB = os.environ["PROBE_JOB"]


JOB_DIR = os.environ.get("PROBE_JOB_DIR", "")
DATASET = Path(os.environ.get("PROBE_DATASET") or DIR / "dataset")


def _peers() -> list[PeerBinding]:
    return [
        PeerBinding(**{**p, "binding_signature": base64.b64decode(p["binding_signature"])})
        for p in json.loads(os.environ["PROBE_PEERS"])
    ]


async def main() -> None:
    if os.environ.get("PROBE_MODE") == "live":
        await live_only()
        return
    if os.environ.get("PROBE_MODE") == "wrap":
        await wrap_only()
        return
    rows_mode = os.environ.get("PROBE_MODE") == "rows"
    timing: dict[str, float] = {}
    staged = None
    if mpc.pid == HELPER:  # as a node's worker would, before its MPC connects
        t0 = time.perf_counter()
        try:
            staged = helper_stage(
                DATASET,
                (DIR / "ca.crt").read_bytes(),
                Path(JOB_DIR) if JOB_DIR else DIR,
                JOB,
                OUTPUTS,
                rows_mode,
                _peers(),
                {"protocol": os.environ.get("PROBE_PROTOCOL", "sum"), "analyst": "analyst"},
                float(os.environ.get("PROBE_WINDOW", "120")),
                timing,
            )
        except EnsnifError as exc:
            print("reason", exc.reason, flush=True)
            sys.exit(3)
        timing["helper_stage"] = time.perf_counter() - t0
    await mpc.start()
    t0 = time.perf_counter()
    key = (DIR / f"party_{mpc.pid}.key").read_bytes()
    secint = mpc.SecInt(64)
    converted = await converted_input(mpc, HELPER, staged, key, JOB, rows_mode, secint)
    if rows_mode:
        await rows_statistics(converted, secint, timing, t0)
        return
    timing["conversion"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    live = np.load(DIR / "live.npy", allow_pickle=True) if mpc.pid == 0 else np.zeros(len(OUTPUTS))
    shared_live = mpc.input(secint.array(live.astype(object)), senders=0)
    combined = converted + shared_live
    sigma = float(os.environ.get("PROBE_SIGMA", "0"))
    if sigma:  # DP: every party secret-shares discrete Gaussian noise shares (OpenDP)
        from ensnif_mpc.privacy import dp

        draws = secint.array(np.array(dp.sample_shares(sigma, len(OUTPUTS)), dtype=object))
        noise = mpc.np_sum(mpc.np_stack(mpc.input(draws, senders=[0, 1, HELPER])), axis=0)
        combined = combined + noise
    totals = await mpc.output(combined)
    timing["live_and_open"] = time.perf_counter() - t0
    if mpc.pid == 0:
        print("totals", json.dumps([int(v) for v in totals]), flush=True)
    if os.environ.get("PROBE_TIMING"):
        print("timing", json.dumps(timing), flush=True)
    await mpc.shutdown()


async def rows_statistics(x: Any, secint: Any, timing: dict[str, float], t0: float) -> None:
    """The outsourced rows x as a secure vector, and a live owner's column y of the same rows
    (party 0): open Σx, Σx² and Σxy, the statistics a regression of y on x trains on."""
    timing["conversion"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    y_plain = np.load(DIR / "live_rows.npy", allow_pickle=True) if mpc.pid == 0 else None
    y = mpc.input(
        secint.array(y_plain if y_plain is not None else np.zeros(len(x), dtype=object)),
        senders=0,
    )
    stats = [mpc.np_sum(x), x @ x, x @ y]
    totals = await mpc.output(stats)
    timing["statistics_and_open"] = time.perf_counter() - t0
    if mpc.pid == 0:
        print("totals", json.dumps([int(v) for v in totals]), flush=True)
    if os.environ.get("PROBE_TIMING"):
        print("timing", json.dumps(timing), flush=True)
    await mpc.shutdown()


async def wrap_only() -> None:
    """The correction step alone on chosen d = M − R (PROBE_D): party 0 holds d, the others
    hold 0 as their additive shares; party 0 prints what the MPC recovers."""
    await mpc.start()
    d = json.loads(os.environ["PROBE_D"])
    mine = d if mpc.pid == 0 else [0] * len(d)
    recovered = await mpc.output(await outsourced_totals(mpc, mine, mpc.SecInt(64)))
    if mpc.pid == 0:
        print("totals", json.dumps([int(v) for v in recovered]), flush=True)
    await mpc.shutdown()


async def live_only() -> None:
    """The same job with the helper's rows in the clear at a live owner (the baseline)."""
    await mpc.start()
    t0 = time.perf_counter()
    secint = mpc.SecInt(64)
    own = {0: "live.npy", HELPER: "helper_live.npy"}.get(mpc.pid)
    local = np.load(DIR / own, allow_pickle=True) if own else np.zeros(len(OUTPUTS))
    shared = mpc.input(secint.array(local.astype(object)), senders=[0, HELPER])
    totals = await mpc.output(mpc.np_sum(mpc.np_stack(shared), axis=0))
    if mpc.pid == 0:
        print("totals", json.dumps([int(v) for v in totals]), flush=True)
    if os.environ.get("PROBE_TIMING"):
        print("timing", json.dumps({"live_and_open": time.perf_counter() - t0}), flush=True)
    await mpc.shutdown()


mpc.run(main())
