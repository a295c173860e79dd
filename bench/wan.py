"""The canonical jobs across separate hosts at 0, 10 and 50 ms round-trip time.

Not a test: it prints a table and asserts only that every answer matches the plaintext one.
The consortium is the namespace harness's (tests/netns/harness.py, root only): coordinator,
three members and the analyst each in a network namespace of its own, every link between
them through the delaying relay (this kernel has no ``sch_netem``), whose round-trip time
changes between the rows (0 ms = the relay with no delay). Per job and RTT:

- ``job s``: submission to the final state, as the coordinator stamps them;
- ``MPC s``: the longest party's MPyC session, from all parties connected to its shutdown
  (MPyC's own "elapsed time" in each worker's log): the part the RTT acts on;
- ``cli s``: the analyst's ``ensnif job submit --wait`` from start to exit (adds the CLI's
  start-up and its polling);
- ``MPC kB``: what the parties' workers report as sent (MPyC's payload; the coordinator's
  per-party ``bytes_sent``), and ``wire kB``: every byte the relay forwarded on the MPC
  links (TLS records, both directions);
- ``rounds``: the most MPC rounds of any party (send bursts after a wait, counted on MPyC's
  transport by protocols/transport_stats.py; at a high RTT it is the protocol's depth).

After the table, the orchestration round trips each job pays beyond its MPC session: what
the RTT adds to the time outside the MPyC session, divided by the RTT
(((t − MPC s) at RTT r − (t − MPC s) at 0) / r), from the coordinator's stamps (``job``:
Propose, Start, the workers' MPC links and the nodes' reports) and from the analyst's CLI
(``cli``: that plus the CLI's own connection, submission, watch and result fetch).

    sudo .venv/bin/python bench/wan.py [--rows 1000] [--rtt 0 10 50] [--repeat 3] [--json F]
        [--only 'dp mean' ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ensnif_mpc.cli.demo_cmd import plaintext_answer  # noqa: E402
from ensnif_mpc.jobs import jobspec  # noqa: E402
from tests.netns import harness  # noqa: E402

JOBS = {
    "dp mean": "ticket-mean-dp.toml",
    "intersection size": "shared-customers.toml",
    "intersection sum": "shared-basket.toml",
}


def _seconds(job: dict[str, Any]) -> float:
    start = dt.datetime.fromisoformat(job["created_at"])
    end = dt.datetime.fromisoformat(job["updated_at"])
    return (end - start).total_seconds()


def _agrees(c: harness.NetnsConsortium, job_file: str, outputs: dict[str, Any]) -> bool:
    assert c.lc is not None
    expected = plaintext_answer(c.lc, jobspec.load(c.root / "jobs" / job_file))
    for name, value in outputs.items():
        if name not in expected:
            continue
        if "ci95" in value:
            if abs(value["value"] - expected[name]) > 3 * value["ci95"]:
                return False
        elif not math.isclose(value["value"], expected[name], rel_tol=1e-6, abs_tol=1e-6):
            return False
    return True


_ELAPSED = re.compile(r"Stop MPyC -- elapsed time: (\d+):(\d+):([\d.]+)")


def mpc_seconds(c: harness.NetnsConsortium, job_id: str) -> float:
    """The longest MPyC session of the job's parties (start() done to shutdown), from the
    line MPyC writes to each worker's log."""
    longest = 0.0
    for party in ("grocery", "logistics", "helper"):
        log = c.root / "state" / party / "jobs" / job_id / "worker.log"
        m = _ELAPSED.search(log.read_text(errors="replace")) if log.exists() else None
        if m:
            longest = max(longest, int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]))
    return longest


def run_one(c: harness.NetnsConsortium, job_file: str) -> dict[str, Any]:
    wire0 = c.relay_bytes(":mpc")
    t = time.perf_counter()
    got = c.cli("job", "submit", "--wait", "--fresh", "--json", f"jobs/{job_file}", timeout=600)
    cli_s = time.perf_counter() - t
    if got.code != 0:
        raise RuntimeError(f"{job_file}: exit {got.code}: {got.stdout[-500:]}{got.stderr[-500:]}")
    out = got.json()
    time.sleep(0.7)  # the relay writes its counters every 0.5 s
    job = c.status(out["job"]["id"])
    mpc = sum(int(p.get("progress", {}).get("bytes_sent", 0)) for p in job.get("parties", []))
    rounds = max(
        (int(p.get("progress", {}).get("rounds", 0)) for p in job.get("parties", [])), default=0
    )
    return {
        "rounds": rounds,
        "job_s": _seconds(job),
        "mpc_s": mpc_seconds(c, job["id"]),
        "cli_s": cli_s,
        "mpc_bytes": mpc,
        "wire_bytes": c.relay_bytes(":mpc") - wire0,
        "ok": _agrees(c, job_file, out["result"]["outputs"]),
    }


def measure(
    rows: int, rtts: list[float], repeat: int, only: list[str] | None = None
) -> list[dict[str, Any]]:
    reason = harness.unavailable_reason()
    if reason is not None:
        raise SystemExit(f"bench/wan.py: {reason}")
    harness.sweep_stale()
    root = Path(tempfile.mkdtemp(prefix="ensnif-wan-"))
    c = harness.open_consortium(root, rtt_ms=rtts[0], rows=rows, job_timeout_s=900)
    out = []
    try:
        for rtt in rtts:
            c.set_wan(rtt)
            for label, job_file in JOBS.items():
                if only and label not in only:
                    continue
                runs = [run_one(c, job_file) for _ in range(repeat)]
                out.append(
                    {
                        "rtt_ms": rtt,
                        "job": label,
                        "rows": rows,
                        "job_s": statistics.median(r["job_s"] for r in runs),
                        "cli_s": statistics.median(r["cli_s"] for r in runs),
                        "mpc_s": statistics.median(r["mpc_s"] for r in runs),
                        "mpc_bytes": max(r["mpc_bytes"] for r in runs),
                        "rounds": max(r["rounds"] for r in runs),
                        "wire_bytes": statistics.median(r["wire_bytes"] for r in runs),
                        "ok": all(r["ok"] for r in runs),
                        "runs": repeat,
                    }
                )
                print_row(out[-1], header=len(out) == 1)
    finally:
        c.close()
    return out


def print_row(r: dict[str, Any], header: bool = False) -> None:
    if header:
        print(
            f"{'RTT ms':>6}  {'job':<18} {'rows':>6} {'job s':>7} {'MPC s':>7} {'cli s':>7} "
            f"{'MPC kB':>8} {'wire kB':>8} {'rounds':>7}  answer"
        )
    print(
        f"{r['rtt_ms']:>6g}  {r['job']:<18} {r['rows']:>6} {r['job_s']:>7.2f} {r['mpc_s']:>7.2f} "
        f"{r['cli_s']:>7.2f} "
        f"{r['mpc_bytes'] / 1e3:>8.1f} {r['wire_bytes'] / 1e3:>8.1f} {r.get('rounds', 0):>7} "
        f"{'  ok' if r['ok'] else '  WRONG'}",
        flush=True,
    )


def print_round_trips(rows: list[dict[str, Any]]) -> None:
    """Orchestration round trips per job: the extra time outside MPC per unit of RTT."""
    base = {r["job"]: r for r in rows if r["rtt_ms"] == 0}
    lines = []
    for r in rows:
        b = base.get(r["job"])
        if b is None or r["rtt_ms"] <= 0:
            continue
        rtt = r["rtt_ms"] / 1000.0
        job = ((r["job_s"] - r["mpc_s"]) - (b["job_s"] - b["mpc_s"])) / rtt
        cli = ((r["cli_s"] - r["mpc_s"]) - (b["cli_s"] - b["mpc_s"])) / rtt
        lines.append(f"{r['rtt_ms']:>6g}  {r['job']:<18} {job:>10.1f} {cli:>10.1f}")
    if lines:
        print(f"{'RTT ms':>6}  {'job':<18} {'job trips':>10} {'cli trips':>10}")
        print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1000, help="rows per data owner")
    ap.add_argument("--rtt", type=float, nargs="+", default=[0, 10, 50], help="RTTs in ms")
    ap.add_argument("--repeat", type=int, default=3, help="runs per cell (median shown)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--only", nargs="+", choices=sorted(JOBS), help="just these jobs")
    args = ap.parse_args(argv)
    rows = measure(args.rows, args.rtt, args.repeat, args.only)
    print_round_trips(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
