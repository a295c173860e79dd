"""Runs tests/protocols/he_outsourced_probe.py: three real MPyC processes, a real outsourced
dataset (TenSEAL BFV, signed by its owner), per-job MPC keys bound to the consortium
identities, and the owner's client in this process (decrypting only masked values and
sealing a share to each party). Used by tests/protocols/test_he_outsourced.py and
bench/he_outsource.py. MPyC is never imported here."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ensnif_mpc.data.schema import Column
from ensnif_mpc.he import (
    bfv,
    outsource,
    outsource_request,
    outsource_rows,
    outsource_table as table,
)
from ensnif_mpc.he.keys import KeyDir
from ensnif_mpc.security import mpc_session, pki
from tests.helpers import issue_pki
from tests.protocols.harness import free_ports

PROBE = Path(__file__).with_name("he_outsourced_probe.py")
ROOT = Path(__file__).resolve().parents[2]
PARTIES = ("grocery", "logistics", "helper")  # index 2 is the helper (the probe's HELPER)
OWNER = "cityoffice"  # a member with no node: an analyst certificate and a BFV key
DECIMALS = 2


@dataclass
class ProbeRun:
    totals: list[int]
    wall_s: float
    owner_s: float = 0.0  # the owner's client: decrypt, share, seal
    encrypt_s: float = 0.0
    accept_s: float = 0.0  # the helper's one-off verification and precomputed sums
    timing: dict[int, dict[str, float]] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    reason: str = ""  # the helper's reason when the job ended without a result


def column(edges: tuple[float, ...]) -> table.OutsourcedColumn:
    return table.OutsourcedColumn(Column("amount", "float", 0.0, 1000.0, DECIMALS), edges)


def partials(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """What a live owner pre-aggregates locally, in the order of ``column(edges).series()``:
    the sum, then per bin (count, sum), on the integer grid."""
    grid = np.rint(values * 10**DECIMALS).astype(np.int64)
    index = table.bin_index(grid, edges, DECIMALS)
    out = [int(grid.sum())]
    for b in range(len(edges) - 1):
        member = index == b
        out += [int(member.sum()), int(grid[member].sum())]
    return np.array(out, dtype=object)


def prepare(
    work: Path, outsourced: np.ndarray, edges: tuple[float, ...], pki_dir: Path | None = None
) -> dict[str, object]:
    """PKI (a new one, or the parties' certificates of ``pki_dir`` and a new owner
    certificate there), the owner's key and its encrypted, signed dataset in
    ``work/probe/dataset``."""
    if pki_dir is None:
        certs = issue_pki(work / "pki", {**{p: "party" for p in PARTIES}, OWNER: "analyst"})
    else:
        certs = {
            p: pki.CertFiles(pki_dir / pki.CA_CERT, pki_dir / f"{p}.crt", pki_dir / f"{p}.key")
            for p in PARTIES
        }
        certs[OWNER] = pki.issue(pki_dir, OWNER, "analyst")
        (work / "pki").mkdir(parents=True, exist_ok=True)
        (work / "pki" / pki.CA_CERT).write_bytes((pki_dir / pki.CA_CERT).read_bytes())
    key = bfv.keygen(work / "owner-key")
    probe = work / "probe"
    t0 = time.perf_counter()
    manifest, frames = table.encrypt_table(
        key, "payments", OWNER, {"amount": outsourced}, [column(edges)], {"max_rho": 0.5}
    )
    table.write(
        probe / "dataset",
        key,
        manifest,
        frames,
        certs[OWNER].key.read_bytes(),
        certs[OWNER].cert.read_bytes(),
    )
    encrypt_s = time.perf_counter() - t0
    ca = (work / "pki" / pki.CA_CERT).read_bytes()
    (probe / "ca.crt").write_bytes(ca)
    t0 = time.perf_counter()  # the helper accepts the upload: verify, precompute the sums
    outsource.precompute_sums(table.open_stored(probe / "dataset", ca))
    accept_s = time.perf_counter() - t0
    return {
        "certs": certs,
        "key": key,
        "probe": probe,
        "encrypt_s": encrypt_s,
        "accept_s": accept_s,
    }


def run(
    work: Path,
    live: np.ndarray,
    outsourced: np.ndarray,
    edges: tuple[float, ...],
    mode: str = "outsourced",
    job_id: str = "job-he-1",
    timeout_s: float = 180.0,
    owner_online: bool = True,
    window_s: float = 120.0,
    sigma_share: float = 0.0,
    pki_dir: Path | None = None,
    job_dir: Path | None = None,
    owner: Callable[[], object] | None = None,
    dataset_dir: Callable[[Path], Path] | None = None,
) -> ProbeRun:
    """One job: ``mode`` "outsourced" (the helper holds ciphertexts) or "live" (the same
    job with the helper's rows in the clear, the baseline) or "rows" (the outsourced
    column's rows converted; ``live`` is then another column of the same rows at party 0,
    and the totals are Σx, Σx², Σxy). ``owner_online=False``: no
    owner client runs; the helper ends the job after ``window_s``. ``sigma_share``: each
    party's discrete Gaussian noise scale (0: exact release). With ``job_dir`` (a job
    directory of a running helper node, whose consortium's ``pki_dir`` is given) the
    helper leaves its request there for the node to serve, and ``owner`` (e.g. the real
    `ensnif outsource serve --once`) answers it instead of the in-process client."""
    setup = prepare(work, outsourced, edges, pki_dir)
    certs, key, probe = setup["certs"], setup["key"], Path(str(setup["probe"]))
    # ``dataset_dir`` hands the owner's directory to a helper node and says where it stores it
    stored_at = dataset_dir(probe / "dataset") if dataset_dir else probe / "dataset"
    assert isinstance(certs, dict) and isinstance(key, KeyDir)
    outputs = ["amount"] if mode == "rows" else column(edges).series()
    if mode == "rows":  # the live owner holds another column of the same rows
        np.save(
            probe / "live_rows.npy", np.rint(live * 10**DECIMALS).astype(np.int64).astype(object)
        )
    np.save(probe / "live.npy", partials(live, edges))
    np.save(probe / "helper_live.npy", partials(outsourced, edges))
    peers = []
    for index, name in enumerate(PARTIES):
        cred = mpc_session.mint(job_id, index, certs[name].key.read_bytes())
        (probe / f"party_{index}.key").write_text(cred.key_pem)
        peers.append(
            mpc_session.PeerBinding(
                index,
                name,
                "127.0.0.1:0",
                cred.cert_pem,
                cred.binding_signature,
                certs[name].cert.read_text(),
            )
        )
    ports = free_ports(3)
    args = [a for p in ports for a in ("-P", f"127.0.0.1:{p}")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        PROBE_DIR=str(probe),
        PROBE_OUTPUTS=json.dumps(outputs),
        PROBE_JOB=job_id,
        PROBE_MODE=mode,
        PROBE_TIMING="1",
        PROBE_WINDOW=str(window_s),
        PROBE_SIGMA=str(sigma_share),
        PROBE_JOB_DIR=str(job_dir or ""),
        PROBE_DATASET=str(stored_at),
        PROBE_PEERS=json.dumps([_peer_json(p) for p in peers]),
        PYTHONPATH=str(ROOT),
    )
    t0 = time.perf_counter()
    procs = []
    for i in range(3):
        with (probe / f"{i}.out").open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(PROBE), "-I", str(i), *args],
                    cwd=probe,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                )
            )
    owner_s = 0.0
    try:
        if not owner_online:  # no owner, or one that refuses (``owner``): no result
            if owner is not None:
                owner()
            return _offline(probe, procs, timeout_s, time.perf_counter() - t0)
        if owner is not None:
            t_owner = time.perf_counter()
            owner()
            owner_s = time.perf_counter() - t_owner
        elif mode in ("outsourced", "rows"):
            owner_s = _owner_client(probe, key, procs, timeout_s, rows=mode == "rows")
        codes = [p.wait(timeout=timeout_s) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    wall = time.perf_counter() - t0
    texts = [(probe / f"{i}.out").read_text(errors="replace") for i in range(3)]
    if codes != [0, 0, 0]:
        raise RuntimeError(f"probe parties exited {codes}: {texts}")
    lines = [dict(ln.split(" ", 1) for ln in t.splitlines() if " " in ln) for t in texts]
    return ProbeRun(
        totals=json.loads(lines[0]["totals"]),
        wall_s=wall,
        owner_s=owner_s,
        encrypt_s=float(str(setup["encrypt_s"])),
        accept_s=float(str(setup["accept_s"])),
        timing={i: json.loads(ln["timing"]) for i, ln in enumerate(lines) if "timing" in ln},
        outputs=outputs,
    )


def _peer_json(p: mpc_session.PeerBinding) -> dict[str, object]:
    return {
        "index": p.index,
        "party": p.party,
        "mpc_address": p.mpc_address,
        "mpc_cert_pem": p.mpc_cert_pem,
        "binding_signature": base64.b64encode(p.binding_signature).decode(),
        "party_cert_pem": p.party_cert_pem,
    }


def _offline(
    probe: Path, procs: list[subprocess.Popen[bytes]], timeout_s: float, started: float
) -> ProbeRun:
    """The helper gives up after its window; its peers, still waiting to connect (as a
    node's watchdog would end them), are stopped; nothing was opened anywhere."""
    t0 = time.perf_counter()
    procs[2].wait(timeout=timeout_s)
    wall = started + time.perf_counter() - t0
    for p in procs[:2]:
        p.kill()
        p.wait(timeout=10)
    texts = [(probe / f"{i}.out").read_text(errors="replace") for i in range(3)]
    if any("totals" in t for t in texts):
        raise AssertionError(f"a party opened totals without the owner: {texts}")
    reasons = [ln.split(" ", 1)[1] for ln in texts[2].splitlines() if ln.startswith("reason ")]
    return ProbeRun(totals=[], wall_s=wall, reason=reasons[0] if reasons else texts[2])


def _owner_client(
    probe: Path,
    key: KeyDir,
    procs: list[subprocess.Popen[bytes]],
    timeout_s: float,
    rows: bool = False,
) -> float:
    """What `ensnif outsource serve` does for a job, without a node in between: take the
    request and masked batch the helper left, decrypt, share, seal each share to the
    per-job key of its party (bindings checked), and answer."""
    deadline = time.monotonic() + timeout_s
    while (found := outsource_request.read_request(probe)) is None:
        if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
            raise RuntimeError("the helper never left a conversion request")
        time.sleep(0.02)
    t0 = time.perf_counter()
    request, raw = found
    batch = outsource.MaskedBatch.from_bytes(raw)
    ca = (probe / "ca.crt").read_bytes()
    share = outsource_rows.share_masked_rows if rows else outsource.share_masked
    sealed = share(key.context, key.context_sha256, batch, request.peers, ca)
    outsource_request.write_answer(probe, sealed)
    return time.perf_counter() - t0


def run_wrap(work: Path, d: list[int], timeout_s: float = 120.0) -> list[int]:
    """The probe's correction step alone on chosen d values; returns what the MPC recovers."""
    work.mkdir(parents=True, exist_ok=True)
    ports = free_ports(3)
    args = [a for p in ports for a in ("-P", f"127.0.0.1:{p}")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        PROBE_DIR=str(work),
        PROBE_OUTPUTS="[]",
        PROBE_JOB="wrap",
        PROBE_MODE="wrap",
        PROBE_D=json.dumps(d),
        PYTHONPATH=str(ROOT),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, str(PROBE), "-I", str(i), *args],
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        for i in range(3)
    ]
    try:
        outs = [p.communicate(timeout=timeout_s)[0].decode(errors="replace") for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    if any(p.returncode for p in procs):
        raise RuntimeError(f"wrap probe failed: {outs}")
    line = next(ln for ln in outs[0].splitlines() if ln.startswith("totals "))
    return [int(v) for v in json.loads(line.split(" ", 1)[1])]
