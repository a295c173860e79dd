"""Printing the benchmark: the summary table (rich, or markdown for docs/performance.md) and,
for the private joins, where the time goes."""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.table import Table

COLUMNS = (
    "family",
    "protocol",
    "rows/owner",
    "plain s",
    "raw MPyC s",
    "Ensnif s",
    "c/b",
    "c/a",
    "CPU raw s",
    "CPU Ensnif s",
    "sent/party (g/l/h)",
    "B/row",
    "ok",
)
# Worker phases in the order a job goes through them (protocols/worker.py and the programs).
PHASES = (
    "starting",
    "connecting",
    "preparing",
    "computing",
    "shuffling",
    "pseudonyms",
    "aggregating",
    "delivering",
    "done",
)

HINTS = {
    "starting": "worker start, imports",
    "connecting": "MPyC connects to peers",
    "preparing": "open the data source",
    "computing": "read, pre-aggregate, secret-share",
    "shuffling": "resharing shuffle",
    "pseudonyms": "PRF: reciprocal, EC points",
    "aggregating": "match, select, aggregate",
    "delivering": "finish the lazy MPC, reshare outputs, seal",
}


def human(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def cells(r: dict[str, Any]) -> list[str]:
    b, c = r.get("raw"), r.get("ensnif")
    rows = r["rows_per_owner"]
    a_s = r["plaintext_s"]
    out = [r["family"], r["protocol"], f"{rows:,}", f"{a_s:.2f}"]
    label = f" ({r['raw_label']})" if b and r.get("raw_label") else ""
    out.append(
        f"{b['wall']:.2f}{label}" if b else ("skipped" if r.get("raw_skipped") else "failed")
    )
    out.append(f"{c['wall']:.2f}" if c else "failed")
    out.append(f"{c['wall'] / b['wall']:.2f}" if b and c else "-")
    out.append(f"{c['wall'] / a_s:.0f}" if c else "-")
    out.append(f"{b['cpu']:.1f}" if b else "-")
    out.append(f"{c['worker_cpu']:.1f} + {c['service_cpu']:.1f}" if c else "-")
    if c:
        out.append("/".join(human(x) for x in c["bytes_sent"]))
        out.append(f"{sum(c['bytes_sent']) / (2 * rows):.3g}")
    else:
        out += ["-", "-"]
    out.append("✗" if r["problems"] else "✓")
    return out


def print_table(results: list[dict[str, Any]], markdown: bool = False) -> None:
    console = Console(width=200)
    runs = max((len(r.get("ensnif_walls", [])) for r in results), default=0)
    table = Table(title=f"Ensnif benchmark (3 parties on loopback; best of {runs} runs)")
    for i, name in enumerate(COLUMNS):
        table.add_column(name, justify="left" if i < 2 else "right")
    for r in results:
        table.add_row(*cells(r))
    console.print(table)
    console.print(
        "c/b = Ensnif / raw MPyC (orchestration overhead); c/a = Ensnif / plaintext pandas "
        "(read included). CPU Ensnif = the three workers + coordinator and nodes during the "
        "job. sent/party: bytes each party sent (grocery/logistics/helper, MPyC's count); "
        "B/row: all parties' bytes per input row (both owners' rows). A join's raw MPyC "
        "baseline runs the route its Ensnif job takes: (tagged route) bench/raw_join_fast.py, "
        "(PRF route) bench/raw_join.py."
    )
    loads = [r[k] for r in results for k in ("load_before", "load_after") if k in r]
    if loads:
        console.print(
            f"Load average (1 min) around the cases: {min(loads):.1f} to {max(loads):.1f} on "
            f"{os.cpu_count()} cores (other work on the machine makes the times noisy)."
        )
    for r in results:
        for p in r["problems"]:
            console.print(f"[red]✗ {r['protocol']} {r['rows_per_owner']:,}: {p}[/red]")
    if markdown:
        print()
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "|".join(" --- " for _ in COLUMNS) + "|")
        for r in results:
            print("| " + " | ".join(cells(r)) + " |")


def raw_breakdown(b: dict[str, Any]) -> list[tuple[str, float]]:
    """Per phase, the time from the last party finishing the previous phase to the last party
    finishing this one (so the phases add up to the wall time); then launch and exit."""
    names: list[str] = []
    for p in b["phases"]:
        names += [n for n in p if n not in names]
    ends = [0.0] * len(b["phases"])
    out, last = [], 0.0
    for n in names:
        ends = [t + p.get(n, 0.0) for t, p in zip(ends, b["phases"], strict=True)]
        out.append((n, max(ends) - last))
        last = max(ends)
    out.append(("launch, imports, exit", b["wall"] - last))
    return out


def ensnif_breakdown(c: dict[str, Any]) -> list[tuple[str, float]]:
    """From the polled worker phases: per phase, from the moment the last party entered it
    to the moment the last party entered the next one (so the phases add up to the wall
    time); before them the time until every worker reports, after them the delivery."""
    seen = c["phases"]
    boundaries: list[tuple[str, float]] = []
    for phase in PHASES:
        times = [s[phase] for s in seen.values() if phase in s]
        if times:
            at = max([max(times)] + [t for _, t in boundaries[-1:]])
            boundaries.append((phase, at))
    if not boundaries:
        return [("job (no worker phase seen)", c["wall"])]
    out = [("submit, approve, schedule, spawn workers", boundaries[0][1])]
    for (phase, at), (_, later) in zip(boundaries, boundaries[1:], strict=False):
        out.append((f"{phase}: {HINTS[phase]}", later - at))
    out.append(("last worker done -> analyst has the result", c["wall"] - boundaries[-1][1]))
    return out


def _memory(run: dict[str, Any], what: str) -> str:
    peak = max(run.get("max_rss_mb") or [0])
    return f"; peak memory of a {what} {peak:.0f} MB" if peak else ""


def print_breakdowns(results: list[dict[str, Any]]) -> None:
    for r in results:
        if "raw" not in r or "ensnif" not in r:
            continue
        print()
        print(f"Where the time goes: {r['protocol']} at {r['rows_per_owner']:,} rows per owner")
        keys = {k: v for k, v in r["raw"]["outputs"].items() if k.startswith(("distinct", "rows_"))}
        if keys:
            print(
                "  sizes after per-key pre-aggregation: "
                + ", ".join(f"{k} {v:,}" for k, v in keys.items())
            )
        print(
            f"  raw MPyC ({r['raw']['wall']:.1f} s wall, until the slowest party ends each phase"
            f"{_memory(r['raw'], 'party')}):"
        )
        for name, s in raw_breakdown(r["raw"]):
            print(f"    {name:<56} {s:7.2f} s")
        print(
            f"  Ensnif ({r['ensnif']['wall']:.1f} s wall, the slowest worker's phases, polled "
            f"every 50 ms{_memory(r['ensnif'], 'worker')}):"
        )
        for name, s in ensnif_breakdown(r["ensnif"]):
            print(f"    {name:<56} {s:7.2f} s")
