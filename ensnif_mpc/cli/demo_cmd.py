"""``ensnif demo``: a local consortium runs the canonical jobs end to end.

Everything is real: a consortium CA, a coordinator and three party nodes as
separate processes on free loopback ports, mTLS everywhere, MPyC workers, sealed
results opened with the analyst's key. The table compares each answer with the
same computation done in the clear on the generated data.
"""

from __future__ import annotations

import math
import shutil
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click
import numpy as np
from rich.table import Table

from ensnif_mpc.cli.job_cmd import follow
from ensnif_mpc.cli.render import console, emit_json
from ensnif_mpc.demo import sample_data
from ensnif_mpc.demo.localnet import LocalConsortium
from ensnif_mpc.errors import EnsnifError
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import state_name
from protocols import registry

DEMO_JOBS = (
    "revenue-sum.toml",
    "ticket-mean.toml",
    "big-tickets-count.toml",
    "shared-customers.toml",
    "shared-basket.toml",
    "minutes-by-zip.toml",
    "ticket-mean-dp.toml",
)


def plaintext_answer(lc: LocalConsortium, spec: jobspec.JobSpec) -> dict[str, float]:
    """The same question answered in the clear, from the generated CSVs."""
    assert lc.data is not None
    files = {"orders": lc.data.orders, "deliveries": lc.data.deliveries}
    tables = [sample_data.read_table(files[i.dataset], i.columns) for i in spec.inputs]
    return registry.get(spec.protocol).reference(tables, spec.params)


def remaining_budgets(client: Any, wait_s: float = 5.0) -> list[dict[str, Any]]:
    """The owners' remaining ρ as the catalog mirrors it (nodes republish after a charge)."""
    deadline = time.monotonic() + wait_s
    while True:
        out = [
            {
                "dataset": f"{d.party}/{d.name}",
                "budget_rho": d.policy.budget_rho,
                "remaining_rho": d.policy.remaining_rho,
            }
            for d in client.datasets()
        ]
        if all(b["remaining_rho"] < b["budget_rho"] for b in out) or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def answer_ok(r: dict[str, Any]) -> bool:
    """Exact answers equal the plaintext; a DP answer lies within 3 CI half-widths (~5.9σ)."""
    if r["ci95"]:
        return bool(abs(r["mpc"] - r["plaintext"]) <= 3 * r["ci95"])
    return bool(np.isclose(r["mpc"], r["plaintext"], rtol=1e-6, atol=1e-6, equal_nan=True))


@click.command()
@click.option(
    "--dir",
    "directory",
    default=".demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the consortium lives (wiped first).",
)
@click.option("--rows", default=3000, show_default=True, help="Rows per data owner.")
@click.option("--json", "as_json", is_flag=True)
def demo(directory: str, rows: int, as_json: bool) -> None:
    """Run a local consortium (coordinator + grocery, logistics, helper) and its jobs."""
    root = Path(directory).resolve()
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.monotonic()
    lc = LocalConsortium(root, rows=rows)
    rows_out: list[dict[str, Any]] = []
    budgets: list[dict[str, Any]] = []
    # Ctrl-C reaches the daemons too (same process group); they stop and our calls fail
    # with UNAVAILABLE before Python raises KeyboardInterrupt here. Report the cause.
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        interrupted.set()
        signal.default_int_handler(signum, frame)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        if not as_json:
            console.print(f"[bold]Ensnif demo[/]: consortium in {root} ({rows} rows per owner)")
        lc.setup()
        lc.start()
        if not as_json:
            console.print("coordinator and 3 party nodes are up (mTLS, consortium CA)")
        with lc.client() as client:
            for name in DEMO_JOBS:
                spec = jobspec.load(root / "jobs" / name)
                started = time.monotonic()
                submitted = client.submit(spec)
                if not as_json:
                    console.print(f"\n[bold]{spec.name}[/] ({spec.protocol}) → job {submitted.id}")
                final = follow(client, submitted.id, quiet=as_json)
                elapsed = time.monotonic() - started
                expected = plaintext_answer(lc, spec)
                if state_name(final) != "succeeded":
                    raise click.ClickException(
                        f"job {final.id} {state_name(final)}: {final.reason}"
                    )
                details = client.result_details(final.id)
                got = {k: float(v) for k, v in details.values.items()}
                sent = sum(p.progress.bytes_sent for p in final.parties)
                for out, value in got.items():
                    if out.startswith(("sum[", "count[")) or (details.noise_sd and out != "mean"):
                        continue  # per-group sums and counts, a DP mean's parts: show means
                    rows_out.append(
                        {
                            "job": final.id,
                            "question": spec.name if len(got) == 1 else f"{spec.name}: {out}",
                            "protocol": spec.protocol,
                            "output": out,
                            "mpc": value,
                            "plaintext": expected.get(out, math.nan),
                            "ci95": details.interval(out),
                            "seconds": round(elapsed, 2),
                            "bytes_sent": sent,
                        }
                    )
            budgets = remaining_budgets(client)
    except EnsnifError:
        if interrupted.is_set():
            raise KeyboardInterrupt from None
        raise
    finally:
        killed = lc.stop()
        signal.signal(signal.SIGINT, previous)
    total = time.monotonic() - t0
    if as_json:
        emit_json(
            {"results": rows_out, "budgets": budgets, "seconds": round(total, 2), "killed": killed}
        )
        return
    table = Table(title="Joint answers (MPC) next to the plaintext computation")
    for col in (
        "question",
        "protocol",
        "MPC result",
        "± 95% (DP)",
        "plaintext",
        "|diff|",
        "time",
        "bytes",
    ):
        table.add_column(col, justify="right" if col not in ("question", "protocol") else "left")
    for r in rows_out:
        table.add_row(
            r["question"],
            r["protocol"],
            f"{r['mpc']:,.4f}",
            f"{r['ci95']:,.4f}" if r["ci95"] else "exact",
            f"{r['plaintext']:,.4f}",
            f"{abs(r['mpc'] - r['plaintext']):.2e}",
            f"{r['seconds']:.1f}s",
            f"{r['bytes_sent']:,}",
        )
    console.print()
    console.print(table)
    spent = Table(title="Privacy budgets (zCDP ρ), as each owner's node reports them")
    for col in ("dataset", "budget", "remaining"):
        spent.add_column(col, justify="left" if col == "dataset" else "right")
    for b in budgets:
        spent.add_row(b["dataset"], f"{b['budget_rho']:g}", f"{b['remaining_rho']:g}")
    console.print(spent)
    ok = all(answer_ok(r) for r in rows_out)
    console.print(
        f"all answers match the plaintext: {'[green]yes[/]' if ok else '[red]NO[/]'}; "
        f"demo took {total:.1f}s; all processes stopped"
    )
    if not ok:
        raise click.ClickException("an MPC answer differs from the plaintext answer")
