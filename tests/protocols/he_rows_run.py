"""Runs a registry protocol with one OUTSOURCED owner through the real worker
(``python -m protocols.worker``, one process per MPyC party), as the nodes would: party 0 a
live owner (its dataset file), party 1 the outsourced owner's position played by the helper
that stores its encrypted, signed dataset (TenSEAL BFV), party 2 compute-only. The
holder's session is what the helper node's admission writes (``outsourced``, the
session's peers and CA, ``outsourced_positions`` at every party); the owner's client runs
in this process: it reads the request the holder's worker leaves in its job directory,
decrypts only the masked batch, seals a share to each party and answers.

Used by tests/protocols/test_he_outsourced.py (a few thousand rows) and
bench/he_outsource.py (``--ridge``: 100,000 × 10). Reports the time split and every
worker's CPU seconds and peak RSS. MPyC is never imported here."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ensnif_mpc.data.schema import Column
from ensnif_mpc.he import (
    bfv,
    outsource,
    outsource_keys,
    outsource_request,
    outsource_rows,
    outsource_table,
)
from ensnif_mpc.he.keys import KeyDir
from ensnif_mpc.jobs import join_path
from ensnif_mpc.jobs.worker_session import SESSION_FILE
from ensnif_mpc.results.shares import combine
from ensnif_mpc.security import mpc_session, pki
from protocols import registry
from tests.protocols.harness import (
    OwnerTable,
    Workers,
    bit_length_for,
    make_consortium,
    status_of,
    unseal_all,
    write_sessions,
)

OWNER = "cityoffice"
JOINS = join_path.OUTSOURCED_JOINS  # a join side converted row by row
HOLDER = 1  # the outsourced owner's position, played by the helper


@dataclass
class OutsourcedRun:
    outputs: dict[str, Any]
    wall_s: float
    encrypt_s: float = 0.0
    helper_mask_s: float = 0.0  # the holder's worker: verify, mask, flood (before its MPC)
    owner_s: float = 0.0  # the owner's client: decrypt, share, seal (wall)
    owner_cpu_s: float = 0.0
    mpc_s: float = 0.0  # from the owner's answer to the last worker's exit
    batch_bytes: int = 0  # the masked batch the owner downloads
    sealed_bytes: int = 0  # the sealed shares the owner sends back
    stored_bytes: int = 0
    cpu_s: dict[int, float] = field(default_factory=dict)
    peak_rss_mb: dict[int, float] = field(default_factory=dict)
    bytes_sent: dict[int, int] = field(default_factory=dict)
    parts: list[Any] = field(default_factory=list)  # every party's unsealed shares


@dataclass(frozen=True)
class OutsourcedTable(OwnerTable):
    """The outsourced owner's table, with the bin edges it declares per column and the
    columns it encrypts as join keys (``key = true``)."""

    bins: Mapping[str, Sequence[float]] = field(default_factory=dict)
    keys: Sequence[str] = ()


def _encrypt(
    root: Path, pki_dir: Path, table: OutsourcedTable, policy: Mapping[str, Any]
) -> tuple[Path, outsource_table.Manifest, KeyDir, float]:
    certs = pki.issue(pki_dir, OWNER, "analyst")
    key = bfv.keygen(root / "owner-key")
    columns = [
        outsource_table.OutsourcedColumn(c, tuple(table.bins.get(c.name, ())), c.name in table.keys)
        for c in table.columns
    ]
    t0 = time.perf_counter()
    manifest, frames = outsource_table.encrypt_table(
        key, "payments", OWNER, dict(table.data), columns, dict(policy), helper="party1"
    )
    directory = root / "helper-store" / OWNER / "payments"
    outsource_table.write(
        directory, key, manifest, frames, certs.key.read_bytes(), certs.cert.read_bytes()
    )
    encrypt_s = time.perf_counter() - t0
    outsource.precompute_sums(outsource_table.open_stored(directory, certs.ca.read_bytes()))
    return directory, manifest, key, encrypt_s


def _rebind(dirs: Sequence[Path], key_pems: Sequence[bytes], names: Sequence[str], job_id: str,
            certs: Sequence[str]) -> list[mpc_session.PeerBinding]:  # fmt: skip
    """Fresh per-job MPC credentials for every party (the harness keeps no binding
    signature), written to each job directory's ``.config`` as a node would."""
    sessions = [json.loads((d / SESSION_FILE).read_text()) for d in dirs]
    creds = [mpc_session.mint(job_id, i, key_pems[i]) for i in range(len(dirs))]
    peers = [
        mpc_session.PeerBinding(
            i, names[i], sessions[0]["addresses"][i], c.cert_pem, c.binding_signature, certs[i]
        )
        for i, c in enumerate(creds)
    ]
    for i, d in enumerate(dirs):
        mpc_session.write_config(d, i, creds[i], peers)
    return peers


def _holder_input(
    protocol: str, table: OutsourcedTable, directory: Path, manifest: Any, decimals: int
) -> dict[str, Any]:
    """The ``outsourced`` session input the helper's admission writes
    (party_node/outsourced_admission.check_input)."""
    declared = {c.name: c for c in table.columns}
    if protocol in JOINS:
        key = table.roles["key"]
        groups = [declared[table.roles["group"]]] if "group" in table.roles else []
        names = [table.roles[r] for r in ("filter", "value") if r in table.roles]
        names += [*table.lists.get("features", ()), *(
            [table.roles["label"]] if "label" in table.roles else []
        )]  # fmt: skip
        values = [declared[n] for n in names]
        out_join: dict[str, Any] = {
            "mode": "rows",
            "columns": [key, *(c.name for c in [*groups, *values])],
            "outputs": [*outsource_keys.series_names(key), *(c.name for c in [*groups, *values])],
            "scales": [1] * (outsource_keys.LIMBS + len(groups))
            + [10 ** (decimals - c.decimals) for c in values],
            "bounds": [outsource_keys.LIMB_BOUND] * outsource_keys.LIMBS
            + [math.ceil(c.abs_bound) for c in groups]
            + [math.ceil(c.abs_bound * 10**decimals) for c in values],
        }
        return out_join | _common(table, directory, manifest, key)
    if protocol in ("linear_regression", "logistic_regression", "kmeans"):
        label = [table.roles["label"]] if "label" in table.roles else []
        cols = [declared[n] for n in [*table.lists["features"], *label]]
        out: dict[str, Any] = {
            "mode": "rows",
            "columns": [c.name for c in cols],
            "outputs": [c.name for c in cols],
            "scales": [10 ** (decimals - c.decimals) for c in cols],
            "bounds": [math.ceil(c.abs_bound * 10**decimals) for c in cols],
        }
    else:
        column = table.roles["value"]
        outputs = [column]
        if protocol == "histogram":
            outputs = [f"{column}@bin{b}" for b in range(len(table.bins[column]) - 1)]
        out = {"columns": [column], "outputs": outputs}
    return out | _common(table, directory, manifest, out["columns"][0])


def _common(table: OutsourcedTable, directory: Path, manifest: Any, first: str) -> dict[str, Any]:
    declared = {c.name: c for c in table.columns}
    return {
        "directory": str(directory),
        "owner": OWNER,
        "dataset": "payments",
        "manifest_sha256": manifest.digest,
        "column": first,
        "rows": manifest.rows,
        "decimals": declared[first].decimals,
        "charges": {},
    }


def run(
    tmp_path: Path,
    protocol: str,
    live: OwnerTable,
    outsourced: OutsourcedTable,
    params: Mapping[str, Any] | None = None,
    *,
    decimals: int,
    release: Mapping[str, Any] | None = None,
    policy: Mapping[str, Any] | None = None,
    job_id: str = "jobhe1",
    timeout: float = 120.0,
    holder: int = HOLDER,
) -> OutsourcedRun:
    """``holder``: the outsourced owner's position (0 or 1; the live owner takes the other)."""
    root = tmp_path / job_id
    consortium = make_consortium(root, 3)
    pki_dir = root / "pki"
    store, manifest, key, encrypt_s = _encrypt(root, pki_dir, outsourced, policy or {})
    owners: list[OwnerTable | None] = [live, outsourced, None]
    if holder == 0:
        owners = [outsourced, live, None]
    bit_length = bit_length_for(owners, decimals, protocol)
    if release:
        from ensnif_mpc.privacy.dp import ReleasePlan

        bit_length += ReleasePlan.from_dict(dict(release)).headroom_bits()
    dirs = write_sessions(
        root, consortium, job_id=job_id, protocol=protocol,
        owner_values=owners, params=dict(params or {}),
        decimals=decimals, bit_length=bit_length, release=release,
    )  # fmt: skip
    names = [f"party{i}" for i in range(3)]
    peers = _rebind(dirs, consortium.party_key_pems, names, job_id, consortium.party_cert_pems)
    ca = (pki_dir / pki.CA_CERT).read_text()
    for i, d in enumerate(dirs):
        session = json.loads((d / SESSION_FILE).read_text())
        session["extra"] = {**session["extra"], "outsourced_positions": [holder]}
        if i == holder:  # the helper node plays the owner: ciphertexts, no data source
            for written in d.glob("data.*"):
                written.unlink()
            session |= {"source": None, "dataset_columns": [], "roles": {}, "role_lists": {}}
            held = _holder_input(protocol, outsourced, store, manifest, decimals)
            if "joint_cohort" in registry.catalog()[protocol].extra:  # as the admission does
                held["min_cohort"] = int((policy or {}).get("min_cohort", 0))
            session["outsourced"] = held
            session["extra"] |= {
                "peers": [
                    {**vars(p), "binding_signature": p.binding_signature.hex()} for p in peers
                ],
                "ca_pem": ca,
                "owner_window_s": timeout / 2,
            }
        (d / SESSION_FILE).write_text(json.dumps(session))
    stored_bytes = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    result = OutsourcedRun({}, 0.0, encrypt_s=encrypt_s, stored_bytes=stored_bytes)
    t0 = time.perf_counter()
    with Workers(dirs) as workers:
        workers.start_all()
        answered = _owner_client(dirs[holder], key, ca.encode(), result, timeout)
        codes = _reap(workers, result, timeout)
        end = time.perf_counter()
        if any(codes.values()):
            raise AssertionError(f"workers failed: {codes}\n{workers.diagnose()}")
    result.wall_s = end - t0
    result.mpc_s = end - answered
    timing = dirs[holder] / outsource_request.FOLDER / "timing.json"
    if timing.exists():
        result.helper_mask_s = float(json.loads(timing.read_text()).get("helper_mask", 0.0))
    for i, d in enumerate(dirs):
        status = status_of(d)
        if status is not None:
            result.cpu_s[i], result.bytes_sent[i] = status.cpu_seconds, status.bytes_sent
    result.parts = unseal_all(dirs, consortium, job_id)
    result.outputs = registry.finalize(protocol, combine(result.parts))
    return result


def _owner_client(
    job_dir: Path, key: KeyDir, ca_pem: bytes, result: OutsourcedRun, timeout: float
) -> float:
    """The owner's `ensnif outsource serve`, in this process: wait for the holder's request,
    decrypt the masked batch, share, seal, answer. Returns when it answered."""
    deadline = time.monotonic() + timeout
    found = None
    while found is None:
        if time.monotonic() > deadline:
            raise AssertionError("the holder's worker left no conversion request")
        time.sleep(0.05)
        found = outsource_request.read_request(job_dir)
    request, raw = found
    t0, c0 = time.perf_counter(), time.process_time()
    batch = outsource.MaskedBatch.from_bytes(raw)
    share = outsource_rows.share_masked_rows if request.rows else outsource.share_masked
    sealed = share(key.context, key.context_sha256, batch, request.peers, ca_pem)
    outsource_request.write_answer(job_dir, sealed)
    result.owner_s, result.owner_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    result.batch_bytes, result.sealed_bytes = len(raw), sum(len(b) for b in sealed.values())
    return time.perf_counter()


def _reap(workers: Workers, result: OutsourcedRun, timeout: float) -> dict[int, int]:
    """Wait for every worker; meanwhile sample each one's peak resident memory (VmHWM,
    a high-water mark, so the last sample before it exits is its peak to within 50 ms of
    growth). The workers may be children of a fork server, so no wait4 here."""
    deadline = time.monotonic() + timeout
    codes: dict[int, int] = {}
    while len(codes) < len(workers.procs):
        for i, proc in workers.procs.items():
            if i in codes:
                continue
            peak = _peak_rss_mb(proc.pid)
            if peak:
                result.peak_rss_mb[i] = peak
            code = proc.poll()
            if code is not None:
                codes[i] = code
        if time.monotonic() > deadline:
            raise AssertionError(f"workers still running after {timeout} s: {workers.diagnose()}")
        time.sleep(0.05)
    return codes


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def column(name: str, lower: float, upper: float, decimals: int) -> Column:
    return Column(name, "float" if decimals else "int", lower, upper, decimals)
