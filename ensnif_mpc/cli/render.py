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
from ensnif_mpc.sdk.intervals import NONE
from ensnif_mpc.sdk.result import Result, format_value

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
    if job.spec.program_json:  # a member program: its hash and file names, not its bytes
        spec["program"] = _program_summary(job.spec.program_json)
    spec.pop("program_json", None)
    return d


def _program_summary(program_json: str) -> dict[str, Any]:
    raw = json.loads(program_json)
    return {"hash": raw.get("hash", ""), "files": sorted(raw.get("files", {}))}


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
    if not i.roles and not i.column_lists:
        return f"{i.party}: {i.dataset}.{i.column}"
    roles = {
        **({"value": i.column} if i.column else {}),
        **dict(i.roles),
        **{r: "[" + ", ".join(c.columns) + "]" for r, c in i.column_lists.items()},
    }
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
    if job.spec.program_json:
        program = _program_summary(job.spec.program_json)
        t.add_row("program", f"{program['hash']} ({', '.join(program['files'])})")
    if job.reason:
        t.add_row("reason", escape(f"{job.reason} [{job.reason_code}]"))
    for p in job.parties:
        t.add_row(
            f"  {p.party}",
            f"{p.state} {p.progress.phase} "
            f"{p.progress.fraction:.0%} {p.progress.bytes_sent} B sent, "
            f"{p.progress.rounds} rounds"
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


def result_dict(job_id: str, details: Result) -> dict[str, Any]:
    """JSON-safe outputs: ``value`` as a float (null when undefined; post-processed to the
    declared bounds), ``exact`` as a fraction, and for a DP release the noise standard
    deviation, the 95% half-width ``ci95`` and the interval's ends and method."""
    outputs: dict[str, dict[str, Any]] = {}
    for k, v in details.exact_values.items():
        undefined = isinstance(v, float) and math.isnan(v)
        outputs[k] = {
            "value": None if undefined else float(v),
            "exact": "NaN" if undefined else str(v),
        }
        ci = details.ci(k)
        outputs[k]["interval_method"] = ci.method
        if k in details.withheld:  # the owners' minimum cohort suppressed it inside MPC
            outputs[k]["withheld"] = True
        if details.dp:
            outputs[k]["noise_sd"] = _number(details.noise_sd.get(k, 0.0))
            outputs[k]["ci95"] = _number(details.interval(k))
            outputs[k]["ci95_lower"] = _number(ci.lower)
            outputs[k]["ci95_upper"] = _number(ci.upper)
    out: dict[str, Any] = {"job_id": job_id, "outputs": outputs}
    out["release"] = "dp" if details.dp else "exact"
    if details.dp:
        out["mechanism"] = details.mechanism
    if details.cached_from:
        out["cached_from"] = details.cached_from
    return out


def _number(x: float) -> float | None:
    return None if math.isnan(x) else x


def cached_note(details: Result) -> str | None:
    """One line saying an answer is a cached one, or None."""
    if not details.cached_from:
        return None
    return (
        f"cached answer: the result job {details.cached_from} computed for the same question "
        "and release, served again at no privacy cost (--fresh computes anew)"
    )


def interval_text(details: Result, name: str) -> str:
    ci = details.ci(name)
    if ci.method == NONE:
        return "exact release"
    if name in details.withheld:
        return "-"
    d = details.decimals.get(name)
    return escape(f"[{format_value(ci.lower, d)}, {format_value(ci.upper, d)}]")


def result_table(details: Result) -> Table:
    """One row per output: label, value at its declared decimals, 95% interval, method."""
    t = Table(title="Result" + (" (cached)" if details.cached_from else ""))
    rows = details.rows()
    grouped = any(r[details.group_column] is not None for r in rows)
    t.add_column("output")
    if grouped:
        t.add_column(details.group_column)
    for col in ("value", "95% interval", "noise sd", "method"):
        t.add_column(col, justify="right" if col != "method" else "left")
    for name, r in zip(details.exact_values, rows, strict=True):
        d = details.decimals.get(name)
        cells = [escape(r["output"])]
        if grouped:
            cells.append(escape(r[details.group_column] or ""))
        sd = r["noise_sd"]
        cells += [
            format_value(r["value"], d, r["withheld"]),
            interval_text(details, name),
            "-" if not details.dp or r["withheld"] else f"{sd:.4g}",
            r["interval_method"],
        ]
        t.add_row(*cells)
    return t


def result_lines(details: Result) -> list[str]:
    """``mean = 43.29  95% [41.87, 44.71] (simulation; noise sd 0.72)``, one per output."""
    out = []
    for name, v in details.values.items():
        d = details.decimals.get(name)
        line = f"[bold]{escape(name)}[/] = {format_value(v, d, name in details.withheld)}"
        if name in details.withheld:
            line += "  (below the owners' minimum cohort)"
        elif details.dp:
            ci = details.ci(name)
            line += (
                f"  95% {interval_text(details, name)} "
                f"({ci.method}; DP noise sd {details.noise_sd.get(name, 0.0):.4g})"
            )
        out.append(line)
    return out


COLUMN_TYPES = {
    pb.COLUMN_TYPE_INT: "int",
    pb.COLUMN_TYPE_FLOAT: "float",
    pb.COLUMN_TYPE_STRING: "string",
}


def dataset_dict(d: pb.Dataset) -> dict[str, Any]:
    """A catalog entry as plain JSON: type names, numbers as numbers, every field present
    (a zero bound is 0, not missing)."""
    p = d.policy
    return {
        "party": d.party,
        "name": d.name,
        "description": d.description,
        "row_count": int(d.row_count),
        # Outsourced (docs/homomorphic.md): held encrypted by the node ``host``.
        "outsourced": bool(d.host),
        "host": d.host,
        "outsourced_sha256": d.outsourced_sha256,
        "columns": [
            {
                "name": c.name,
                "type": COLUMN_TYPES.get(c.type, "unspecified"),
                **(
                    {}
                    if c.type == pb.COLUMN_TYPE_STRING
                    else {"lower": c.lower, "upper": c.upper, "decimals": int(c.decimals)}
                ),
            }
            for c in d.columns
        ],
        "policy": {
            "budget_rho": p.budget_rho,
            "default_rho": p.default_rho,
            "max_rho": p.max_rho,
            "remaining_rho": None if p.remaining_rho < 0 else p.remaining_rho,
            "exact_protocols": list(p.exact_protocols),
            "rows_per_person": int(p.rows_per_person),
        },
    }


def job_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any] | None:
    """What changed from one JSON job to the next: its id and state always, the top-level
    fields that differ, and of ``parties`` only the entries that changed (None: nothing)."""
    if before is None:
        return after
    out: dict[str, Any] = {}
    for key, value in after.items():
        if key == "parties":
            old = {p.get("party"): p for p in before.get("parties", [])}
            changed = [p for p in value if old.get(p.get("party")) != p]
            if changed:
                out["parties"] = changed
        elif before.get(key) != value:
            out[key] = value
    for key in before.keys() - after.keys():
        out[key] = None
    if not out:
        return None
    return {"id": after.get("id"), "state": after.get("state"), **out}
