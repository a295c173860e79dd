"""An outsourced dataset's aggregates as secret-shared inputs (the MPC half of
``ensnif_mpc/he/outsource.py``, whose docstring holds the security argument).

Who provides what: every party of the job inputs its additive share of the owner's masked
totals M_k (sealed to it by the owner's client, forwarded by the helper that stores the
ciphertexts); the helper inputs its share minus its mask totals R_k. Nobody inputs a value
in the clear.

How: the inputs are added (free), giving d_k = M_k − R_k ∈ (−t, t) with d_k ≡ S_k mod t,
and the true value S_k ∈ (−t/2, t/2) is d_k + t·([d_k < −t/2] − [d_k > t/2]): two secure
comparisons per output, vectorized over the K outputs. The result is then converted to
the job's own secure integer type and used like any owner's pre-aggregated input.

What is revealed: nothing; the outputs stay secret-shared.

What leaks: the number of outputs K (public: the job's protocol and the dataset's
declared bins fix it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# The plain modulus as an integer, so this module needs no TenSEAL (checked equal to
# ensnif_mpc.he.bfv.T by tests/protocols/test_he_outsourced.py).
PLAIN_MODULUS = 288230376150876161
CONVERSION_BITS = 64  # |d| < t < 2^58: comparisons on 64-bit secure integers


def forward_shares(mpc: Any, helper: int, forwarded: Any) -> Any:
    """The helper sends every party the owner's sealed shares with the batch's digest
    (``ensnif_mpc.he.outsource.Forwarded``); each party opens only its own share."""
    return mpc.transfer(forwarded, senders=[helper])


async def outsourced_totals(mpc: Any, mine: Sequence[int], target: Any | None = None) -> Any:
    """The K exact totals of an outsourced dataset, secret-shared; ``mine`` is this party's
    additive share (the helper's already minus its masks). ``target``: the job's secure
    integer type to convert to (None: keep the 64-bit conversion type)."""
    secint = mpc.SecInt(CONVERSION_BITS)
    parties = list(range(len(mpc.parties)))
    shared = mpc.input(secint.array(np.array([int(v) for v in mine], dtype=object)), parties)
    d = mpc.np_sum(mpc.np_stack(shared), axis=0)
    half = PLAIN_MODULUS // 2
    wrapped_up = d > half
    wrapped_down = d < -half
    exact = d + (wrapped_down - wrapped_up) * PLAIN_MODULUS
    if target is None or target is secint:
        return exact
    converted = mpc.convert(list(exact), target)
    return mpc.np_fromlist(converted)


async def outsourced_rows(mpc: Any, mine: Any, sectype: Any, series: int = 1) -> Any:
    """An outsourced dataset's rows, secret-shared (``ensnif_mpc/he/outsource_rows.py``):
    the parties' additive shares (the helper's minus its masks) add up to each row exactly,
    no correction needed. ``mine`` holds the ``series`` columns' rows one column after the
    other; returns a secure array of ``sectype``, ``series`` × rows (a vector for one).

    The shares are reduced modulo the field's prime before they are input: their sum is
    then x mod p, which is x itself, since |x| < p/2 (the field holds the job's values)."""
    parties = list(range(len(mpc.parties)))
    modulus = int(sectype.field.modulus)
    values = np.mod(np.asarray(mine, dtype=object), modulus)
    shared = mpc.input(sectype.array(values), parties)
    total = shared[0]
    for part in shared[1:]:
        total = total + part
    return total if series == 1 else total.reshape(series, -1)


async def forward_own_shares(mpc: Any, helper: int, forwarded: Any) -> Any:
    """The helper sends each party only its own sealed share (a rows conversion's are
    megabytes each): one transfer per receiver; returns what this party received."""
    mine = None
    for j in range(len(mpc.parties)):
        if j == helper:
            continue
        part = forwarded.only(j) if mpc.pid == helper else None
        got = await mpc.transfer(part, senders=[helper], receivers=[j])
        if mpc.pid == j:
            mine = got[0]
    return forwarded if mpc.pid == helper else mine


def helper_stage(
    dataset_dir: Path,
    ca_pem: bytes,
    job_dir: Path,
    job_id: str,
    outputs: Sequence[str],
    rows: bool,
    peers: Sequence[Any],
    job: Mapping[str, Any],
    window_s: float,
    timing: dict[str, float] | None = None,
) -> tuple[Any, Any]:
    """The helper's part before its MPC connects: verify the stored dataset, mask and flood
    the outputs (or the rows), leave the request in the job directory for the owner (served
    by the node's OutsourceService), and wait for the owner's sealed shares within the
    approval window (``owner_offline`` / ``owner_refused`` otherwise: no MPC runs).
    Returns what to forward and the masks (kept in this process only); ``timing`` gets
    the seconds of the masking and of the wait for the owner."""
    import time

    from ensnif_mpc.he import outsource, outsource_request, outsource_rows, outsource_table

    t0 = time.perf_counter()

    stored = outsource_table.open_stored(dataset_dir, ca_pem)
    masks: Any  # per-row masks (rows) or the mask totals (HelperMasks)
    if rows:
        batch, masks = outsource_rows.mask_rows(stored, job_id, list(outputs))
    else:
        batch, masks = outsource.mask_outputs(stored, job_id, outputs)
    request = outsource_request.ConversionRequest(
        job_id=job_id,
        owner=stored.manifest.owner,
        dataset=stored.manifest.dataset,
        manifest_sha256=stored.manifest.digest,
        outputs=tuple(outputs),
        rows=rows,
        peers=tuple(peers),
        job=dict(job),
    )
    outsource_request.write_request(job_dir, request, batch.to_bytes())
    t1 = time.perf_counter()
    sealed = outsource_request.await_answer(job_dir, window_s)
    if timing is not None:
        timing |= {"helper_mask": t1 - t0, "owner_wait": time.perf_counter() - t1}
    return outsource.Forwarded.of(batch, sealed), masks


async def converted_input(
    mpc: Any,
    helper: int,
    staged: tuple[Any, Any] | None,
    key_pem: bytes,
    job_id: str,
    rows: bool,
    sectype: Any,
    series: int = 1,
) -> Any:
    """Every party's part, inside the MPC: receive the forwarded shares, open its own with
    its per-job key (the helper subtracts its masks), and input it; returns the outsourced
    totals (exact, wrap undone) or rows as a secure array of ``sectype`` (``series`` ×
    rows when a rows conversion carries several columns)."""
    mine = await own_share(mpc, helper, staged, key_pem, job_id, rows)
    if rows:
        return await outsourced_rows(mpc, mine, sectype, series)
    return await outsourced_totals(mpc, mine, sectype)


async def own_share(
    mpc: Any, helper: int, staged: tuple[Any, Any] | None, key_pem: bytes, job_id: str, rows: bool
) -> Any:
    """This party's additive share of the conversion, opened with its per-job key (the
    helper's minus its masks): what it inputs. A program that inputs parts of a rows
    conversion in different secure types (``protocols.he_join``) starts from here."""
    from ensnif_mpc.he import outsource, outsource_rows

    forwarded = staged[0] if staged else None
    if rows:
        received = await forward_own_shares(mpc, helper, forwarded)
    else:
        received = (await forward_shares(mpc, helper, forwarded))[0]
    mine = outsource.open_share(key_pem, received, job_id, mpc.pid)
    if mpc.pid == helper:
        if staged is None:
            raise ValueError("the helper converts only what it staged")
        subtract = outsource_rows.helper_row_input if rows else outsource.helper_input
        mine = subtract(mine, staged[1])
    return mine


# -- in a job: the worker's hook and the aggregates' input ---------------------------------


@dataclass(frozen=True)
class OutsourcedInput:
    """An outsourced dataset's input in this job, at every party: the position its holder
    plays (the owner's), this party's per-job MPC key (its sealed share is opened with it),
    and at the holder what it staged (forwarded shares and its masks; None elsewhere)."""

    position: int
    key_pem: bytes
    job_id: str
    staged: tuple[Any, Any] | None = None
    rows: int = 0  # at the holder: the signed row count (public in the catalog)
    scale: int = 1  # at the holder: 10^(session decimals − the column's decimals)
    # At the holder, for a rows conversion (``mode`` "rows"): per converted column, in the
    # job's order, 10^(session decimals − its decimals) and its declared bound on the
    # session's grid (public: the signed schema the catalog shows).
    mode: str = "totals"
    scales: tuple[int, ...] = ()
    bounds: tuple[int, ...] = ()
    # At the holder: the owner's signed min_cohort where the protocol holds the joint
    # minimum cohort inside MPC (the holder inputs it, ``protocols.joint_cohort.floor``).
    min_cohort: int = 0


def for_session(session: Any, directory: Path, report: Any) -> OutsourcedInput | None:
    """Before the MPC connects: the holder masks, leaves the owner its request and waits
    for the owner's answer within the window (``owner_offline`` / ``owner_refused``: no
    MPC runs, nothing is opened, the node gives the reservation back)."""
    positions = list(session.extra.get("outsourced_positions", []))
    if not positions:
        return None
    if len(positions) != 1:
        raise ValueError("a job reads at most one outsourced input")
    key = (directory / ".config" / f"party_{session.index}.key").read_bytes()
    out = session.outsourced
    if not out:
        return OutsourcedInput(positions[0], key, session.job_id)
    from ensnif_mpc.security.mpc_session import PeerBinding
    from ensnif_mpc.security.pki import identity_of, parse_cert

    peers = [
        PeerBinding(**{**p, "binding_signature": bytes.fromhex(p["binding_signature"])})
        for p in session.extra["peers"]
    ]
    analyst = identity_of(parse_cert(session.analyst_cert_pem)).name
    job = {"protocol": session.protocol, "analyst": analyst, "release": session.release}
    report("awaiting owner", 0.04, f"waiting for {out['owner']}: ensnif outsource serve")
    mode = str(out.get("mode", "totals"))
    timing: dict[str, float] = {}
    staged = helper_stage(
        Path(out["directory"]),
        session.extra["ca_pem"].encode(),
        directory,
        session.job_id,
        list(out.get("outputs") or [out["column"]]),
        mode == "rows",
        peers,
        job,
        float(session.extra.get("owner_window_s", 30.0)),
        timing,
    )
    # For operators and the bench: seconds of the masking and of the wait (no data in it).
    (directory / "outsourced" / "timing.json").write_text(json.dumps(timing))
    scale = 10 ** (session.decimals - int(out["decimals"]))
    return OutsourcedInput(
        positions[0],
        key,
        session.job_id,
        staged,
        int(out["rows"]),
        scale,
        mode,
        tuple(int(v) for v in out.get("scales", ())),
        tuple(int(v) for v in out.get("bounds", ())),
        int(out.get("min_cohort", 0)),
    )


async def owner_totals(mpc: Any, hosted: OutsourcedInput, sectype: Any) -> Any:
    """The outsourced column's (sum, count) on the session's scale, secret-shared: the sum
    from the masked conversion, the count the holder's input of the signed row count."""
    converted = await converted_input(
        mpc, hosted.position, hosted.staged, hosted.key_pem, hosted.job_id, False, sectype
    )
    mine = mpc.pid == hosted.position
    known = np.array([hosted.scale, hosted.rows] if mine else [0, 0], dtype=object)
    public = mpc.input(sectype.array(known), senders=hosted.position)
    return mpc.np_hstack([converted * public[0], public[1:2]])
