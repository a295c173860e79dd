"""Human output (rich tables) and machine output (--json) for the CLI."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any

import click
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb
from ensnif_mpc.sdk.client import state_name

# Wide enough for the result tables when output goes to a file or a CI log.
console = Console(width=None if sys.stdout.isatty() else 120)

STATE_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "rejected": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "scheduled": "cyan",
}


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, sort_keys=True, default=str))


def to_dict(msg: Message) -> dict[str, Any]:
    return MessageToDict(msg, preserving_proto_field_name=True)


def job_dict(job: pb.Job) -> dict[str, Any]:
    d = to_dict(job)
    d["state"] = state_name(job)
    spec = d.get("spec", {})
    spec["params"] = json.loads(job.spec.params_json or "{}")
    spec.pop("params_json", None)
    return d


def styled_state(job: pb.Job) -> str:
    s = state_name(job)
    return f"[{STATE_STYLE.get(s, 'white')}]{s}[/]"


def jobs_table(jobs: list[pb.Job]) -> Table:
    t = Table(title="Jobs")
    for col in ("id", "name", "protocol", "state", "parties", "created", "reason"):
        t.add_column(col)
    for j in jobs:
        parties = ", ".join(i.party for i in j.spec.inputs)
        if j.spec.helpers:
            parties += " + " + ", ".join(j.spec.helpers)
        t.add_row(
            j.id,
            j.spec.name,
            j.spec.protocol,
            styled_state(j),
            parties,
            j.created_at[:19].replace("T", " "),
            escape(j.reason),
        )
    return t


def _input_line(i: pb.JobInput) -> str:
    """``grocery: orders.basket_total`` or, with roles, ``grocery: orders (key=customer_id, …)``."""
    if not i.roles:
        return f"{i.party}: {i.dataset}.{i.column}"
    roles = {**({"value": i.column} if i.column else {}), **dict(i.roles)}
    return f"{i.party}: {i.dataset} ({', '.join(f'{r}={c}' for r, c in sorted(roles.items()))})"


def job_panel(job: pb.Job, approvals: Sequence[tuple[pb.Approval, str]] = ()) -> Table:
    t = Table(title=f"Job {job.id}", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    t.add_row("name", job.spec.name or "-")
    t.add_row("protocol", job.spec.protocol)
    t.add_row("state", styled_state(job))
    t.add_row("submitter", job.submitter)
    inputs = "\n".join(_input_line(i) for i in job.spec.inputs)
    t.add_row("inputs", inputs)
    t.add_row("helpers", ", ".join(job.spec.helpers) or "-")
    t.add_row("params", job.spec.params_json or "{}")
    if job.reason:
        t.add_row("reason", escape(f"{job.reason} [{job.reason_code}]"))
    for p in job.parties:
        t.add_row(
            f"  {p.party}",
            f"{p.state} {p.progress.phase} "
            f"{p.progress.fraction:.0%} {p.progress.bytes_sent} B sent"
            + (f" ({escape(p.progress.message)})" if p.state == "awaiting_approval" else ""),
        )
    for a, check in approvals:
        t.add_row(
            f"approval {a.party}",
            escape(
                f"{a.decision} by {a.approver} at {a.at[:19].replace('T', ' ')}"
                f"{' (' + a.reason + ')' if a.reason else ''}; signature {check}"
            ),
        )
    return t


def result_dict(job_id: str, details: Any) -> dict[str, Any]:
    """JSON-safe outputs: ``value`` as a float (null when undefined), ``exact`` as a fraction,
    and for a DP release the noise standard deviation and the 95% half-width."""
    outputs = {}
    for k, v in details.values.items():
        undefined = isinstance(v, float) and math.isnan(v)
        outputs[k] = {
            "value": None if undefined else float(v),
            "exact": "NaN" if undefined else str(v),
        }
        if k in details.noise_sd:
            outputs[k]["noise_sd"] = details.noise_sd[k]
            outputs[k]["ci95"] = details.interval(k)
    return {"job_id": job_id, "outputs": outputs}
