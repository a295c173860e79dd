"""``ensnif protocols|parties|datasets``: what the consortium offers."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from ensnif_mpc.cli.context import client_from
from ensnif_mpc.cli.render import COLUMN_TYPES, console, dataset_dict, emit_json, to_dict

_json = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group()
def protocols() -> None:
    """The protocol registry."""


_remote = click.option(
    "--remote",
    is_flag=True,
    help="Ask the coordinator (what it runs) instead of this installation's registry.",
)


def _local(name: str | None = None) -> list[Any]:
    """The registry of this installation, as the coordinator would describe it: no
    coordinator, profile or network needed (the registry is code, the same everywhere)."""
    from coordinator.servicer import protocol_to_pb
    from protocols import registry

    if name is not None:
        return [protocol_to_pb(registry.get(name))]
    return [protocol_to_pb(d) for d in registry.catalog().values()]


@protocols.command("list")
@_json
@_remote
@click.pass_context
def protocols_list(ctx: click.Context, as_json: bool, remote: bool) -> None:
    """Name, inputs, parameters, outputs and leakage of every protocol."""
    if remote:
        with client_from(ctx) as c:
            items = c.protocols()
    else:
        items = _local()
    if as_json:
        emit_json([to_dict(p) for p in items])
        return
    t = Table(title="Protocols", show_lines=True)
    for col in ("name", "family", "inputs", "parameters", "outputs", "leakage"):
        t.add_column(col, overflow="fold")
    for p in items:
        params = (
            "\n".join(
                f"{x.name} ({x.type}{', required' if x.required else ''})" for x in p.parameters
            )
            or "-"
        )
        t.add_row(p.name, p.family, p.inputs, params, ", ".join(p.outputs), p.leakage)
    console.print(t)


@protocols.command("describe")
@click.argument("name")
@_json
@_remote
@click.pass_context
def protocols_describe(ctx: click.Context, name: str, as_json: bool, remote: bool) -> None:
    """Everything about one protocol."""
    if remote:
        with client_from(ctx) as c:
            p = c.describe(name)
    else:
        (p,) = _local(name)
    if as_json:
        emit_json(to_dict(p))
        return
    console.print(f"[bold]{p.name}[/] ({p.family}): {p.summary}")
    console.print(f"inputs:  {p.inputs}")
    for n, position in enumerate(p.input_roles):
        last = n == len(p.input_roles) - 1 and p.max_data_owners != len(p.input_roles)
        where = f"inputs[{n}{'+' if last else ''}]"
        for r in position.roles:
            console.print(
                f"  {where}.{'column' if r.name == 'value' else r.name}: "
                + (_many_text(r) if r.many else "")
                + f"{' or '.join(r.column_types)}{'' if r.required else ' (optional)'}"
                f" — {r.description}"
            )
    for x in p.parameters:
        default = json.loads(x.default_json) if x.default_json else None
        console.print(
            f"param:   {x.name} ({x.type}) {x.description}"
            + (f" [default {default}]" if default is not None else "")
        )
    console.print(f"outputs: {', '.join(p.outputs)}")
    console.print(
        "release: "
        + (
            "DP (distributed discrete Gaussian, or discrete Laplace with [privacy] epsilon) "
            "or exact where every owner allows it"
            if p.dp_release
            else "exact only, where every owner's policy allows it (no DP release yet)"
        )
    )
    console.print(f"leakage: {p.leakage}")


def _many_text(r: Any) -> str:
    """``a list of 1 to 20 `` for a role that takes several columns."""
    count = (
        f"{r.min_columns}"
        if r.min_columns == r.max_columns
        else f"{r.min_columns} to {r.max_columns}"
    )
    return f"a list of {count} "


def _column_text(c: Any) -> str:
    kind = COLUMN_TYPES.get(c.type, "?")
    return f"{c.name}:{kind}" if kind == "string" else f"{c.name}:{kind}[{c.lower:g},{c.upper:g}]"


@click.group()
def parties() -> None:
    """Registered party nodes."""


@parties.command("list")
@_json
@click.pass_context
def parties_list(ctx: click.Context, as_json: bool) -> None:
    with client_from(ctx) as c:
        items = c.parties()
    if as_json:
        emit_json([{k: v for k, v in to_dict(p).items() if k != "certificate_pem"} for p in items])
        return
    t = Table(title="Parties")
    for col in ("name", "role", "address", "last seen"):
        t.add_column(col)
    for p in items:
        t.add_row(p.name, p.role, p.address, p.last_seen[:19].replace("T", " "))
    console.print(t)


@click.group()
def datasets() -> None:
    """The dataset catalog (schemas, bounds, row counts; never rows)."""


@datasets.command("list")
@click.option("--party", default="")
@_json
@click.pass_context
def datasets_list(ctx: click.Context, party: str, as_json: bool) -> None:
    with client_from(ctx) as c:
        items = c.datasets(party)
    if as_json:
        emit_json([dataset_dict(d) for d in items])
        return
    t = Table(title="Datasets")
    for col in ("party", "dataset", "rows", "columns", "ρ remaining / budget"):
        t.add_column(col)
    for d in items:
        cols = ", ".join(_column_text(c) for c in d.columns)
        p = d.policy
        budget = f"{p.remaining_rho:g} / {p.budget_rho:g}" if p.remaining_rho >= 0 else "-"
        # An outsourced dataset: its owner runs no node; the helper holding it serves it.
        party = f"{d.party} (outsourced at {d.host})" if d.host else d.party
        t.add_row(party, d.name, str(d.row_count), cols, budget)
    console.print(t)
