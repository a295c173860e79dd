"""Fault matrix: what each fault does to a job, and how long until the job is settled.

For each fault, on a local consortium (coordinator, grocery, logistics and helper as
processes): the state the job ends in at the coordinator, the time from the fault to that
state, the worker processes of the job still alive afterwards, and each data owner's
privacy-budget charge for the job (every job here is a DP mean, ρ = 0.05): it must be
committed if a worker started at that owner and released otherwise, once, never left
reserved. The faults:

- a party killed mid-job (its node SIGKILLed while its worker is connected and frozen);
- a party that never starts (the helper's node is down when the job is proposed);
- a stalled link (a worker frozen with SIGSTOP after connecting: alive, its connections
  open, no data), ended by the workers' silence watch (``ENSNIF_PEER_SILENCE_SECONDS``);
- the same stall with the watch off, as by default before it: ended by the job time limit;
- the coordinator killed (SIGKILL) while the job runs, and restarted.

Limits are shortened so that a run takes about a minute: see :func:`fault_consortium`.
``tests/e2e/test_fault_matrix.py`` runs the same scenarios and asserts their bounds. Run:
``.venv/bin/python bench/faults.py [--json FILE]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load import live_workers  # noqa: E402

from ensnif_mpc.demo import localnet
from ensnif_mpc.demo.localnet import LocalConsortium  # noqa: E402
from ensnif_mpc.errors import EnsnifError  # noqa: E402
from ensnif_mpc.jobs import jobspec  # noqa: E402
from ensnif_mpc.jobs.worker_session import STATUS_FILE  # noqa: E402
from ensnif_mpc.sdk.client import is_final, state_name  # noqa: E402

OWNERS = {"grocery": "orders", "logistics": "deliveries"}
DP_JOB = "ticket-mean-dp.toml"
RHO = Fraction(0.05)  # the DP job's ρ, as the ledgers store it (the float, exactly)

# The limits of the fault consortium (seconds): short, so that a run takes about a minute.
PROPOSE_S = 5  # coordinator: how long it waits for every node's approval
NODE_JOB_S = 30  # each node: a job's time limit from its worker's start
COORDINATOR_JOB_S = 120  # coordinator: a job's time limit from its submission
CONNECT_S = 60  # each node: how long its worker may take to connect (the held one too)
ROWS = 20_000  # per owner: enough that a worker's read is not over before it can be frozen
SILENCE_S = 10  # each worker: silence from an awaited peer before it gives up


# -- the consortium ---------------------------------------------------------------------------
@contextlib.contextmanager
def silence_limit(seconds: float | None) -> Iterator[None]:
    """Start daemons (and so their workers) with ``ENSNIF_PEER_SILENCE_SECONDS`` set; the
    local consortium passes no ``ENSNIF_*`` variable of ours on by itself."""
    original = localnet.child_env
    if seconds is not None:

        def with_limit(env: dict[str, str] | None = None) -> dict[str, str]:
            return {**original(env), "ENSNIF_PEER_SILENCE_SECONDS": f"{seconds:g}"}

        localnet.child_env = with_limit  # type: ignore[assignment]
    try:
        yield
    finally:
        localnet.child_env = original  # type: ignore[assignment]


def fault_consortium(
    root: Path, silence_s: float | None = SILENCE_S, node_job_s: float = NODE_JOB_S
) -> LocalConsortium:
    """A started local consortium with the short limits above."""
    lc = LocalConsortium(
        root, rows=ROWS, connect_timeout_s=CONNECT_S, job_timeout_s=COORDINATOR_JOB_S
    ).setup()
    coordinator = lc.root / "coordinator.toml"
    coordinator.write_text(
        re.sub(
            r"(?m)^propose_seconds = .*$", f"propose_seconds = {PROPOSE_S}", coordinator.read_text()
        )
    )
    for name in localnet.NODES:
        cfg = lc.root / f"party-{name}.toml"
        text = re.sub(r"(?m)^job_seconds = .*$", f"job_seconds = {node_job_s:.0f}", cfg.read_text())
        # Cold worker starts: the faults are injected at a worker's phases (frozen while
        # "starting", before it connects), and a pre-started worker passes through
        # "starting" too fast to be caught there (protocols/standby.py).
        cfg.write_text("standby_workers = 0\n" + text)
    with silence_limit(silence_s):
        try:
            lc.start(timeout_s=90)
            warm_up(lc)
        except Exception:
            lc.stop()
            raise
    return lc


def warm_up(lc: LocalConsortium, attempts: int = 3) -> None:
    """Run one ordinary job to its end before any fault is injected.

    A node's first Propose after its start imports and opens what the later ones find
    ready; on a loaded machine that can outlast the short ``PROPOSE_S`` and end the first
    job ``approval_timeout`` before any fault was injected, which is not the fault under
    test. A job that does not succeed is retried (at most ``attempts`` times)."""
    for _ in range(attempts):
        job_id = _submit(lc)
        job = final_job(lc, job_id, COORDINATOR_JOB_S)
        if state_name(job) == "succeeded":
            # Its charges settled too, so that no later fault's budget check counts them.
            wait_for(
                lambda j=job_id: all("reserved" not in s for s in charges(lc, j).values()),
                timeout=30,
                interval=0.1,
            )
            return
    raise RuntimeError(f"the warm-up job did not succeed in {attempts} tries: {job.reason}")


# -- observing --------------------------------------------------------------------------------
@dataclass
class FaultResult:
    fault: str
    job_id: str
    state: str
    reason_code: str
    reason: str
    seconds: float  # from the fault to the job's final state at the coordinator
    orphans: list[int]  # the job's worker processes alive after it ended (and a grace)
    budget: dict[str, str]  # owner -> its charge for the job: committed | released | ...
    budget_ok: bool
    known_by: list[str] = field(default_factory=list)  # who still has a record of the job
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# A worker's phases in order (protocols/worker.py); "computing" is split at the moment its
# input goes out (fraction 0.2), since freezing before that stalls every peer.
ORDER = (
    "starting",
    "connecting",
    "preparing",
    "computing",
    "computing, input shared",
    "noising",
    "delivering",
    "done",
    "failed",
)


def phase_of(lc: LocalConsortium, job_id: str, party: str) -> str:
    try:
        raw = json.loads((lc.root / "state" / party / "jobs" / job_id / STATUS_FILE).read_text())
        phase, fraction = str(raw["phase"]), float(raw.get("fraction", 0.0))
    except (OSError, ValueError, KeyError):
        return ""
    return "computing, input shared" if phase == "computing" and fraction >= 0.2 else phase


def worker_pids(lc: LocalConsortium, job_id: str, party: str | None = None) -> list[int]:
    return sorted(
        pid
        for pid, d in live_workers(lc.root / "state").items()
        if d.name == job_id and (party is None or d.parent.parent.name == party)
    )


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def freeze_worker(lc: LocalConsortium, job_id: str, party: str, phases: tuple[str, ...]) -> int:
    """SIGSTOP ``party``'s worker of the job as soon as it reports one of ``phases``."""
    pids = wait_for(lambda: worker_pids(lc, job_id, party), timeout=60, interval=0.01)
    first = min(ORDER.index(p) for p in phases)
    seen = pids and wait_for(
        lambda: (lambda p: p if p in ORDER[first:] else "")(phase_of(lc, job_id, party)),
        timeout=60,
        interval=0.001,
    )
    if seen not in phases:
        with lc.client() as c:
            job = c.job(job_id)
        raise RuntimeError(
            f"the worker of {party} for job {job_id} was not seen in {phases} (last: "
            f"{seen or 'nothing'}); the job is {state_name(job)} {job.reason_code} {job.reason}"
        )
    os.kill(pids[0], signal.SIGSTOP)
    return int(pids[0])


def final_job(lc: LocalConsortium, job_id: str, timeout: float) -> Any:
    """Poll the coordinator until the job is final (it may be down meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with lc.client() as c:
                while time.monotonic() < deadline:
                    job = c.job(job_id)
                    if is_final(job):
                        return job
                    time.sleep(0.05)
        except EnsnifError:
            time.sleep(0.2)
    raise TimeoutError(f"job {job_id} not final after {timeout:.0f}s")


def charges(lc: LocalConsortium, job_id: str) -> dict[str, list[str]]:
    """owner -> the states of its ledger rows for the job (one per dataset it charged)."""
    out = {}
    for owner in OWNERS:
        con = sqlite3.connect(f"file:{lc.root / 'state' / owner / 'node.db'}?mode=ro", uri=True)
        try:
            rows = con.execute(
                "SELECT dataset, state FROM budget_charges WHERE job_id = ?", (job_id,)
            ).fetchall()
        finally:
            con.close()
        out[owner] = [f"{state}" for _, state in rows]
    return out


def spent(lc: LocalConsortium) -> dict[str, Fraction]:
    """owner -> ρ committed on its dataset so far (from its ledger)."""
    out = {}
    for owner, dataset in OWNERS.items():
        con = sqlite3.connect(f"file:{lc.root / 'state' / owner / 'node.db'}?mode=ro", uri=True)
        try:
            rows = con.execute(
                "SELECT rho FROM budget_charges WHERE dataset = ? AND state = 'committed'",
                (dataset,),
            ).fetchall()
        finally:
            con.close()
        out[owner] = sum((Fraction(r) for (r,) in rows), Fraction(0))
    return out


def node_knows(lc: LocalConsortium, job_id: str) -> list[str]:
    out = []
    for name in localnet.NODES:
        con = sqlite3.connect(f"file:{lc.root / 'state' / name / 'node.db'}?mode=ro", uri=True)
        try:
            if con.execute("SELECT 1 FROM node_jobs WHERE job_id = ?", (job_id,)).fetchone():
                out.append(name)
        finally:
            con.close()
    return out


def settle(
    lc: LocalConsortium,
    fault: str,
    job_id: str,
    faulted_at: float,
    before: dict[str, Fraction],
    expect: dict[str, str],
    timeout: float = 90,
    job: Any = None,
    took: float | None = None,
) -> FaultResult:
    """Wait for the job's end (unless given) and check what it left: workers, budget,
    records. ``expect``: owner -> the charge it must end with (committed or released)."""
    if job is None:
        job = final_job(lc, job_id, timeout)
        took = time.monotonic() - faulted_at
    wait_for(lambda: not worker_pids(lc, job_id), timeout=10, interval=0.1)
    orphans = worker_pids(lc, job_id)
    # A node settles its ledger as it ends its side of the job; one that was down does so
    # at its restart: give the ledgers a moment to agree with the coordinator.
    done = wait_for(
        lambda: all(
            states and all(s != "reserved" for s in states)
            for owner, states in charges(lc, job_id).items()
            if expect.get(owner) != "none"
        ),
        timeout=15,
        interval=0.1,
    )
    now = charges(lc, job_id)
    after = spent(lc)
    budget = {owner: "+".join(states) or "none" for owner, states in now.items()}
    problems = []
    for owner, want in expect.items():
        delta = after[owner] - before[owner]
        if budget[owner] != want:
            problems.append(f"{owner}: charge {budget[owner]}, expected {want}")
        if delta != (RHO if want == "committed" else 0):
            problems.append(
                f"{owner}: spent grew by {delta}, expected {RHO if want == 'committed' else 0}"
            )
    if not done:
        problems.append("a reservation was left open")
    if orphans:
        problems.append(f"orphan workers {orphans}")
    return FaultResult(
        fault=fault,
        job_id=job_id,
        state=state_name(job),
        reason_code=job.reason_code,
        reason=job.reason,
        seconds=took or 0.0,
        orphans=orphans,
        budget=budget,
        budget_ok=not any(p.startswith(tuple(OWNERS)) for p in problems) and bool(done),
        known_by=node_knows(lc, job_id),
        problems=problems,
    )


def _submit(lc: LocalConsortium) -> str:
    with lc.client() as c:
        # fresh: the same DP question again must run (not be answered from the cache).
        return str(c.submit(jobspec.load(lc.root / "jobs" / DP_JOB), fresh=True).id)


def _restart(lc: LocalConsortium, name: str) -> None:
    lc.restart(name)
    lc.wait_ready(90)


# -- the faults -------------------------------------------------------------------------------
def party_killed(lc: LocalConsortium, party: str = "logistics") -> FaultResult:
    """The node of a party is SIGKILLed while its worker is connected (and held frozen, so
    the job is surely mid-way); its worker dies with it."""
    before = spent(lc)
    job_id = _submit(lc)
    freeze_worker(lc, job_id, party, ("preparing", "computing"))
    t = time.monotonic()
    lc.kill(party)
    job = final_job(lc, job_id, 60)
    took = time.monotonic() - t
    _restart(lc, party)  # its ledger settles the job at its restart (node_restarted)
    return settle(
        lc,
        f"party killed mid-job ({party} node SIGKILL)",
        job_id,
        t,
        before,
        {"grocery": "committed", "logistics": "committed"},
        job=job,
        took=took,
    )


def party_never_starts(lc: LocalConsortium, party: str = "helper") -> FaultResult:
    """The helper's node is down when the job is proposed (it stays registered)."""
    lc.kill(party)
    before = spent(lc)
    t = time.monotonic()
    job_id = _submit(lc)
    out = settle(
        lc,
        f"party never starts ({party} node down at proposal)",
        job_id,
        t,
        before,
        {"grocery": "released", "logistics": "released"},
    )
    _restart(lc, party)
    return out


def stalled_link(lc: LocalConsortium, party: str = "logistics", label: str = "") -> FaultResult:
    """A worker frozen (SIGSTOP) after its peers connected: alive, its connections open,
    sending nothing. Its node's job limit or its peers' silence watch ends the job."""
    before = spent(lc)
    job_id = _submit(lc)
    pid = freeze_worker(lc, job_id, party, ("preparing", "computing"))
    t = time.monotonic()
    try:
        return settle(
            lc,
            label or f"stalled link ({party} worker frozen after connecting)",
            job_id,
            t,
            before,
            {"grocery": "committed", "logistics": "committed"},
            timeout=NODE_JOB_S + 60,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def coordinator_restart_running(lc: LocalConsortium, party: str = "grocery") -> FaultResult:
    """The coordinator is SIGKILLed while the job runs (one worker held frozen before it
    connects, so the job cannot finish first), and restarted; then the worker resumes."""
    with lc.client() as c:
        known = {j.id for j in c.jobs(1000)}
    before = spent(lc)
    job_id = _submit(lc)
    pid = freeze_worker(lc, job_id, party, ("starting",))
    with lc.client() as c:
        wait_for(lambda: state_name(c.job(job_id)) == "running", timeout=30)
    t = time.monotonic()
    lc.kill("coordinator")
    lc.restart("coordinator")
    lc.wait_ready(60)
    with contextlib.suppress(ProcessLookupError):  # its node may have ended it meanwhile
        os.kill(pid, signal.SIGCONT)
    out = settle(
        lc,
        "coordinator killed and restarted while the job runs",
        job_id,
        t,
        before,
        {"grocery": "committed", "logistics": "committed"},
    )
    with lc.client() as c:
        missing = (known | {job_id}) - {j.id for j in c.jobs(1000)}
    if missing:
        out.problems.append(f"job records lost by the coordinator: {sorted(missing)}")
    return out


# -- the table --------------------------------------------------------------------------------
def print_table(results: list[FaultResult], markdown: bool = False) -> None:
    head = (
        "fault",
        "defined state",
        "s after fault",
        "orphans",
        "budget (grocery/logistics)",
        "ok",
    )
    rows = [
        (
            r.fault,
            f"{r.state} ({r.reason_code})" if r.reason_code else r.state,
            f"{r.seconds:.1f}",
            str(len(r.orphans)),
            f"{r.budget.get('grocery')}/{r.budget.get('logistics')}",
            "✓" if r.ok else "✗ " + "; ".join(r.problems),
        )
        for r in results
    ]
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + " --- |" * len(head))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    for row in (head, *rows):
        print("  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = ap.parse_args()
    results: list[FaultResult] = []
    with tempfile.TemporaryDirectory(prefix="ensnif-faults-") as tmp:
        print(
            f"== faults: consortium with propose {PROPOSE_S} s, node job limit {NODE_JOB_S} s, "
            f"connect {CONNECT_S} s, peer silence {SILENCE_S} s",
            flush=True,
        )
        lc = fault_consortium(Path(tmp) / "watch")
        try:
            # Restarting a node last: the coordinator's channel to a node that was down waits
            # out gRPC's reconnect backoff before it reaches the node again (see the docs).
            for scenario in (
                stalled_link,
                coordinator_restart_running,
                party_killed,
                party_never_starts,
            ):
                results.append(scenario(lc))
                print(
                    f"   {results[-1].fault}: {results[-1].state} after "
                    f"{results[-1].seconds:.1f} s",
                    flush=True,
                )
        finally:
            lc.stop()
        print("== the stall again with the silence watch off (node job limit 15 s)", flush=True)
        lc = fault_consortium(Path(tmp) / "nowatch", silence_s=0, node_job_s=15)
        try:
            results.append(
                stalled_link(lc, label="stalled link, silence watch off (job limit 15 s)")
            )
        finally:
            lc.stop()
    print()
    print_table(results, args.markdown)
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=1))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
