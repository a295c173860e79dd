"""Benchmarks (`make bench`): per protocol family, the same computation as (a) plaintext pandas,
(b) a minimal hand-written MPyC program with the same secure types and the same local
pre-aggregation (bench/raw_*.py, three processes over TLS), (c) a full Ensnif job through the
coordinator and three nodes; prints c/b (orchestration overhead) and c/a (the price of not
seeing the data), CPU time, bytes sent, and checks every answer against the plaintext one.

Not a test: it prints numbers and asserts nothing about speed. Sizes are rows per data owner
(grocery and logistics each); a compute-only helper is the third party. After the families, the
private-join tables (bench/join_fast.py: intersection_sum and join_group_by at 33k, 330k, 1M
distinct keys a side, pandas vs raw MPyC vs the protocol's workers, bytes per key, peak
memory), the throughput programs (bench/throughput.py: secure products, comparisons and random
bits per second, numpy vs raw MPyC vs the worker), the models table (bench/models.py:
horizontal ridge regression at 1,000,000 rows per owner × 10 features, numpy vs raw MPyC vs the
protocol's workers; bench/vertical.py: ridge across a private join, 100,000 rows per owner, 5 +
5 features, and join_logistic exact and DP at 10,000 rows per owner), encrypted scoring
(bench/he_scoring.py: numpy vs a hand-written TenSEAL script vs `ensnif score`, and the packing
table), the outsourced-dataset job (bench/he_outsource.py: 100,000 BFV-encrypted values at the
helper joined with a live owner's, numpy vs raw TenSEAL vs the job, and the extra time over the
same job with live owners only), then the load section (bench/load.py): 50 small jobs submitted
at once (12 with --quick, none when the run is narrowed with --only, --protocol or --rows,
unless --load N asks for it), and as root the WAN table (bench/wan.py: the canonical jobs
across network namespaces at 0, 10 and 50 ms RTT).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import FAMILIES, PLANS, Case, select  # noqa: E402
from ensnif_job import Consortium, EnsnifRun  # noqa: E402
from load import (
    from_json as load_from_json,  # noqa: E402
    measure as measure_load,  # noqa: E402
    print_report as print_load,  # noqa: E402
)
from plaintext import PLAINTEXT, agrees, read  # noqa: E402
from points import per_point_us, print_costs  # noqa: E402
from raw import (
    RawRun,  # noqa: E402
    run as run_raw,  # noqa: E402
)
from report import print_breakdowns, print_table  # noqa: E402

from ensnif_mpc.demo import sample_data  # noqa: E402
from protocols import registry  # noqa: E402

REFERENCE_MAX_ROWS = 100_000  # the registry's references are row loops: checked up to here
# The raw baseline of a protocol whose Ensnif job takes another route than the plan's
# script (bench/cases.py) computes: intersection_sum runs on the tagged-helper route
# (protocols/join/tagged.py), so its fair raw program is bench/raw_join_fast.py, the same
# route in plain MPyC, not the PRF-route program bench/raw_join.py.
RAW_SCRIPTS = {"intersection_sum": "raw_join_fast.py"}
RAW_LABELS = {"raw_join_fast.py": "tagged route", "raw_join.py": "PRF route"}


def raw_script(case: Case) -> str:
    return RAW_SCRIPTS.get(case.plan.protocol, case.plan.script)


def plaintext(case: Case, data: sample_data.SampleData) -> tuple[float, dict[str, float]]:
    t = time.perf_counter()
    frames = [read(Path(f), case.roles(n)) for n, f in enumerate(case.files(data))]
    answer = PLAINTEXT[case.plan.protocol](frames, case.plan.params)
    return time.perf_counter() - t, answer


def reference(case: Case, data: sample_data.SampleData) -> dict[str, float]:
    """The protocol's own plaintext reference (protocols/registry.py), to check pandas'."""
    tables = [
        sample_data.read_table(Path(f), case.roles(n)) for n, f in enumerate(case.files(data))
    ]
    return registry.get(case.plan.protocol).reference(tables, case.plan.params)


def best(runs: list[Any]) -> Any:
    """The fastest run: load from others on the shared machine only ever adds time."""
    return min(runs, key=lambda r: r.wall)


def measure(
    case: Case, net: Consortium, work: Path, timeout_s: float, repeat: int, raw: bool = True
) -> dict:
    """a, then b and c interleaved ``repeat`` times (so load from others hits both alike);
    the fastest run of each is reported, every answer is checked."""
    row: dict[str, Any] = {
        "family": case.plan.family,
        "protocol": case.plan.protocol,
        "rows_per_owner": case.rows,
        "load_before": os.getloadavg()[0],
    }
    times = []
    for _ in range(repeat):
        t, want = plaintext(case, net.data)
        times.append(t)
    row["plaintext_s"] = min(times)
    row["plaintext"] = want
    problems: list[str] = []
    if case.rows <= REFERENCE_MAX_ROWS:
        problems += [f"pandas vs reference: {p}" for p in agrees(want, reference(case, net.data))]
    raws: list[RawRun] = []
    jobs: list[EnsnifRun] = []
    raw_ok, job_ok = raw, True  # raw False (--no-raw): the Ensnif job only
    for _ in range(repeat):
        if raw_ok:
            try:
                b = run_raw(work / "raw", raw_script(case), case.raw_job(net.data), timeout_s)
                raws.append(b)
                problems += [f"raw: {p}" for p in agrees(b.outputs, want)]
            except (RuntimeError, TimeoutError) as exc:
                problems.append(f"raw failed: {exc}")
                raw_ok = False
        if job_ok:
            try:
                c = net.run(case.spec, timeout_s)
                jobs.append(c)
                problems += [f"ensnif: {p}" for p in agrees(c.outputs, want)]
            except Exception as exc:  # a failed job is a result to print, not a crash
                problems.append(f"ensnif failed: {exc}")
                traceback.print_exc()
                job_ok = False
    if raws:
        row["raw"] = asdict(best(raws))
        row["raw_walls"] = [r.wall for r in raws]
    if jobs:
        row["ensnif"] = asdict(best(jobs))
        row["ensnif_walls"] = [r.wall for r in jobs]
    row["raw_skipped"] = not raw
    row["raw_script"] = raw_script(case)
    row["raw_label"] = RAW_LABELS.get(row["raw_script"], "")
    row["load_after"] = os.getloadavg()[0]
    row["problems"] = sorted(set(problems))
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", help="rows per owner for every selected case")
    ap.add_argument("--only", choices=FAMILIES, action="append", help="a family (repeatable)")
    ap.add_argument(
        "--protocol",
        choices=[p.protocol for p in PLANS],
        action="append",
        help="only this protocol (repeatable)",
    )
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument(
        "--no-raw",
        action="store_true",
        help="skip the raw MPyC baselines (b): the PRF-route join's takes minutes at 1M rows",
    )
    ap.add_argument("--repeat", type=int, default=5, help="runs of a, b and c (best shown)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per raw run or job")
    ap.add_argument("--json", type=Path, help="also write every measurement here")
    ap.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    ap.add_argument("--report", type=Path, help="only print the tables of a saved --json file")
    ap.add_argument(
        "--load",
        type=int,
        metavar="N",
        help="jobs submitted at once in the load section (0: skip it; default 50, 12 with "
        "--quick, 0 with --only, --protocol or --rows)",
    )
    ap.add_argument(
        "--join-keys",
        type=int,
        nargs="+",
        metavar="N",
        help="distinct keys a side for the private-join table (bench/join_fast.py; 0: skip; "
        "default 33000 330000 1000000, 33000 with --quick; only with the joins when narrowed)",
    )
    ap.add_argument(
        "--wan",
        type=float,
        nargs="*",
        metavar="RTT_MS",
        help="the canonical jobs across network namespaces at these round-trip times "
        "(bench/wan.py; root only; default 0 10 50 in a full run, skipped when narrowed; "
        "--wan with no value: skip)",
    )
    args = ap.parse_args()
    if args.report:
        saved = json.loads(args.report.read_text())
        show(saved, args.markdown)
        return 0

    catalog = registry.catalog()
    wanted = select(args.only, args.protocol, args.rows, args.quick)
    cases = [c for c in wanted if c.plan.protocol in catalog]
    for missing in sorted({c.plan.protocol for c in wanted} - set(catalog)):
        print(f"note: protocol {missing!r} is not in the registry yet; skipped")
    results: list[dict[str, Any]] = []
    consortia: list[dict[str, float]] = []
    for rows in sorted({c.rows for c in cases}):
        with tempfile.TemporaryDirectory(prefix="ensnif-bench-") as tmp:
            root = Path(tmp)
            net = Consortium(root / "consortium", rows, job_timeout_s=args.timeout)
            print(
                f"== {rows:,} rows per owner: generating data, starting the consortium", flush=True
            )
            try:
                net.start(timeout_s=300)
                consortia.append(
                    {"rows": rows, "generate_s": net.generate_s, "startup_s": net.startup_s}
                )
                print(
                    f"   data {net.generate_s:.1f} s, consortium up in {net.startup_s:.1f} s",
                    flush=True,
                )
                for case in (c for c in cases if c.rows == rows):
                    row = measure(
                        case, net, root, args.timeout, max(args.repeat, 1), not args.no_raw
                    )
                    results.append(row)
                    print(_progress(row), flush=True)
            finally:
                net.stop()
    saved: dict[str, Any] = {"consortia": consortia, "results": results}
    if any(r["family"] == "private-join" for r in results):
        saved["point_us"] = per_point_us()
    join_ok = True
    narrowed = args.only or args.protocol or args.rows
    joins = "private-join" in (args.only or []) or "intersection_sum" in (args.protocol or [])
    if args.join_keys != [0] and (args.join_keys or not narrowed or joins):
        import join_fast

        sizes = args.join_keys or (join_fast.QUICK if args.quick else join_fast.SIZES)
        join_rows = join_fast.run(tuple(sizes), 3, join_fast.QUICK[0], args.timeout)
        saved["join_table"] = [asdict(r) for r in join_rows]
        join_ok = not any(r.problems for r in join_rows)
    throughput_ok = True
    if not narrowed:
        import throughput

        sizes = throughput.QUICK if args.quick else throughput.SIZES
        throughput_ok = throughput.run(list(sizes), sizes)
    models_ok = True
    if not narrowed:
        import models  # horizontal ridge regression (docs/models.md)

        models_ok = models.run(models.QUICK_ROWS if args.quick else models.ROWS, models.FEATURES)
        import vertical  # ridge regression across a private join (join_regression)

        vertical_ok = vertical.run(vertical.QUICK_ROWS if args.quick else vertical.ROWS)
        # logistic regression across the same kind of join (join_logistic: exact and DP)
        rows = vertical.QUICK_LOGISTIC_ROWS if args.quick else vertical.LOGISTIC_ROWS
        vertical_ok = vertical.logistic_run(rows) and vertical_ok
        models_ok = models_ok and vertical_ok
    he_ok = True
    if not narrowed:
        import he_scoring  # encrypted scoring and its packing table (docs/homomorphic.md)

        he_ok = he_scoring.run(2_000 if args.quick else 10_000, 2 if args.quick else 3)
    he_outsource_ok = True
    if not narrowed:
        import he_outsource

        rows = he_outsource.QUICK_ROWS if args.quick else he_outsource.ROWS
        he_outsource_ok = he_outsource.report(rows, 8, 1 if args.quick else 3) == 0
        # Outsourced rows converted to shares and used to train the horizontal ridge.
        ridge_rows = he_outsource.QUICK_ROWS if args.quick else he_outsource.RIDGE_ROWS
        he_outsource_ok = he_outsource.ridge_report(ridge_rows, 10) == 0 and he_outsource_ok
        # An outsourced side in a private join (intersection_sum, PRF route).
        he_join_rows = he_outsource.QUICK_ROWS // 10 if args.quick else he_outsource.JOIN_ROWS
        he_outsource_ok = he_outsource.join_report(he_join_rows) == 0 and he_outsource_ok
    learning_ok = True
    if not narrowed:
        import learning  # logistic regression and k-means (docs/models.md)

        learning_ok = learning.run(args.quick)
    aes_ok = True
    if not narrowed:
        import aes  # AES-128 under a secret-shared key (protocols/ports/aes.py)

        aes_ok = aes.run(1 if args.quick else 2)
    fixed_ok = True
    if not narrowed:
        print("== a job's fixed cost, pre-started workers on and off (bench/fixed_cost.py)")
        fixed = Path(__file__).with_name("fixed_cost.py")
        runs = ["--runs", "3" if args.quick else "7"]
        fixed_ok = subprocess.run([sys.executable, str(fixed), *runs], check=False).returncode == 0
    load_ok = True
    jobs = args.load
    if jobs is None:
        jobs = 0 if (args.only or args.protocol or args.rows) else 12 if args.quick else 50
    if jobs > 0:
        load = measure_load(jobs)
        saved["load"] = asdict(load)
        load_ok = load.ok
    show(saved, args.markdown)
    if args.json:
        args.json.write_text(json.dumps(saved, indent=1))
    wan_ok = run_wan(args.wan, bool(narrowed))
    failed = (
        any(r["problems"] for r in results)
        or not load_ok
        or not join_ok
        or not wan_ok
        or not throughput_ok
        or not models_ok
        or not he_ok
        or not fixed_ok
        or not he_outsource_ok
        or not learning_ok
        or not aes_ok
    )
    return 1 if failed else 0


def run_wan(rtts: list[float] | None, narrowed: bool) -> bool:
    """The WAN table (bench/wan.py): its own process, since it builds network namespaces."""
    if rtts is None:
        rtts = [] if narrowed else [0, 10, 50]
    if not rtts:
        return True
    if os.geteuid() != 0:
        print("note: the WAN table needs root (network namespaces); skipped")
        return True
    print("== the canonical jobs across network namespaces (bench/wan.py)", flush=True)
    wan = Path(__file__).with_name("wan.py")
    cmd = [sys.executable, str(wan), "--rtt", *(f"{r:g}" for r in rtts), "--repeat", "1"]
    return subprocess.run(cmd, check=False).returncode == 0


def show(saved: dict[str, Any], markdown: bool) -> None:
    results = saved["results"]
    order = {(p.family, p.protocol): i for i, p in enumerate(PLANS)}
    results.sort(key=lambda r: (order[r["family"], r["protocol"]], r["rows_per_owner"]))
    print()
    print_table(results, markdown=markdown)
    print_breakdowns(results)
    if saved.get("point_us"):
        print_costs(*saved["point_us"])
    for c in saved["consortia"]:
        print(
            f"consortium at {c['rows']:,} rows/owner: sample data {c['generate_s']:.1f} s, "
            f"start (incl. each node's bound check of its CSV) {c['startup_s']:.1f} s"
        )
    if saved.get("load"):
        print_load(load_from_json(saved["load"]))


def _progress(row: dict[str, Any]) -> str:
    b, c = row.get("raw"), row.get("ensnif")
    parts = [f"   {row['protocol']} {row['rows_per_owner']:,}: plain {row['plaintext_s']:.2f} s"]
    parts.append(f"raw {b['wall']:.2f} s" if b else "raw -")
    parts.append(f"ensnif {c['wall']:.2f} s" if c else "ensnif -")
    text = ", ".join(parts)
    return text + ("" if not row["problems"] else "\n   ! " + "\n   ! ".join(row["problems"]))


if __name__ == "__main__":
    sys.exit(main())
