"""k parallel MPC sessions per party on keyed-hash partitions (protocols/partitions.py):
the partition function and the combination on their own, and intersection_sum / _size as
k = 2 and 3 sessions of three real workers each (two owners, one helper, TLS over
loopback) against pandas, exact and DP, and a killed sibling session."""

from __future__ import annotations

import dataclasses
import json
import secrets
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ensnif_mpc.jobs.worker_session import WorkerSession, WorkerStatus
from ensnif_mpc.results.shares import combine as combine_shares
from protocols import partitions, registry
from tests.protocols.harness import (
    Workers,
    bit_length_for,
    make_consortium,
    unseal_all,
    write_sessions,
)
from tests.protocols.test_join import deliveries, orders, reference
from tests.protocols.test_join_tagged import exact_sum


# -- the partition function ---------------------------------------------------------------
def test_partition_is_a_keyed_function_of_the_key_spread_evenly() -> None:
    key, other = secrets.token_bytes(32), secrets.token_bytes(32)
    ints = np.arange(40_000, dtype=np.int64)
    parts = partitions.assign(key, ints, 4)
    assert parts.min() == 0 and parts.max() == 3
    counts = np.bincount(parts, minlength=4)
    # Multinomial(40,000, 1/4): each count within 5 sd (sd ≈ 87) of 10,000.
    assert np.all(np.abs(counts - 10_000) < 5 * 87)
    np.testing.assert_array_equal(parts, partitions.assign(key, ints, 4))  # deterministic
    assert (partitions.assign(other, ints, 4) != parts).mean() > 0.7  # another key: another split
    strs = np.array([f"c{i}" for i in range(1000)], dtype=object)
    np.testing.assert_array_equal(
        partitions.assign(key, strs, 3), partitions.assign(key, list(strs), 3)
    )
    assert (partitions.assign(key, ints, 1) == 0).all()


def test_the_partitions_are_disjoint_and_cover_every_key() -> None:
    key = secrets.token_bytes(32)
    parts = partitions.assign(key, np.arange(1000), 3)
    masks = np.array([parts == s for s in range(3)])
    assert (masks.sum(axis=0) == 1).all()


def test_the_padded_size_bounds_a_partition_and_depends_on_the_total_only() -> None:
    n, k = 330_000, 4
    size = partitions.padded_size(n, k)
    rng = np.random.default_rng(0)
    assert rng.multinomial(n, [1 / k] * k, size=2000).max() < size
    assert size < (n / k) * (1 + 9 / np.sqrt(n / k))  # about 8 / sqrt(n / k) more entries
    partitions.install(partitions.Partition(1, k, b"x" * 32))
    try:
        assert partitions.padding(n, 82_000) == size - 82_000
        with pytest.raises(RuntimeError):
            partitions.padding(n, size + 1)
    finally:
        partitions.install(None)
    assert partitions.padding(n, n) == 0  # not partitioned


def test_sibling_addresses_shift_every_port() -> None:
    assert partitions.sibling_addresses(["a:100", "10.0.0.2:200"], 2) == ["a:102", "10.0.0.2:202"]


# -- real sessions ----------------------------------------------------------------------------
def _free_blocks(n: int, k: int) -> list[int]:
    """n first ports, each the start of k consecutive free loopback ports."""
    found: list[int] = []
    port = 20_000 + secrets.randbelow(20_000)
    while len(found) < n:
        block = range(port, port + k)
        ok = True
        for p in block:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            found.append(port)
        port += k + 1
    return found


def _partitioned(dirs: list[Path], k: int) -> None:
    """Make the harness's sessions one job of k sessions: extra.sessions and port blocks."""
    ports = _free_blocks(len(dirs), k)
    for d in dirs:
        session = WorkerSession.read(d)
        addresses = [f"127.0.0.1:{p}" for p in ports]
        dataclasses.replace(
            session, addresses=addresses, extra={**session.extra, "sessions": k}
        ).write(d)


def _run(
    tmp_path: Path,
    protocol: str,
    tables: list[Any],
    params: dict[str, Any],
    k: int,
    release: dict[str, Any] | None = None,
    job_id: str = "job1",
    kill_sibling_of: int | None = None,
    decimals: int = 2,
    bounds: tuple[float, float] = (0.0, 0.0),
) -> tuple[dict[str, Any] | None, list[Path], dict[int, int], Workers]:
    from tests.protocols.harness import _headroom, as_table

    root = tmp_path / job_id
    consortium = make_consortium(root, 3)
    lower, upper = bounds
    sized = [None if t is None else as_table(t, lower, upper, decimals) for t in tables]
    bit_length = bit_length_for(sized, decimals, protocol) + _headroom(release)
    dirs = write_sessions(
        root,
        consortium,
        job_id=job_id,
        protocol=protocol,
        owner_values=tables,
        params=params,
        decimals=decimals,
        bit_length=bit_length,
        release=release,
        lower=lower,
        upper=upper,
    )
    _partitioned(dirs, k)
    with Workers(dirs) as workers:
        workers.start_all()
        if kill_sibling_of is not None:
            _kill_sibling(dirs[kill_sibling_of])
        codes = workers.wait(timeout=300)
    if any(codes.values()):
        return None, dirs, codes, workers
    parts = unseal_all(dirs, consortium, job_id)
    return registry.finalize(protocol, combine_shares(parts)), dirs, codes, workers


def _kill_sibling(directory: Path) -> None:
    """SIGKILL session 1's worker at this party once it computes (mid-job)."""
    import os
    import signal

    deadline = time.monotonic() + 120
    sib = directory / "part1"
    while time.monotonic() < deadline:
        st = WorkerStatus.read(sib) if sib.exists() else None
        if st is not None and st.phase in ("computing", "tagging", "aggregating"):
            os.kill(int((sib / partitions.PID_FILE).read_text()), signal.SIGKILL)
            return
        time.sleep(0.01)
    raise AssertionError("session 1 never started computing")


@pytest.mark.slow
@pytest.mark.parametrize("k", [2, 3])
def test_intersection_sum_and_size_in_k_sessions_match_pandas(
    tmp_path: Path, k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from protocols.join.tagged import TRACE_ENV, TRACE_FILE

    monkeypatch.setenv(TRACE_ENV, "1")
    rng = np.random.default_rng(21 + k)
    a = orders(rng, 3000, customers=1500)
    b = deliveries(rng, 2500, offset=600, customers=1500)
    params = {"min": 20.0, "sessions": k}
    got, dirs, codes, _ = _run(tmp_path, "intersection_sum", [a, b, None], params, k)
    assert got is not None, codes
    want = reference("intersection_sum", [a, b], params)
    assert got["keys"] == want["keys"] and got["rows"] == want["rows"]
    assert got["sum"] == exact_sum(a, b, 20.0)
    # k sessions ran at each party; each session's figures are recorded; P not on disk.
    for d in dirs:
        stats = json.loads((d / partitions.SESSIONS_FILE).read_text())
        assert [s["session"] for s in stats] == list(range(k))
        assert all(s["bytes_sent"] > 0 and s["rounds"] > 0 for s in stats)
        assert not (d / "partition.key").exists()  # P lives in the workers' memory only
        assert len(partitions.sibling_dirs(d)) == k - 1
    # B receives A's vector (2 columns of 8 bytes per entry) padded to one public length
    # in every session: the split of A's keys over the partitions does not show.
    n_a = len(set(a.data["customer"][a.data["basket"] >= 20.0].tolist()))
    width = 2 * 16 * partitions.padded_size(n_a, k)  # hex characters
    for session_dir in [dirs[1], *partitions.sibling_dirs(dirs[1])]:
        received = json.loads((session_dir / TRACE_FILE).read_text())["received"]
        assert sum(len(r) == width for r in received) == 1, session_dir
    size, *_ = _run(tmp_path, "intersection_size", [a, b, None], {"sessions": k}, k, job_id="size")
    assert size is not None
    assert size["count"] == reference("intersection_size", [a, b], {})["count"]


@pytest.mark.slow
def test_dp_intersection_sum_in_two_sessions_is_noised_once_within_tolerance(
    tmp_path: Path,
) -> None:
    """The families' DP job (capped rows per key) as two sessions: the totals are noised
    once, with the plan's sd (not k times, not with a per-partition split)."""
    from tests.protocols import test_dp_families as fam

    tables, _, params, _, _ = fam.JOBS["intersection_sum"]
    plan = fam._plan("intersection_sum")
    got, dirs, codes, _ = _run(
        tmp_path,
        "intersection_sum",
        tables,
        {**params, "sessions": 2},
        2,
        plan.to_dict(),
        decimals=0,
        bounds=(0.0, 100.0),
    )
    assert got is not None, codes
    per_key = fam._capped_per_key(fam.SMALL_A, cap=2)
    hit = per_key[per_key.index.isin(set(fam.SMALL_B["k"]))]
    want = {"keys": len(hit), "rows": hit["a"].sum(), "sum": hit["x"].sum()}
    sds = dict(zip(["keys", "rows", "sum"], plan.output_sigmas(), strict=True))
    for name, value in want.items():
        assert abs(float(got[name]) - value) <= fam.SIGMAS * sds[name], name
    assert all(len(partitions.sibling_dirs(d)) == 1 for d in dirs)


@pytest.mark.slow
def test_a_killed_sibling_ends_the_job_everywhere_with_nothing_released(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    a = orders(rng, 40_000, customers=20_000)
    b = deliveries(rng, 40_000, offset=5000, customers=20_000)
    got, dirs, codes, _ = _run(
        tmp_path, "intersection_sum", [a, b, None], {"sessions": 2}, 2, kill_sibling_of=1
    )
    assert got is None and all(codes.values()), codes
    for d in dirs:
        assert not (d / "result.sealed").exists()
    reasons = [WorkerStatus.read(d).reason_code for d in dirs]  # type: ignore[union-attr]
    assert reasons[1] == "partition_failed"
    assert set(reasons) <= {"partition_failed", "peer_lost"}


def test_combine_adds_shares_of_the_same_field_and_refuses_a_mismatch() -> None:
    class Field:
        modulus = 101

        def __init__(self, v: int) -> None:
            self.v = v % 101

    class Sec:
        field = Field

        def __init__(self, v: Any) -> None:
            self.share = v.v if isinstance(v, Field) else v

        def __add__(self, other: Sec) -> Sec:
            return Sec(Field(self.share + other.share))

    @dataclasses.dataclass(frozen=True)
    class Out:
        name: str
        value: Any

    mine = [Out("keys", Sec(Field(7))), Out("sum", Sec(Field(100)))]
    partials = [
        [{"name": "keys", "modulus": 101, "share": 5}, {"name": "sum", "modulus": 101, "share": 3}]
    ]
    got = partitions.combine(mine, partials)
    assert [o.value.share for o in got] == [12, 2]
    with pytest.raises(ValueError):
        partitions.combine(mine, [[{"name": "rows", "modulus": 101, "share": 1}] * 2])
    with pytest.raises(ValueError):
        partitions.combine(mine, [[{"name": "keys", "modulus": 103, "share": 1}] * 2])
