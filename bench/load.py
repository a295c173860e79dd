"""Load benchmark: many small jobs submitted at once (or at a rate, ``--rate``) to one
coordinator and three nodes.

A local consortium (coordinator, grocery, logistics, helper as processes, as in the demo)
gets ``--jobs`` small jobs, all submitted at the same moment by as many client threads: sums,
counts and exact means with different row filters (so every job has its own answer), and
every eighth a differentially private mean. Each thread submits, follows its job with
``WatchJob`` and fetches and combines the result, the way an analyst's client does.

Then it checks:

- every result against pandas on the sample CSVs (exact ones exactly, DP ones within
  ``DP_SIGMAS`` of the noise standard deviation the result reports);
- from each node's own state (``node.db`` and ``jobs/<id>/``) and from the worker processes
  sampled while they ran, that no two jobs live at the same time held the same MPC port or
  the same workspace directory at a node;
- that no worker process is left behind.

and prints jobs per minute, p50/p95/max submit-to-result latency, CPU, and the largest
number of jobs seen at once. Not a test: it asserts nothing about speed (the exit code is 1
only if a job failed or a check did not hold). ``make bench`` runs it after the per-family
table; alone: ``.venv/bin/python bench/load.py [--jobs 50] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ensnif_mpc.demo.localnet import NODES, LocalConsortium  # noqa: E402
from ensnif_mpc.errors import EnsnifError  # noqa: E402
from ensnif_mpc.jobs import jobspec  # noqa: E402
from ensnif_mpc.jobs.jobstate import LIVE  # noqa: E402
from ensnif_mpc.jobs.worker_session import SESSION_FILE, STATUS_FILE  # noqa: E402
from ensnif_mpc.sdk.client import is_final, state_name  # noqa: E402

DP_SIGMAS = 6.0  # a DP answer further than this many noise sd from the truth is wrong
_TICK = os.sysconf("SC_CLK_TCK")


# -- the jobs ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Planned:
    label: str  # e.g. "sum[min=12.5]"
    spec: jobspec.JobSpec
    want: dict[str, float]
    dp: bool


def _frames(lc: LocalConsortium) -> tuple[pd.Series, pd.Series]:
    """The value columns the demo jobs read: grocery basket_total, logistics fee."""
    assert lc.data is not None
    orders = pd.read_csv(lc.data.orders, usecols=["basket_total"])["basket_total"]
    fees = pd.read_csv(lc.data.deliveries, usecols=["fee"])["fee"]
    return orders, fees


def _plaintext(protocol: str, values: list[pd.Series], params: dict[str, Any]) -> dict[str, float]:
    kept = [
        v[(v >= params.get("min", -math.inf)) & (v <= params.get("max", math.inf))] for v in values
    ]
    both = pd.concat(kept)
    if protocol == "sum":
        return {"sum": float(both.sum())}
    if protocol == "count":
        return {"count": float(both.size)}
    return {"mean": float(both.mean()) if both.size else math.nan}


def plan_jobs(lc: LocalConsortium, n: int, dp_every: int = 8) -> list[Planned]:
    """``n`` small jobs from the demo's job files: sum, count and exact mean with a different
    row filter each, and every ``dp_every``-th a DP mean (ρ = 0.05, the demo's)."""
    templates = {
        "sum": jobspec.load(lc.root / "jobs" / "revenue-sum.toml"),
        "count": jobspec.load(lc.root / "jobs" / "big-tickets-count.toml"),
        "mean": jobspec.load(lc.root / "jobs" / "ticket-mean.toml"),
        "dp-mean": jobspec.load(lc.root / "jobs" / "ticket-mean-dp.toml"),
    }
    values = list(_frames(lc))
    out = []
    for k in range(n):
        if dp_every and k % dp_every == dp_every - 1:
            kind, params = "dp-mean", {}
        else:
            kind = ("sum", "count", "mean")[k % 3]
            # A different filter per job, so that a result delivered to the wrong job shows.
            params = {"min": round(2.5 * k, 2)} if kind != "mean" else {"max": 40.0 + 7.5 * k}
        spec = dataclasses.replace(
            templates[kind], params=params, name=f"load {k} {kind} {json.dumps(params)}"
        )
        want = _plaintext(spec.protocol, values, params)
        if kind == "dp-mean":  # released as noisy sum and count; the mean is their ratio
            want = {
                **want,
                **_plaintext("sum", values, params),
                **_plaintext("count", values, params),
            }
        label = f"{kind}{json.dumps(params, separators=(',', '='))}" if params else kind
        out.append(Planned(label, spec, want, kind == "dp-mean"))
    return out


# -- running them -----------------------------------------------------------------------------
@dataclass
class Outcome:
    label: str
    job_id: str = ""
    state: str = "not submitted"
    reason: str = ""
    reason_code: str = ""
    submit_s: float = 0.0  # after the common start
    accepted_s: float = 0.0  # SubmitJob returned
    result_s: float = 0.0  # result combined (0 if none)
    latency_s: float = 0.0  # submit to combined result
    values: dict[str, float] = field(default_factory=dict)
    noise_sd: dict[str, float] = field(default_factory=dict)
    states: dict[str, float] = field(default_factory=dict)  # job state -> first seen (s)
    problems: list[str] = field(default_factory=list)


class Poller(threading.Thread):
    """Follows every job of the run with one ``ListJobs`` call every ``interval`` s.

    The default way to wait here: a ``WatchJob`` stream per job holds one of the
    coordinator's server threads for the job's whole life, and with more jobs followed than
    it has threads (32) every other call queues behind them (``--follow watch`` shows it).
    """

    def __init__(self, lc: LocalConsortium, t0: list[float], interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.lc, self.t0, self.interval = lc, t0, interval
        self.done = threading.Event()
        self.limit = 100
        self._lock = threading.Lock()
        self._ended: dict[str, threading.Event] = {}
        self.final: dict[str, Any] = {}
        self.seen: dict[str, dict[str, float]] = defaultdict(dict)

    def follow(self, job_id: str) -> threading.Event:
        with self._lock:
            self.limit += 1
            return self._ended.setdefault(job_id, threading.Event())

    def run(self) -> None:
        with self.lc.client() as c:
            while not self.done.is_set():
                # Only the live jobs are listed (the coordinator converts fewer each time);
                # a followed job missing from the list has ended, and is asked for once.
                try:
                    jobs = c.jobs(limit=self.limit, states=LIVE)
                except EnsnifError:
                    jobs = []
                listed = {j.id for j in jobs}
                with self._lock:
                    gone = [k for k, e in self._ended.items() if not e.is_set() and k not in listed]
                for job_id in gone:
                    with contextlib.suppress(EnsnifError):
                        jobs.append(c.job(job_id))
                now = time.perf_counter() - self.t0[0]
                for j in jobs:
                    self.seen[j.id].setdefault(state_name(j), now)
                    if is_final(j):
                        self.final[j.id] = j
                        with self._lock:
                            event = self._ended.setdefault(j.id, threading.Event())
                        event.set()
                self.done.wait(self.interval)


def _one(
    lc: LocalConsortium,
    job: Planned,
    start: threading.Barrier,
    t0: list[float],
    timeout_s: float,
    poller: Poller | None,
    delay_s: float = 0.0,
) -> Outcome:
    out = Outcome(job.label)
    with lc.client() as c:
        start.wait()
        if delay_s:  # an arrival rate: this job's turn comes delay_s after the start
            time.sleep(max(0.0, t0[0] + delay_s - time.perf_counter()))
        begin = time.perf_counter()
        out.submit_s = begin - t0[0]
        try:
            # fresh: every DP job computes (the coordinator would answer a repeated DP
            # question from its cache, at no cost and without the nodes).
            submitted = c.submit(job.spec, fresh=True)
            out.job_id = submitted.id
            out.state = state_name(submitted)
            out.accepted_s = time.perf_counter() - t0[0]
            if poller is not None:
                if not poller.follow(submitted.id).wait(timeout_s):
                    raise TimeoutError(f"not ended after {timeout_s:.0f}s")
                final = poller.final[submitted.id]
                out.states = dict(poller.seen[submitted.id])
            else:

                def note(j: Any) -> None:
                    out.states.setdefault(state_name(j), time.perf_counter() - t0[0])

                final = c.wait(submitted.id, on_update=note, timeout_s=timeout_s)
            out.state, out.reason, out.reason_code = (
                state_name(final),
                final.reason,
                final.reason_code,
            )
            if out.state == "succeeded":
                details = c.result_details(submitted.id, final)  # no GetJob again
                end = time.perf_counter()
                out.result_s, out.latency_s = end - t0[0], end - begin
                out.values = {k: float(v) for k, v in details.values.items()}
                out.noise_sd = dict(details.noise_sd)
        except (EnsnifError, TimeoutError) as exc:
            out.state = f"client error ({out.state})" if out.job_id else "not submitted"
            if isinstance(exc, EnsnifError):
                out.reason, out.reason_code = exc.message, exc.reason
            else:
                out.reason, out.reason_code = str(exc), "timeout"
            if out.job_id:
                with contextlib.suppress(EnsnifError):
                    c.cancel(out.job_id)  # a job we stopped following must not run on
    return out


def check_answer(job: Planned, out: Outcome) -> list[str]:
    """Exact outputs equal pandas' (1e-8 relative for the fixed-point mean); DP outputs lie
    within DP_SIGMAS of their reported noise sd."""
    wrong = []
    for name, want in job.want.items():
        got = out.values.get(name)
        if got is None:
            wrong.append(f"{name} missing")
            continue
        if job.dp:
            sd = out.noise_sd.get(name, 0.0)
            if sd <= 0 or abs(got - want) > DP_SIGMAS * sd:
                wrong.append(f"{name}: {got:.6g} vs {want:.6g} (noise sd {sd:.3g})")
        elif not (
            (math.isnan(got) and math.isnan(want))
            or math.isclose(got, want, rel_tol=1e-8, abs_tol=1e-6)
        ):
            wrong.append(f"{name}: {got!r} != {want!r}")
    return wrong


# -- watching the machine ---------------------------------------------------------------------
def _proc_cmdline(pid: str) -> list[bytes] | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None


def live_workers(root: Path) -> dict[int, Path]:
    """pid -> job directory of every live (non-zombie) worker under ``root``.

    A cold worker is ``python -m protocols.worker JOB_DIR``; a pre-started one is
    ``python -m protocols.standby`` until its node hands it a job, and then runs in that
    job's directory (protocols/standby.py): the working directory says which job a worker
    serves. An idle standby (not in a job directory) is not counted.

    A process a worker forks (a library running a helper program) carries the worker's
    command line until it execs: it is counted as part of its parent, not as a worker.
    """
    found: dict[int, tuple[Path, int]] = {}
    prefix = str(root)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _proc_cmdline(entry.name)
        if not argv or (b"protocols.worker" not in argv and b"protocols.standby" not in argv):
            continue
        try:
            directory = str((entry / "cwd").readlink())
        except OSError:
            continue
        if not directory.startswith(prefix) or Path(directory).parent.name != "jobs":
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            found[int(entry.name)] = (Path(directory), int(fields[1]))
    return {pid: d for pid, (d, parent) in found.items() if parent not in found}


def _own_port(directory: Path) -> int:
    session = json.loads((directory / SESSION_FILE).read_text())
    return int(session["addresses"][session["index"]].rsplit(":", 1)[1])


class Sampler(threading.Thread):
    """Every ``interval`` s: the live workers, per node the MPC ports and directories they
    use. Two live workers of one node on one port (or in one directory) is a violation."""

    def __init__(self, root: Path, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.done = threading.Event()
        self.max_jobs = 0  # distinct jobs with a live worker at once
        self.max_workers = 0
        self.samples = 0
        self.clashes: list[str] = []
        self._ports: dict[Path, int] = {}

    def run(self) -> None:
        while not self.done.is_set():
            workers = live_workers(self.root)
            self.samples += 1
            jobs = {d.name for d in workers.values()}
            self.max_jobs = max(self.max_jobs, len(jobs))
            self.max_workers = max(self.max_workers, len(workers))
            by_node: dict[str, list[tuple[int, Path]]] = defaultdict(list)
            for pid, d in workers.items():
                by_node[d.parent.parent.name].append((pid, d))
            for node, ws in by_node.items():
                dirs = Counter(d for _, d in ws)
                self.clashes += [f"{node}: {n} workers in {d}" for d, n in dirs.items() if n > 1]
                ports: dict[int, set[str]] = defaultdict(set)
                for _, d in ws:
                    try:
                        port = self._ports.get(d) or self._ports.setdefault(d, _own_port(d))
                    except (OSError, ValueError, KeyError):
                        continue
                    ports[port].add(d.name)
                self.clashes += [
                    f"{node}: port {p} used by jobs {sorted(j)} at once"
                    for p, j in ports.items()
                    if len(j) > 1
                ]
            self.done.wait(self.interval)


def fork_servers(pid: int) -> list[int]:
    """The daemon's fork servers (protocols/standby.py: its children running the standby
    module outside any job directory). Their own CPU (the imports, done once) is the
    daemons' cost, not any one job's; a forked worker's own CPU is in its status."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in task.read_text().split():
                argv = _proc_cmdline(child) or []
                if b"protocols.standby" in argv:
                    found.append(int(child))
    return found


def _cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


# -- the nodes' own records -------------------------------------------------------------------
@dataclass(frozen=True)
class NodeRecord:
    node: str
    job_id: str
    state: str
    reason_code: str
    port: int
    approved: str  # audit times (ISO, UTC), "" if the node never approved it
    started: str
    ended: str


def node_records(lc: LocalConsortium, node: str) -> list[NodeRecord]:
    """Every job the node knows, with its port and when it was approved, started and ended
    (from its audit chain: the events are written as the node's state changes)."""
    db = lc.root / "state" / node / "node.db"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        jobs = con.execute("SELECT job_id, state, reason_code, mpc_port FROM node_jobs").fetchall()
        events: dict[str, dict[str, str]] = defaultdict(dict)
        for at, event, details in con.execute("SELECT at, event, details FROM audit ORDER BY seq"):
            job = json.loads(details).get("job")
            if job:
                events[job].setdefault(event, at)
    finally:
        con.close()
    out = []
    for job_id, state, code, port in jobs:
        ev = events[job_id]
        ended = next((ev[e] for e in ("job_succeeded", "job_failed", "job_aborted") if e in ev), "")
        out.append(
            NodeRecord(
                node,
                job_id,
                state,
                code,
                port,
                ev.get("proposal_approved", ""),
                ev.get("job_starting", ""),
                ended,
            )
        )
    return out


def overlaps(records: list[NodeRecord]) -> list[str]:
    """Pairs of one node's jobs that held the same port while both had started and not ended
    (the port is bound by the job's worker from its start)."""
    clashes = []
    by_port: dict[int, list[NodeRecord]] = defaultdict(list)
    for r in records:
        if r.port and r.started:
            by_port[r.port].append(r)
    for port, rs in by_port.items():
        rs.sort(key=lambda r: r.started)
        for a, b in zip(rs, rs[1:], strict=False):
            if not a.ended or b.started < a.ended:
                clashes.append(f"{a.node}: port {port} held by {a.job_id} and {b.job_id} at once")
    return clashes


def max_overlap(intervals: list[tuple[str, str]]) -> int:
    """The most intervals (ISO start, ISO end) open at one time."""
    points = sorted([(s, 1) for s, e in intervals if s] + [(e, -1) for s, e in intervals if e])
    best = now = 0
    for _, step in points:
        now += step
        best = max(best, now)
    return best


def workspace_problems(lc: LocalConsortium, node: str, records: list[NodeRecord]) -> list[str]:
    """Each started job's directory is its own: its session names it and the port the node
    recorded for it, and its worker log speaks of it alone."""
    out = []
    for r in records:
        if not r.started:
            continue
        d = lc.root / "state" / node / "jobs" / r.job_id
        try:
            session = json.loads((d / SESSION_FILE).read_text())
        except (OSError, ValueError) as exc:
            out.append(f"{node}/{r.job_id}: no readable session ({exc})")
            continue
        if session["job_id"] != r.job_id:
            out.append(f"{node}/{r.job_id}: session of job {session['job_id']}")
        if _own_port(d) != r.port:
            out.append(f"{node}/{r.job_id}: session port {_own_port(d)} != recorded {r.port}")
        log = (d / "worker.log").read_text() if (d / "worker.log").exists() else ""
        foreign = {w for w in log.split() if len(w) == 12 and w.isalnum() and w != r.job_id}
        others = foreign & {x.job_id for x in records}
        if others:
            out.append(f"{node}/{r.job_id}: its worker log names jobs {sorted(others)}")
    return out


def _orphans(lc: LocalConsortium, ours: set[str], grace_s: float = 10.0) -> list[int]:
    """Workers still alive ``grace_s`` after their job ended at the coordinator (a job whose
    client gave up may still run: its workers are not orphans)."""
    deadline = time.monotonic() + grace_s
    while True:
        try:
            with lc.client() as c:
                ended = {j.id for j in c.jobs(limit=10 * len(ours) + 100) if is_final(j)}
        except EnsnifError:
            ended = set()
        left = sorted(
            p for p, d in live_workers(lc.root / "state").items() if d.name in ours & ended
        )
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


# -- the run ----------------------------------------------------------------------------------
@dataclass
class LoadReport:
    jobs: int
    wall_s: float
    outcomes: list[Outcome]
    states: dict[str, int]
    failures: dict[str, int]  # reason code -> count
    wrong: list[str]
    clashes: list[str]
    workspace: list[str]
    orphans: list[int]
    max_jobs_sampled: int
    max_workers_sampled: int
    max_live_at_node: dict[str, int]  # approved .. ended
    max_running_at_node: dict[str, int]  # started .. ended
    worker_cpu_s: float
    service_cpu_s: float
    load: tuple[float, float]
    latency: dict[str, float] = field(default_factory=dict)
    service_cpu_by: dict[str, float] = field(default_factory=dict)  # per daemon
    rate: float = 0.0  # jobs a minute one after the other; 0: all at once

    @property
    def ok(self) -> bool:
        return (
            self.states.get("succeeded", 0) == self.jobs
            and not self.wrong
            and not self.clashes
            and not self.workspace
            and not self.orphans
        )

    @property
    def jobs_per_minute(self) -> float:
        done = self.states.get("succeeded", 0)
        return 60.0 * done / self.wall_s if self.wall_s else 0.0


def run_load(
    lc: LocalConsortium,
    planned: list[Planned],
    timeout_s: float = 240.0,
    follow: str = "poll",
    progress: Callable[[str], None] = lambda _: None,
    rate: float = 0.0,
) -> LoadReport:
    """Submit every planned job at once (one client thread each), or ``rate`` jobs a minute
    one after the other; wait for all, check all."""
    n = len(planned)
    services = {name: m.proc.pid for name, m in lc.members.items() if m.proc is not None}
    cpu0 = {name: _cpu_seconds(p) for name, p in services.items()}
    servers0 = {s: _cpu_seconds(s) for p in services.values() for s in fork_servers(p)}
    load0 = os.getloadavg()[0]
    sampler = Sampler(lc.root / "state")
    sampler.start()
    start = threading.Barrier(n + 1)
    t0 = [time.perf_counter()]
    poller = Poller(lc, t0) if follow == "poll" else None
    if poller is not None:
        poller.start()
    outcomes: list[Outcome | None] = [None] * n

    def worker(k: int) -> None:
        delay = 60.0 * k / rate if rate > 0 else 0.0
        outcomes[k] = _one(lc, planned[k], start, t0, timeout_s, poller, delay)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    t0[0] = time.perf_counter()
    start.wait()
    deadline = time.monotonic() + timeout_s + 60
    for t in threads:
        t.join(timeout=max(deadline - time.monotonic(), 0.1))
    wall = time.perf_counter() - t0[0]
    sampler.done.set()
    if poller is not None:
        poller.done.set()
    sampler.join(timeout=5)
    by_service = {name: _cpu_seconds(p) - cpu0[name] for name, p in services.items()}
    for name, p in services.items():
        spent = sum(_cpu_seconds(s) - servers0.get(s, 0.0) for s in fork_servers(p))
        if spent:
            by_service[f"{name}'s fork server"] = spent
    results = [
        o or Outcome(planned[k].label, state="thread still running") for k, o in enumerate(outcomes)
    ]
    progress(f"   all {n} jobs ended after {wall:.1f} s; checking")

    wrong = []
    for job, out in zip(planned, results, strict=True):
        if out.state == "succeeded":
            out.problems = check_answer(job, out)
            wrong += [f"{out.job_id} {job.label}: {p}" for p in out.problems]
    ours = {o.job_id for o in results if o.job_id}
    clashes, workspace = list(sampler.clashes), []
    live_at: dict[str, int] = {}
    running_at: dict[str, int] = {}
    worker_cpu = 0.0
    for node in NODES:
        records = [r for r in node_records(lc, node) if r.job_id in ours]
        clashes += overlaps(records)
        workspace += workspace_problems(lc, node, records)
        live_at[node] = max_overlap([(r.approved, r.ended) for r in records])
        running_at[node] = max_overlap([(r.started, r.ended) for r in records])
        for r in records:
            status = lc.root / "state" / node / "jobs" / r.job_id / STATUS_FILE
            with contextlib.suppress(OSError, ValueError):
                worker_cpu += float(json.loads(status.read_text()).get("cpu_seconds", 0.0))
    orphans = _orphans(lc, ours)
    latencies = [o.latency_s for o in results if o.state == "succeeded" and o.latency_s]
    report = LoadReport(
        jobs=n,
        wall_s=max([o.result_s for o in results if o.result_s] or [wall]),
        outcomes=results,
        states=dict(Counter(o.state for o in results)),
        failures=dict(Counter(o.reason_code or o.state for o in results if o.state != "succeeded")),
        wrong=wrong,
        clashes=sorted(set(clashes)),
        workspace=workspace,
        orphans=orphans,
        max_jobs_sampled=sampler.max_jobs,
        max_workers_sampled=sampler.max_workers,
        max_live_at_node=live_at,
        max_running_at_node=running_at,
        worker_cpu_s=worker_cpu,
        service_cpu_s=sum(by_service.values()),
        service_cpu_by=by_service,
        load=(load0, os.getloadavg()[0]),
        rate=rate,
    )
    if latencies:
        report.latency = {
            "p50": float(np.percentile(latencies, 50)),
            "p95": float(np.percentile(latencies, 95)),
            "max": max(latencies),
            "min": min(latencies),
        }
    return report


def print_report(r: LoadReport, cores: int = os.cpu_count() or 1) -> None:
    ok = r.states.get("succeeded", 0)
    print()
    how = f"at {r.rate:g} a minute" if r.rate > 0 else "at once"
    print(f"load: {r.jobs} jobs submitted {how}, {ok} succeeded, states {r.states}")
    if r.failures:
        print(f"  not succeeded, by reason: {r.failures}")
        for o in r.outcomes:
            if o.state != "succeeded":
                print(f"    {o.job_id or '-'} {o.label}: {o.state} {o.reason_code} {o.reason}")
    print(
        f"  wall (first submit to last result): {r.wall_s:.1f} s, {r.jobs_per_minute:.1f} jobs/min"
    )
    if r.latency:
        lat = r.latency
        print(
            f"  submit-to-result latency: p50 {lat['p50']:.1f} s, p95 {lat['p95']:.1f} s, "
            f"max {lat['max']:.1f} s (min {lat['min']:.1f} s)"
        )
    total = r.worker_cpu_s + r.service_cpu_s
    print(
        f"  CPU: workers {r.worker_cpu_s:.1f} s + coordinator and nodes {r.service_cpu_s:.1f} s"
        f" = {total:.1f} s ({total / max(ok, 1):.2f} s per job; "
        f"{100 * total / (r.wall_s * cores):.0f} % of {cores} cores over the run)"
    )
    if r.service_cpu_by:
        print(
            "  CPU per daemon: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(r.service_cpu_by.items()))
            + f"; workers {r.worker_cpu_s / max(ok, 1) / 3:.2f} s per party and job"
        )
    print(
        f"  concurrency: up to {r.max_jobs_sampled} jobs ({r.max_workers_sampled} workers) "
        f"running at once (sampled); jobs holding a port at once per node (approved..end): "
        f"{r.max_live_at_node}; with a started worker: {r.max_running_at_node}"
    )
    print(f"  load average: {r.load[0]:.1f} before, {r.load[1]:.1f} after")
    print(f"  answers: {'all correct' if not r.wrong else f'{len(r.wrong)} WRONG'}")
    for w in r.wrong:
        print(f"    ! {w}")
    print(
        "  ports and workspaces: "
        + ("no two live jobs shared one" if not (r.clashes or r.workspace) else "SHARED")
    )
    for c in r.clashes + r.workspace:
        print(f"    ! {c}")
    print(f"  orphan workers: {r.orphans or 'none'}")


CONNECT_S = 60.0  # the nodes' connect timeout here: three nodes share the machine's cores


def measure(
    jobs: int = 50,
    rows: int = 1000,
    timeout_s: float = 600.0,
    follow: str = "poll",
    keep: Path | None = None,
    rate: float = 0.0,
) -> LoadReport:
    """Start a local consortium, run the load, stop it; print progress lines."""
    with tempfile.TemporaryDirectory(prefix="ensnif-load-") as tmp:
        root = keep or Path(tmp)
        # A job's time limit counts from its submission, its wait for a turn included.
        lc = LocalConsortium(
            root / "consortium", rows=rows, connect_timeout_s=CONNECT_S, job_timeout_s=timeout_s
        )
        lc.setup()
        how = f"at {rate:g} a minute" if rate > 0 else "at once"
        print(f"== load: {jobs} jobs submitted {how}, {rows:,} rows per owner", flush=True)
        try:
            lc.start(timeout_s=120)
            return run_load(
                lc,
                plan_jobs(lc, jobs),
                timeout_s,
                follow,
                progress=lambda s: print(s, flush=True),
                rate=rate,
            )
        finally:
            lc.stop()


def from_json(raw: dict[str, Any]) -> LoadReport:
    """A report saved with ``dataclasses.asdict`` (``--json``), to print it again."""
    return LoadReport(**{**raw, "outcomes": [Outcome(**o) for o in raw["outcomes"]]})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=50, help="jobs submitted")
    ap.add_argument("--rows", type=int, default=1000, help="rows per data owner")
    ap.add_argument("--timeout", type=float, default=600, help="seconds for all jobs to end")
    ap.add_argument(
        "--follow",
        choices=("poll", "watch"),
        default="poll",
        help="how clients wait: one ListJobs poller for all (default), or WatchJob per job",
    )
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="submit one after the other at this many jobs a minute (default 0: all at once)",
    )
    ap.add_argument("--json", type=Path, help="also write the measurements here")
    ap.add_argument("--keep", type=Path, help="keep the consortium in this directory")
    args = ap.parse_args()
    report = measure(args.jobs, args.rows, args.timeout, args.follow, args.keep, args.rate)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(dataclasses.asdict(report), indent=1))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
