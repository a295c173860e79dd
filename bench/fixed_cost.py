"""A job's fixed cost: submit-to-result of a small exact sum (the demo's revenue-sum, 1,000
rows per owner) through the coordinator and three node daemons, with the nodes' pre-started
fork server on (``standby_workers = 1``, protocols/standby.py) and off (cold worker starts),
next to the raw MPyC program for the same sum (bench/raw_aggregate.py, three processes over
TLS, no orchestration).

Per job it prints where the time goes, as the analyst's client sees it (medians over
``--runs`` jobs, after one warm-up job that is not counted):

- ``submit``: SubmitJob answered;
- ``running``: the coordinator says the job runs (approved at every node, Start sent);
- ``connected``: every party's worker reports its MPC links up (its phase is past
  ``connecting``);
- ``delivered``: every node holds its sealed share (each party's state ``succeeded``);
- ``succeeded``: the coordinator's job state says so;
- ``result``: the result fetched, unsealed and combined at the client;

and the longest party's MPyC session (MPyC's "elapsed time" from its connect to its
shutdown, in each worker's log), the CPU seconds per party's worker (as the worker reports
them), and the orchestration round trips the analyst's client made in sequence (calls that
overlap in time count as one: ``WatchJob`` is one however long the job runs; a long-lived
client's connection is already up, a fresh CLI pays two more for TCP and TLS). The
coordinator↔node path is, per job: Propose to every node at once (one round trip), then
Start with every node's Watch stream opened at the same time (one), then the nodes' end
pushed on those streams (half a round trip each way to the analyst).

Every answer is checked against the plaintext sum. Not a test: it prints numbers.

    python bench/fixed_cost.py [--runs 7]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from ensnif_mpc.config import ClientProfile  # noqa: E402
from ensnif_mpc.demo.localnet import LocalConsortium  # noqa: E402
from ensnif_mpc.gen.ensnif.v1 import coordinator_pb2_grpc  # noqa: E402
from ensnif_mpc.jobs import jobspec  # noqa: E402
from ensnif_mpc.sdk.client import Client, state_name  # noqa: E402

JOB = HERE.parent / "ensnif_mpc" / "demo" / "jobs" / "revenue-sum.toml"
ROWS = 1000
PHASES = ("submit", "running", "connected", "delivered", "succeeded", "result")
_BEFORE_MPC = {"", "approved", "awaiting approval", "starting", "loading", "connecting"}
_ELAPSED = re.compile(r"Stop MPyC -- elapsed time: (\d+):(\d+):([\d.]+)")


class RoundTrips(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
):
    """Every call the client makes, with when it was sent and when it completed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[list[Any]] = []

    def _note(self, method: str, call: Any) -> Any:
        record = [method, time.perf_counter(), None]
        with self._lock:
            self._calls.append(record)
        call.add_done_callback(lambda _f: record.__setitem__(2, time.perf_counter()))
        return call

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return self._note(details.method, continuation(details, request))

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return self._note(details.method, continuation(details, request))

    def take(self) -> list[tuple[str, float, float]]:
        with self._lock:
            calls, self._calls = self._calls, []
        now = time.perf_counter()
        return [(m, t0, t1 if t1 is not None else now) for m, t0, t1 in calls]


def sequential(calls: list[tuple[str, float, float]]) -> list[list[str]]:
    """The calls grouped into round trips: a call that starts before the previous group
    ended shares its round trip."""
    groups: list[list[str]] = []
    end = -1.0
    for method, t0, t1 in sorted(calls, key=lambda c: c[1]):
        name = method.rsplit("/", 1)[-1]
        if groups and t0 < end:
            groups[-1].append(name)
            end = max(end, t1)
        else:
            groups.append([name])
            end = t1
    return groups


def mpc_seconds(root: Path, job_id: str) -> float:
    longest = 0.0
    for log in root.glob(f"state/*/jobs/{job_id}/worker.log"):
        m = _ELAPSED.search(log.read_text(errors="replace"))
        if m:
            longest = max(longest, int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]))
    return longest


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")
STEPS = (
    ("submit → scheduled", "coordinator: awaiting approval .. scheduled (Propose everywhere)"),
    ("scheduled → forked", "Start sent, the last node handed its pre-forked worker the job"),
    ("forked → MPyC start", "the last worker from its fork to its connect"),
    ("MPyC start → connected", "first worker's connect until the last one is linked"),
    ("connected → stop", "the sum, resharing (the MPyC session)"),
    ("stop → done", "shutdown barrier, sealing, the result written"),
    ("done → delivered", "the worker's result written until the last node delivered it"),
    ("delivered → succeeded", "the coordinator's last report to its final state"),
)


def _stamp(line: str) -> float | None:
    m = _STAMP.match(line)
    if m is None:
        return None
    return dt.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def log_steps(root: Path, job_id: str) -> dict[str, float] | None:
    """One job's steps from the daemons' and workers' log stamps (ms resolution)."""
    coord: dict[str, float] = {}
    for line in (root / "logs" / "coordinator.log").read_text(errors="replace").splitlines():
        m = re.search(rf"job {job_id} is (\w+)", line)
        t = _stamp(line)
        if m and t is not None:
            coord.setdefault(m[1], t)
    forked, delivered = [], []
    for log in (root / "logs").glob("*.log"):
        if log.name == "coordinator.log":
            continue
        for line in log.read_text(errors="replace").splitlines():
            t = _stamp(line)
            if t is None or job_id not in line:
                continue
            if "worker" in line and "started" in line:
                forked.append(t)
            elif "delivered" in line:
                delivered.append(t)
    worker: dict[str, list[float]] = {"start": [], "conn": [], "stop": [], "done": []}
    marks = {"Start MPyC": "start", "parties connected": "conn", "Stop MPyC": "stop"}
    for log in root.glob(f"state/*/jobs/{job_id}/worker.log"):
        for line in log.read_text(errors="replace").splitlines():
            t = _stamp(line)
            key = next((k for m, k in marks.items() if m in line), None)
            if key is None and " done, " in line:
                key = "done"
            if t is not None and key is not None:
                worker[key].append(t)
    try:
        at = [
            coord["awaiting_approval"],
            coord["scheduled"],
            max(forked),
            max(worker["start"]),
            max(worker["conn"]),
            max(worker["stop"]),
            max(worker["done"]),
            max(delivered),
            coord["succeeded"],
        ]
    except (KeyError, ValueError):
        return None
    steps = {name: b - a for (name, _), a, b in zip(STEPS, at[:-1], at[1:], strict=True)}
    steps["MPyC start → connected"] = max(worker["conn"]) - min(worker["start"])
    return steps


def one_job(client: Client, counter: RoundTrips, spec: jobspec.JobSpec) -> dict[str, Any]:
    counter.take()
    seen: dict[str, float] = {}
    t0 = time.perf_counter()

    def mark(name: str) -> None:
        seen.setdefault(name, time.perf_counter() - t0)

    def note(j: Any) -> None:
        state = state_name(j)
        if state in ("scheduled", "running", "succeeded"):
            mark("running")
        parties = list(j.parties)
        if parties and all(
            p.state == "succeeded" or p.progress.phase not in _BEFORE_MPC for p in parties
        ):
            mark("connected")
        if parties and all(p.state == "succeeded" for p in parties):
            mark("delivered")
        if state == "succeeded":
            mark("succeeded")

    job = client.submit(spec, fresh=True)
    mark("submit")
    final = client.wait(job.id, on_update=note, timeout_s=300)
    answer = client.result(job.id, exact=True)["sum"]
    mark("result")
    for name in PHASES:  # an update the watch coalesced: the next phase's time bounds it
        if name not in seen:
            later = [seen[n] for n in PHASES[PHASES.index(name) :] if n in seen]
            seen[name] = min(later) if later else float("nan")
    cpu = sorted(float(p.progress.cpu_seconds) for p in final.parties)
    return {
        "id": job.id,
        "phases": seen,
        "answer": answer,
        "round_trips": sequential(counter.take()),
        "cpu": cpu,
    }


def consortium_runs(root: Path, standby: int, runs: int) -> list[dict[str, Any]]:
    lc = LocalConsortium(root, rows=ROWS).setup()
    for cfg in root.glob("party-*.toml"):
        cfg.write_text(f"standby_workers = {standby}\n" + cfg.read_text())
    spec = jobspec.load(JOB)
    out = []
    with lc:
        lc.start(timeout_s=120)
        counter = RoundTrips()
        with Client(ClientProfile.load(lc.profile)) as client:
            # Every call through the counter (set here, not by Client's own option, so this
            # bench also measures commits from before that option: the "before" figures).
            calls = grpc.intercept_channel(client._channel, counter)
            client._stub = coordinator_pb2_grpc.CoordinatorServiceStub(calls)
            cpu0: dict[str, float] = {}
            for n in range(runs + 1):
                if n == 1:
                    cpu0 = daemon_cpu(lc)
                got = one_job(client, counter, spec)
                got["mpc_s"] = mpc_seconds(root, got["id"])
                got["steps"] = log_steps(root, got["id"])
                if n:  # the first job warms the coordinator's and nodes' connections
                    out.append(got)
                time.sleep(0.3)  # as between real jobs
            cpu1 = daemon_cpu(lc)
    # The daemons' own CPU per job over the counted jobs (and their idle pauses between).
    per_job = {name: (cpu1[name] - cpu0.get(name, 0.0)) / max(runs, 1) for name in cpu1}
    for got in out:
        got["daemon_cpu"] = per_job
    return out


def daemon_cpu(lc: LocalConsortium) -> dict[str, float]:
    """CPU seconds (user + system) each daemon process used so far, its workers excluded
    (they are the fork server's children, and report their own)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, member in lc.members.items():
        if member.proc is None:
            continue
        try:
            fields = Path(f"/proc/{member.proc.pid}/stat").read_text().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        out[name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def raw_sum(root: Path, data_files: dict[str, Path]) -> tuple[float, float, float]:
    """Raw MPyC: (launch-to-exit wall, its MPC part: connect to the end, CPU per party),
    the fastest of three runs."""
    import raw
    import rawkit  # noqa: F401  (bench/ on the path)

    job = {
        "protocol": "sum",
        "bit_length": 64,
        "decimals": 2,
        "owners": [
            {"file": str(data_files["grocery"]), "value": "basket_total"},
            {"file": str(data_files["logistics"]), "value": "fee"},
        ],
    }
    runs = [raw.run(root / f"raw{i}", "raw_aggregate.py", job, 300) for i in range(3)]
    best = min(runs, key=lambda r: r.wall)
    mpc = max(sum(p.values()) for p in best.phases)
    return best.wall, mpc, statistics.median(best.cpu_per_party)


def _median(rows: list[dict[str, Any]], pick: Callable[[dict[str, Any]], float]) -> float:
    return statistics.median(pick(r) for r in rows)


def _phase_of(name: str) -> Callable[[dict[str, Any]], float]:
    return lambda row: float(row["phases"][name])


def print_table(rows: dict[int, list[dict[str, Any]]]) -> None:
    print(f"{'phase (s after submit)':<24}" + "".join(f"{f'standby {s}':>12}" for s in rows))
    for name in PHASES:
        cells = "".join(f"{_median(r, _phase_of(name)):>12.3f}" for r in rows.values())
        print(f"{name:<24}{cells}")
    print(
        f"{'MPyC session (longest)':<24}"
        + "".join(f"{_median(r, lambda x: x['mpc_s']):>12.3f}" for r in rows.values())
    )
    print(
        f"{'worker CPU s per party':<24}"
        + "".join(
            f"{_median(r, lambda x: statistics.median(x['cpu'])):>12.3f}" for r in rows.values()
        )
    )
    for standby, r in rows.items():
        logged = [x["steps"] for x in r if x.get("steps")]
        if not logged:
            continue
        print(f"standby {standby}: from the log stamps (medians of {len(logged)} jobs, ms):")
        for name, what in STEPS:
            ms = statistics.median(x[name] for x in logged) * 1000
            print(f"  {name:<24}{ms:>7.0f}  {what}")
    for standby, r in rows.items():
        cpu = r[-1]["daemon_cpu"]
        nodes = [v for k, v in cpu.items() if k != "coordinator"]
        print(
            f"standby {standby}: daemon CPU per job: coordinator "
            f"{cpu.get('coordinator', float('nan')) * 1000:.0f} ms, nodes "
            + "/".join(f"{v * 1000:.0f}" for v in nodes)
            + " ms (from /proc, workers excluded)"
        )
    for standby, r in rows.items():
        trips = r[-1]["round_trips"]
        print(
            f"standby {standby}: analyst round trips in sequence {len(trips)}: "
            + " | ".join("+".join(g) for g in trips)
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument(
        "--standby", type=int, nargs="+", default=[0, 1], help="standby_workers to run: 0, 1"
    )
    ap.add_argument("--no-raw", action="store_true", help="skip the raw MPyC program")
    ap.add_argument("--keep", type=Path, help="run in this directory and keep it (logs)")
    args = ap.parse_args()
    print("== a job's fixed cost (exact sum, 1,000 rows per owner, 3 node daemons)", flush=True)
    print(f"   load average at the start: {os.getloadavg()[0]:.1f}", flush=True)
    with contextlib.ExitStack() as stack:
        if args.keep:
            root = args.keep.resolve()
            root.mkdir(parents=True, exist_ok=True)
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ensnif-fixed-")))
        rows: dict[int, list[dict[str, Any]]] = {}
        for standby in args.standby:
            rows[standby] = consortium_runs(root / f"standby{standby}", standby, args.runs)
        data = root / f"standby{args.standby[-1]}"
        files = {
            "grocery": next(data.rglob("orders*.csv")),
            "logistics": next(data.rglob("deliveries*.csv")),
        }
        import pandas as pd

        want = float(
            pd.read_csv(files["grocery"])["basket_total"].sum()
            + pd.read_csv(files["logistics"])["fee"].sum()
        )
        for standby, runs in rows.items():
            for r in runs:
                if abs(float(r["answer"]) - want) > 1e-6 * max(1.0, abs(want)):
                    print(f"PROBLEM: standby {standby} gave {float(r['answer'])}, pandas {want}")
                    return 1
        print_table(rows)
        raw_wall = float("nan")
        if not args.no_raw:
            raw_wall, raw_mpc, raw_cpu = raw_sum(root, files)
            print(
                f"raw MPyC sum (3 processes over TLS): launch to exit {raw_wall:.3f} s, of it "
                f"connect to end {raw_mpc:.3f} s; CPU {raw_cpu:.3f} s per party"
            )
        for standby, runs in rows.items():
            total = _median(runs, lambda x: x["phases"]["result"])
            mpc = _median(runs, lambda x: x["mpc_s"])
            print(
                f"standby {standby}: submit to result {total:.3f} s (sum {want:,.2f}: all "
                f"correct); beyond its own MPyC session {total - mpc:+.3f} s; beyond raw "
                f"MPyC launch-to-exit {total - raw_wall:+.3f} s"
            )
        print(f"   load average at the end: {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
