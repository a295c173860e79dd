"""Parallel sessions for a big private join through the real orchestration (issue 15 goal 4):
intersection_sum on the tagged-helper route as k = 1, 2, 4 MPC sessions per party
(``params.sessions``; protocols/partitions.py), submitted through the SDK to a local
consortium of daemons (coordinator, grocery, logistics, helper: processes, mTLS gRPC,
MPyC over TLS) whose nodes offer ``parallel_sessions = max(k)``.

Per run: the wall time from SubmitJob to the combined result, each party's worker CPU
seconds summed over its k sessions and per session (``sessions.json`` in the node's job
directory), the bytes sent per party (summed over its sessions), rounds (the largest
session's), the answer checked against pandas, and the load average before and after.
The owners' CSV files are read split over their sessions (``ensnif_mpc.data.split``), so
an owner's CPU per session should fall about as 1/k plus each session's fixed cost.

    python bench/join_partitions.py [--rows 1000000 3000000] [--k 1 2 4]

(1,000,000 generated rows per owner hold about 330,000 distinct customers a side,
3,000,000 about 989,000.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from ensnif_job import Consortium  # noqa: E402


def start(root: Path, rows: int, parallel: int, timeout_s: float) -> Consortium:
    """The bench's consortium (every protocol allowed exactly) with ``parallel_sessions``."""
    from ensnif_mpc.demo.localnet import NODES
    from protocols import registry

    net = Consortium(root, rows, job_timeout_s=timeout_s)
    net.lc.setup()
    everything = json.dumps(sorted(registry.catalog()))
    for name in NODES:
        cfg = net.lc.root / f"party-{name}.toml"
        text = re.sub(
            r"(?m)^(allowed_protocols|exact_protocols) = .*$",
            lambda m: f"{m.group(1)} = {everything}",
            cfg.read_text(),
        )
        cfg.write_text(f"parallel_sessions = {parallel}\n" + text)
    net.lc.start(timeout_s)
    return net


def spec(k: int) -> dict[str, Any]:
    return {
        "protocol": "intersection_sum",
        "helpers": ["helper"],
        "inputs": [
            {
                "party": "grocery",
                "dataset": "orders",
                "key": "customer_id",
                "value": "basket_total",
            },
            {"party": "logistics", "dataset": "deliveries", "key": "customer_id"},
        ],
        "params": {"sessions": k} if k > 1 else {},
        "privacy": {"exact": True},
    }


def plaintext(net: Consortium) -> dict[str, float]:
    import pandas as pd

    orders = pd.read_csv(net.data.orders, usecols=["customer_id", "basket_total"])
    deliveries = pd.read_csv(net.data.deliveries, usecols=["customer_id"])
    hit = orders[orders["customer_id"].isin(set(deliveries["customer_id"]))]
    return {
        "keys": float(hit["customer_id"].nunique()),
        "rows": float(len(hit)),
        "sum": float(hit["basket_total"].sum()),
        "distinct_a": float(orders["customer_id"].nunique()),
        "distinct_b": float(deliveries["customer_id"].nunique()),
    }


def sessions_of(net: Consortium, job_dirs: dict[str, Path]) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for party, d in job_dirs.items():
        path = d / "sessions.json"
        out[party] = json.loads(path.read_text()) if path.exists() else []
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000])
    ap.add_argument("--k", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--timeout", type=float, default=900.0)
    args = ap.parse_args()
    rows_out = []
    for rows in args.rows:
        with tempfile.TemporaryDirectory(prefix="ensnif-partitions-") as tmp:
            net = start(Path(tmp), rows, max(args.k), args.timeout)
            try:
                want = plaintext(net)
                for k in args.k:
                    load = os.getloadavg()
                    run = net.run(spec(k), args.timeout)
                    from ensnif_mpc.demo.localnet import NODES

                    job_root = net.lc.root / "state"
                    latest = {
                        n: max((job_root / n / "jobs").iterdir(), key=lambda p: p.stat().st_mtime)
                        for n in NODES
                    }
                    per_session = sessions_of(net, latest)
                    ok = (
                        run.outputs["keys"] == want["keys"]
                        and run.outputs["rows"] == want["rows"]
                        and abs(run.outputs["sum"] - want["sum"]) < 1e-6 * max(1.0, want["sum"])
                    )
                    row = {
                        "rows_per_owner": rows,
                        "distinct_keys": [int(want["distinct_a"]), int(want["distinct_b"])],
                        "k": k,
                        "wall_s": round(run.wall, 2),
                        "cpu_s_per_party": [round(c, 2) for c in run.worker_cpu_per_party],
                        "cpu_s_total": round(run.worker_cpu, 2),
                        "bytes_per_party": run.bytes_sent,
                        "bytes_per_key": round(sum(run.bytes_sent) / want["distinct_a"], 1),
                        "cpu_s_per_session": {
                            p: [round(s["cpu_seconds"], 2) for s in v]
                            for p, v in per_session.items()
                        },
                        "rounds_per_session": {
                            p: [s["rounds"] for s in v] for p, v in per_session.items()
                        },
                        "matches_pandas": ok,
                        "load_before": [round(x, 1) for x in load],
                        "load_after": [round(x, 1) for x in os.getloadavg()],
                    }
                    rows_out.append(row)
                    print(json.dumps(row), flush=True)
                    time.sleep(1.0)
            finally:
                net.stop()
    return 0 if all(r["matches_pandas"] for r in rows_out) else 1


if __name__ == "__main__":
    sys.exit(main())
