"""The model benchmarks' Ensnif run: the test harness's three real ``protocols.worker``
processes (per-job certificates, TLS, each owner reading its own parquet file, shares
sealed to the analyst and combined), with the setup timed apart from the job.

Why apart: writing the owners' million-row files into each party's job directory and
issuing the consortium's certificates are the benchmark's own preparation (a member's data
is already in its engine, its node already has its certificate); the job is from starting
the workers to the analyst's combined result. Both are printed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ensnif_mpc.jobs.worker_session import WorkerStatus
from ensnif_mpc.privacy.dp import ReleasePlan
from ensnif_mpc.results.shares import combine
from protocols import registry
from tests.protocols import forkserver, harness


@dataclass
class TimedRun:
    outputs: dict[str, Any]
    setup: float  # certificates and the owners' files, seconds
    job: float  # workers started to the analyst's combined result, seconds
    statuses: list[WorkerStatus]

    @property
    def cpu(self) -> list[float]:
        return [round(s.cpu_seconds, 2) for s in self.statuses]

    @property
    def sent(self) -> list[int]:
        return [s.bytes_sent for s in self.statuses]

    @property
    def rounds(self) -> list[int]:
        return [s.rounds for s in self.statuses]

    def summary(self) -> str:
        return (
            f"job {self.job:.2f} s (setup {self.setup:.1f} s apart), cpu per party {self.cpu}, "
            f"rounds {self.rounds}, bytes sent {self.sent}"
        )


def run(
    work: Path,
    protocol: str,
    tables: Sequence[harness.OwnerTable | None],
    params: Mapping[str, Any],
    *,
    decimals: int,
    job_id: str,
    timeout: float,
    release: Mapping[str, Any] | None = None,
) -> TimedRun:
    t = time.perf_counter()
    consortium = harness.make_consortium(work, len(tables))
    bits = harness.bit_length_for(tables, decimals, protocol)
    if release:
        bits += ReleasePlan.from_dict(dict(release)).headroom_bits()
    dirs = harness.write_sessions(
        work,
        consortium,
        job_id=job_id,
        protocol=protocol,
        owner_values=tables,
        params=dict(params),
        decimals=decimals,
        bit_length=bits,
        release=release,
    )
    forkserver.warm()  # the zygote's imports, paid once before any timer (a node's standby)
    setup = time.perf_counter() - t
    t = time.perf_counter()
    with harness.Workers(dirs) as workers:
        workers.start_all()
        codes = workers.wait(timeout=timeout)
        if any(codes.values()):
            raise AssertionError(f"workers failed: {codes}\n{workers.diagnose()}")
    outputs = registry.finalize(protocol, combine(harness.unseal_all(dirs, consortium, job_id)))
    job = time.perf_counter() - t
    statuses = [harness.status_of(d) for d in dirs]
    assert all(s is not None for s in statuses)
    return TimedRun(outputs, setup, job, statuses)  # type: ignore[arg-type]
