"""Three-party MPyC program for tests/protocols/test_he_outsourced.py and
bench/he_outsource.py: party 0 is a live owner with its column in the clear, party 1 a
member with no data, party 2 the helper that stores an outsourced dataset.

The helper masks the outsourced outputs under encryption (``outsource.mask_outputs``) and
writes the masked batch to ``$PROBE_DIR/batch.bin`` for the owner's client (the test
process), which decrypts, shares, and writes the sealed shares to ``sealed.json``. The
helper forwards them over MPC with the batch's digest; every party opens its own with its
per-job key
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
from ensnif_mpc.he import outsource, outsource_request, outsource_rows, outsource_table as table
from ensnif_mpc.security.mpc_session import PeerBinding
from protocols.he_outsourced import forward_shares, outsourced_rows, outsourced_totals

HELPER = 2
DIR = Path(os.environ["PROBE_DIR"])
OUTPUTS = json.loads(os.environ["PROBE_OUTPUTS"])
JOB = os.environ["PROBE_JOB"]


JOB_DIR = os.environ.get("PROBE_JOB_DIR", "")
DATASET = Path(os.environ.get("PROBE_DATASET") or DIR / "dataset")


def _answer() -> dict[int, bytes] | None:
    """The owner's answer through the test's own exchange file (no node)."""
    path = DIR / "sealed.json"
    if not path.exists():
        return None
    return {int(k): base64.b64decode(v) for k, v in json.loads(path.read_bytes()).items()}


def _leave_request(batch: Any, rows: bool) -> None:
    peers = tuple(
        PeerBinding(**{**p, "binding_signature": base64.b64decode(p["binding_signature"])})
        for p in json.loads(os.environ["PROBE_PEERS"])
    )
    request = outsource_request.ConversionRequest(
        job_id=JOB,
        owner=json.loads((DATASET / "manifest.json").read_text())["owner"],
        dataset=json.loads((DATASET / "manifest.json").read_text())["dataset"],
        manifest_sha256=batch.dataset_digest,
        outputs=tuple(OUTPUTS),
        rows=rows,
        peers=peers,
        job={"protocol": os.environ.get("PROBE_PROTOCOL", "sum"), "analyst": "analyst"},
    )
    outsource_request.write_request(Path(JOB_DIR), request, batch.to_bytes())


async def main() -> None:
    if os.environ.get("PROBE_MODE") == "live":
        await live_only()
        return
    if os.environ.get("PROBE_MODE") == "wrap":
        await wrap_only()
        return
    rows_mode = os.environ.get("PROBE_MODE") == "rows"
    timing: dict[str, float] = {}
    masks: Any = None
    batch = sealed = None
    if mpc.pid == HELPER:
        t0 = time.perf_counter()
        stored = table.open_stored(DATASET, (DIR / "ca.crt").read_bytes())
        if rows_mode:
            batch, masks = outsource_rows.mask_rows(stored, JOB, OUTPUTS[0])
        else:
            batch, masks = outsource.mask_outputs(stored, JOB, OUTPUTS)
        (DIR / "batch.tmp").write_bytes(batch.to_bytes())
        (DIR / "batch.tmp").rename(DIR / "batch.bin")
        if JOB_DIR:  # as a node's worker: the request waits in the job directory
            _leave_request(batch, rows_mode)
        timing["helper_mask"] = time.perf_counter() - t0
        window = float(os.environ.get("PROBE_WINDOW", "120"))
        try:  # before connecting: an absent or refusing owner ends the job before any MPC
            if JOB_DIR:
                sealed = outsource_request.await_answer(Path(JOB_DIR), window)
            else:
                sealed = outsource.wait_for_owner(_answer, window)
        except EnsnifError as exc:
            print("reason", exc.reason, flush=True)
            sys.exit(3)
        timing["owner_wait"] = time.perf_counter() - t0 - timing["helper_mask"]
    await mpc.start()
    t0 = time.perf_counter()
    forwarded = outsource.Forwarded.of(batch, sealed) if mpc.pid == HELPER else None
    received = (await forward_shares(mpc, HELPER, forwarded))[0]
    key = (DIR / f"party_{mpc.pid}.key").read_bytes()
    mine = outsource.open_share(key, received, JOB, mpc.pid)
    if mpc.pid == HELPER:
        assert masks is not None
        helper_input = outsource_rows.helper_row_input if rows_mode else outsource.helper_input
        mine = helper_input(mine, masks)
    secint = mpc.SecInt(64)
    if rows_mode:
        await rows_statistics(mine, secint, timing, t0)
        return
    converted = await outsourced_totals(mpc, mine, secint)
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


async def rows_statistics(
    mine: list[int], secint: Any, timing: dict[str, float], t0: float
) -> None:
    """The outsourced rows x as a secure vector, and a live owner's column y of the same rows
    (party 0): open Σx, Σx² and Σxy, the statistics a regression of y on x trains on."""
    x = await outsourced_rows(mpc, mine, secint)
    timing["conversion"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    y_plain = np.load(DIR / "live_rows.npy", allow_pickle=True) if mpc.pid == 0 else None
    y = mpc.input(
        secint.array(y_plain if y_plain is not None else np.zeros(len(mine), dtype=object)),
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
