"""A full Ensnif job for the benchmark: a local consortium (coordinator, grocery, logistics and
helper nodes as processes, mTLS gRPC), one job submitted through the Python SDK, timed from
``SubmitJob`` to the combined result, with each worker's phases, CPU time and bytes sent."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ensnif_mpc.demo.localnet import NODES, LocalConsortium
from ensnif_mpc.errors import EnsnifError
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.jobs.worker_session import STATUS_FILE
from ensnif_mpc.sdk.client import is_final, state_name
from protocols import registry

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class EnsnifRun:
    wall: float
    outputs: dict[str, float]
    worker_cpu: float  # summed over the three workers (their status.json)
    worker_cpu_per_party: list[float]
    service_cpu: float  # coordinator and nodes, during the job (/proc)
    bytes_sent: list[int]  # per party, in session order
    # party -> worker phase -> seconds after submit when first seen (polled every 50 ms)
    phases: dict[str, dict[str, float]] = field(default_factory=dict)
    states: dict[str, float] = field(default_factory=dict)  # job state -> first seen
    # party -> the worker's peak resident memory, sampled every 0.05 s (0 if never seen)
    max_rss_mb: list[float] = field(default_factory=list)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process (not its children: workers are reported apart)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _peak_memory_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _workers(dirs: dict[str, Path]) -> dict[str, int]:
    """party -> pid of its worker process for this job, found by its working directory.

    A worker runs in its job's directory: a cold start is ``python -m protocols.worker
    JOB_DIR``, a worker forked by the node's fork server keeps the server's command line
    (``python -m protocols.standby``) and moves there, so the command line alone missed
    every forked worker (the default) and their peak memory read 0."""
    wanted = {str(d.resolve()): party for party, d in dirs.items()}
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes()
            if b"protocols.worker" not in argv and b"protocols.standby" not in argv:
                continue
            cwd = str((proc / "cwd").readlink())
        except OSError:
            continue
        party = wanted.get(cwd)
        if party is not None:
            found[party] = int(proc.name)
    return found


class _PhaseWatcher(threading.Thread):
    """Polls every worker's status.json and notes when each phase first shows; samples the
    workers' peak memory every 0.05 s."""

    def __init__(self, dirs: dict[str, Path], t0: float) -> None:
        super().__init__(daemon=True)
        self.dirs, self.t0 = dirs, t0
        self.seen: dict[str, dict[str, float]] = {p: {} for p in dirs}
        self.memory: dict[str, float] = dict.fromkeys(dirs, 0.0)
        self.done = threading.Event()

    def run(self) -> None:
        pids: dict[str, int] = {}
        tick = 0
        while not self.done.is_set():
            for party, d in self.dirs.items():
                try:
                    phase = json.loads((d / STATUS_FILE).read_text())["phase"]
                except (OSError, ValueError, KeyError):
                    continue
                self.seen[party].setdefault(phase, time.perf_counter() - self.t0)
            # Every 0.1 s until each party's worker is found, and each found worker's
            # high-water mark every 0.05 s: a small job's workers live for a fraction of
            # a second (three small reads of /proc per look).
            if len(pids) < len(self.dirs) and tick % 2 == 0:
                pids.update(_workers(self.dirs))
            for party, pid in pids.items():
                self.memory[party] = max(self.memory[party], _peak_memory_mb(pid))
            tick += 1
            self.done.wait(0.05)


class Consortium:
    """A LocalConsortium whose sample owners accept every protocol of the catalog, exactly."""

    def __init__(self, root: Path, rows: int, job_timeout_s: float) -> None:
        self.lc = LocalConsortium(root, rows=rows, job_timeout_s=job_timeout_s)
        self.startup_s = 0.0
        self.generate_s = 0.0

    @property
    def data(self) -> Any:
        assert self.lc.data is not None
        return self.lc.data

    def start(self, timeout_s: float) -> Consortium:
        t = time.perf_counter()
        self.lc.setup()
        self.generate_s = time.perf_counter() - t
        # Every protocol allowed, and allowed exactly: the answers are checked against the
        # plaintext ones, so no differentially private noise.
        everything = json.dumps(sorted(registry.catalog()))
        for name in NODES:
            cfg = self.lc.root / f"party-{name}.toml"
            text = re.sub(
                r"(?m)^(allowed_protocols|exact_protocols) = .*$",
                lambda m: f"{m.group(1)} = {everything}",
                cfg.read_text(),
            )
            cfg.write_text(text)
        t = time.perf_counter()
        self.lc.start(timeout_s)
        self.startup_s = time.perf_counter() - t
        return self

    def stop(self) -> None:
        self.lc.stop()

    def run(self, spec: dict[str, Any], timeout_s: float) -> EnsnifRun:
        services = [m.proc.pid for m in self.lc.members.values() if m.proc is not None]
        cpu0 = sum(_cpu_seconds(p) for p in services)
        states: dict[str, float] = {}
        with self.lc.client() as c:
            t0 = time.perf_counter()
            job = c.submit(jobspec.from_dict(spec))
            dirs = {n: self.lc.root / "state" / n / "jobs" / job.id for n in NODES}
            watcher = _PhaseWatcher(dirs, t0)
            watcher.start()

            def note(j: Any) -> None:
                states.setdefault(state_name(j), time.perf_counter() - t0)

            try:
                final = c.wait(job.id, on_update=note, timeout_s=timeout_s)
            except EnsnifError as exc:
                c.cancel(job.id)
                raise TimeoutError(f"job {job.id} ({spec['protocol']}): {exc}") from exc
            finally:
                watcher.done.set()
                watcher.join(timeout=5)
            if not is_final(final) or state_name(final) != "succeeded":
                raise RuntimeError(
                    f"job {job.id} ({spec['protocol']}) ended {state_name(final)}: "
                    f"{final.reason_code} {final.reason}"
                )
            values = c.result(job.id)
            wall = time.perf_counter() - t0
        cpu1 = sum(_cpu_seconds(p) for p in services)
        order = list(final.party_order)
        statuses = [json.loads((dirs[p] / STATUS_FILE).read_text()) for p in order]
        return EnsnifRun(
            wall=wall,
            outputs={k: float(v) for k, v in values.items()},
            worker_cpu=sum(s["cpu_seconds"] for s in statuses),
            worker_cpu_per_party=[s["cpu_seconds"] for s in statuses],
            service_cpu=cpu1 - cpu0,
            bytes_sent=[s["bytes_sent"] for s in statuses],
            phases={p: watcher.seen[p] for p in order},
            states=states,
            max_rss_mb=[watcher.memory[p] for p in order],
        )
