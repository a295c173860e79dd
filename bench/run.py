"""Benchmarks (`make bench`): the same computation as (a) plaintext numpy, (b) raw MPyC with the
same secure types, (c) a full Ensnif job through coordinator and nodes; prints the ratios.

c/b is the orchestration overhead (mTLS gRPC, approval, per-job certificates, worker
process, sealed delivery); c/a is the price of computing without seeing the data.
Not a test: it prints numbers and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from coordinator.validation import sizing_for
from ensnif_mpc import jobspec, mpc_session, pki, sample_data
from ensnif_mpc.localnet import LocalConsortium
from party_node.datasets import scaled_integers
from protocols import registry

HERE = Path(__file__).resolve().parent
COLUMNS = (("orders", "basket_total", 500.0, 2), ("deliveries", "fee", 60.0, 2))


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def raw_mpyc(work: Path, cols: list[np.ndarray], protocol: str, rowlevel: bool) -> dict:
    """Three MPyC processes over TLS on loopback, as in a hand-written MPyC program."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pki.init_ca(work / "pki")
    names = ["p0", "p1", "p2"]
    for n in names:
        pki.issue(work / "pki", n, "party")
    creds = [
        mpc_session.mint("bench", i, (work / "pki" / f"{n}.key").read_bytes())
        for i, n in enumerate(names)
    ]
    ports = free_ports(3)
    peers = [
        mpc_session.PeerBinding(
            i, n, f"127.0.0.1:{ports[i]}", creds[i].cert_pem, creds[i].binding_signature, ""
        )
        for i, n in enumerate(names)
    ]
    scaled = [scaled_integers(c, 2) for c in cols]
    sizing = sizing_for([(c.size, b, 2) for c, (_, _, b, _) in zip(cols, COLUMNS, strict=True)], 2)
    procs = []
    start = time.perf_counter()
    for i in range(3):
        d = work / f"party{i}"
        mpc_session.write_config(d, i, creds[i], peers)
        for k, s in enumerate(scaled):
            np.save(d / f"party{k}.npy", s)
        (d / "sizes.json").write_text(json.dumps([s.size for s in scaled]))
        argv = [
            sys.executable,
            str(HERE / "raw_aggregate.py"),
            str(d),
            protocol,
            "1" if rowlevel else "0",
            str(sizing.bit_length),
            "--no-log",
            "-I",
            str(i),
            "--ssl",
            *[a for p in ports for a in ("-P", f"127.0.0.1:{p}")],
        ]
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=1800)[0] for p in procs]
    wall = time.perf_counter() - start
    bodies = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    return {
        "value": bodies[0]["value"] / 100,  # both columns keep 2 decimals
        "wall": wall,
        "bytes_sent": sum(b["bytes_sent"] for b in bodies),
    }


def ensnif_job(lc: LocalConsortium, protocol: str) -> dict:
    spec = jobspec.from_dict(
        {
            "protocol": protocol,
            "helpers": ["helper"],
            "inputs": [
                {"party": "grocery", "dataset": "orders", "column": "basket_total"},
                {"party": "logistics", "dataset": "deliveries", "column": "fee"},
            ],
        }
    )
    with lc.client() as c:
        start = time.perf_counter()
        job = c.submit(spec)
        final = c.wait(job.id)
        values = c.result(job.id)
        wall = time.perf_counter() - start
    return {
        "value": float(next(iter(values.values()))),
        "wall": wall,
        "bytes_sent": sum(p.progress.bytes_sent for p in final.parties),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument(
        "--rowlevel-max",
        type=int,
        default=100_000,
        help="largest size for the raw MPyC row-level variant",
    )
    args = ap.parse_args()
    lines = []
    for rows in args.rows:
        with tempfile.TemporaryDirectory(prefix="ensnif-bench-") as tmp:
            root = Path(tmp)
            lc = LocalConsortium(root / "consortium", rows=rows).setup()
            assert lc.data is not None
            cols = [
                sample_data.read_column(lc.data.orders, "basket_total"),
                sample_data.read_column(lc.data.deliveries, "fee"),
            ]
            t0 = time.perf_counter()
            lc.start()
            startup = time.perf_counter() - t0
            try:
                for protocol in ("sum", "mean"):
                    t = time.perf_counter()
                    plain = registry.get(protocol).reference([{"value": c} for c in cols], {})[
                        protocol
                    ]
                    a = time.perf_counter() - t
                    b = raw_mpyc(root / "raw", cols, protocol, rowlevel=False)
                    c = ensnif_job(lc, protocol)
                    row = {
                        "rows_per_owner": rows,
                        "protocol": protocol,
                        "plaintext_s": a,
                        "raw_mpyc_s": b["wall"],
                        "ensnif_s": c["wall"],
                        "c_over_b": c["wall"] / b["wall"],
                        "c_over_a": c["wall"] / a,
                        "ensnif_bytes": c["bytes_sent"],
                        "raw_bytes": b["bytes_sent"],
                        "ensnif_value": c["value"],
                        "plaintext_value": plain,
                        "consortium_startup_s": startup,
                    }
                    if rows <= args.rowlevel_max:
                        r = raw_mpyc(root / "rawrow", cols, protocol, rowlevel=True)
                        row["raw_rowlevel_s"] = r["wall"]
                        row["raw_rowlevel_bytes"] = r["bytes_sent"]
                    lines.append(row)
                    print(json.dumps(row), flush=True)
            finally:
                lc.stop()
    print()
    hdr = (
        f"{'rows/owner':>10} {'proto':>5} {'plain s':>9} {'raw s':>7} {'ensnif s':>9} "
        f"{'c/b':>5} {'c/a':>9} {'bytes c':>8} {'bytes b':>8} {'row-level b s':>14} "
        f"{'row-level bytes':>16}"
    )
    print(hdr)
    for r in lines:
        print(
            f"{r['rows_per_owner']:>10} {r['protocol']:>5} {r['plaintext_s']:>9.5f} "
            f"{r['raw_mpyc_s']:>7.2f} {r['ensnif_s']:>9.2f} {r['c_over_b']:>5.2f} "
            f"{r['c_over_a']:>9.0f} {r['ensnif_bytes']:>8} {r['raw_bytes']:>8} "
            f"{r.get('raw_rowlevel_s', float('nan')):>14.2f} "
            f"{r.get('raw_rowlevel_bytes', 0):>16}"
        )


if __name__ == "__main__":
    main()
