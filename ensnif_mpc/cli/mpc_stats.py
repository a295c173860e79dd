"""The MPC statistics of one job, merged over its parties, for ``ensnif job status``.

Read from what the coordinator stores of each node's progress: the MPC bytes each party's
worker reports having sent. Wall time is the job's own (submission to its final state, or
to now while it runs). The workers measure their CPU time, but the nodes do not relay it
to the coordinator yet, and no one counts rounds: neither is shown.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.table import Table

from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb
from ensnif_mpc.sdk.client import is_final


def _when(text: str) -> dt.datetime | None:
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def mpc_stats(job: pb.Job, now: dt.datetime | None = None) -> dict[str, Any]:
    """``{"bytes_sent_total", "bytes_sent_by_party", "messages_by_party", "rounds_by_party",
    "cpu_seconds_by_party", "wall_seconds", "ended"}`` of ``job`` (``wall_seconds`` None when
    the coordinator sent no times). Messages and rounds are MPyC's, counted by each worker
    (protocols/transport_stats.py)."""
    by_party = {p.party: int(p.progress.bytes_sent) for p in job.parties}
    start, end = _when(job.created_at), _when(job.updated_at)
    if not is_final(job):
        end = now or dt.datetime.now(dt.UTC)
    wall = round((end - start).total_seconds(), 3) if start and end else None
    return {
        "bytes_sent_total": sum(by_party.values()),
        "bytes_sent_by_party": by_party,
        "messages_by_party": {p.party: int(p.progress.messages_sent) for p in job.parties},
        "rounds_by_party": {p.party: int(p.progress.rounds) for p in job.parties},
        "cpu_seconds_by_party": {
            p.party: round(float(p.progress.cpu_seconds), 3) for p in job.parties
        },
        "wall_seconds": wall,
        "ended": is_final(job),
    }


def mpc_stats_table(stats: dict[str, Any]) -> Table:
    """Per party: bytes sent with its share of the total, MPyC messages, rounds and worker
    CPU seconds; then the totals and the wall time."""
    t = Table(title="MPC", show_header=True)
    t.add_column("party")
    t.add_column("bytes sent", justify="right")
    t.add_column("share", justify="right")
    t.add_column("messages", justify="right")
    t.add_column("rounds", justify="right")
    t.add_column("CPU s", justify="right")
    total = int(stats["bytes_sent_total"])
    messages = stats.get("messages_by_party", {})
    rounds = stats.get("rounds_by_party", {})
    cpu = stats.get("cpu_seconds_by_party", {})
    for party, n in stats["bytes_sent_by_party"].items():
        t.add_row(
            party,
            f"{n:,}",
            f"{n / total:.0%}" if total else "-",
            f"{messages.get(party, 0):,}",
            f"{rounds.get(party, 0):,}",
            f"{cpu.get(party, 0.0):.2f}",
        )
    t.add_row(
        "all",
        f"{total:,}",
        "",
        f"{sum(messages.values()):,}",
        f"{max(rounds.values(), default=0):,} (most)",
        f"{sum(cpu.values()):.2f}",
        style="bold",
    )
    wall = stats["wall_seconds"]
    if wall is not None:
        until = "end" if stats["ended"] else "now"
        t.caption = f"wall time {wall:.1f} s (submission to {until})"
    return t
