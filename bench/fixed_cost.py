"""A job's fixed cost: submit-to-result of a small exact sum (the demo's revenue-sum, 1,000
rows per owner) through the coordinator and three node daemons, with the nodes' pre-started
workers on (``standby_workers = 1``, protocols/standby.py) and off (cold worker starts),
next to the raw MPyC program for the same sum (bench/raw_aggregate.py, three processes over
TLS, no orchestration) — the difference is what orchestration costs per job.

Median of ``--runs`` jobs each (after one warm-up job that is not counted). Every answer is
checked against the plaintext sum. Not a test: it prints numbers.

    python bench/fixed_cost.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from ensnif_mpc.demo.localnet import LocalConsortium  # noqa: E402
from ensnif_mpc.jobs import jobspec  # noqa: E402

JOB = HERE.parent / "ensnif_mpc" / "demo" / "jobs" / "revenue-sum.toml"
ROWS = 1000


def consortium_runs(root: Path, standby: int, runs: int) -> tuple[list[float], float]:
    lc = LocalConsortium(root, rows=ROWS).setup()
    for cfg in root.glob("party-*.toml"):
        cfg.write_text(f"standby_workers = {standby}\n" + cfg.read_text())
    spec = jobspec.load(JOB)
    with lc:
        lc.start(timeout_s=120)
        client = lc.client()
        times, answer = [], 0.0
        for n in range(runs + 1):
            t = time.perf_counter()
            job = client.submit(spec, fresh=True)
            client.wait(job.id, timeout_s=300)
            answer = client.result(job.id, exact=True)["sum"]
            if n:  # the first job warms the coordinator's and nodes' connections
                times.append(time.perf_counter() - t)
            time.sleep(0.3)  # let each node start its next standby (as between real jobs)
    return times, answer


def raw_sum(root: Path, data_files: dict[str, Path]) -> float:
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
    walls = [raw.run(root / f"raw{i}", "raw_aggregate.py", job, 300).wall for i in range(3)]
    return min(walls)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    print("== a job's fixed cost (exact sum, 1,000 rows per owner, 3 node daemons)", flush=True)
    with tempfile.TemporaryDirectory(prefix="ensnif-fixed-") as tmp:
        root = Path(tmp)
        rows, answers = {}, {}
        for standby in (0, 1):
            times, answer = consortium_runs(root / f"standby{standby}", standby, args.runs)
            rows[standby], answers[standby] = times, answer
            print(
                f"standby_workers = {standby}: median {statistics.median(times):.2f} s, "
                f"min {min(times):.2f} s over {len(times)} jobs (sum {float(answer):,.2f})",
                flush=True,
            )
        data = root / "standby1"
        files = {
            "grocery": next(data.rglob("orders*.csv")),
            "logistics": next(data.rglob("deliveries*.csv")),
        }
        import pandas as pd

        want = float(
            pd.read_csv(files["grocery"])["basket_total"].sum()
            + pd.read_csv(files["logistics"])["fee"].sum()
        )
        for standby, got in answers.items():
            if abs(float(got) - want) > 1e-6 * max(1.0, abs(want)):
                print(f"PROBLEM: standby_workers = {standby} gave {float(got)}, pandas {want}")
                return 1
        raw_s = raw_sum(root, files)
        cold, warm = statistics.median(rows[0]), statistics.median(rows[1])
        print(f"raw MPyC sum (3 processes over TLS, launch to exit): {raw_s:.2f} s")
        print(
            f"orchestration per job beyond raw MPyC: cold {cold - raw_s:+.2f} s, "
            f"pre-started {warm - raw_s:+.2f} s; pre-started workers save {cold - warm:.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
