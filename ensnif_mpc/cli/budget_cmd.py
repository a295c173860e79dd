"""`ensnif budget show`: a data owner's privacy budgets, read from its own node's ledger.

Runs on the owner's machine against the node's state (the authority); the
coordinator's catalog only mirrors the remaining ρ (`ensnif datasets list`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ensnif_mpc.cli.render import console, emit_json
from ensnif_mpc.config import PartyConfig


@click.group()
def budget() -> None:
    """Privacy budgets of this node's datasets (run beside the node)."""


@budget.command("show")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The node's party.toml.",
)
@click.option("--json", "as_json", is_flag=True)
def show(config_path: str, as_json: bool) -> None:
    """Budget, spent, reserved and remaining ρ (zCDP) per dataset, from the node's ledger,
    and the δ its jobs added up against its max_delta."""
    from fractions import Fraction

    from ensnif_mpc.db import make_engine
    from ensnif_mpc.errors import InvalidConfig
    from party_node.ledger import Ledger

    cfg = PartyConfig.load(Path(config_path))
    db = cfg.state_dir / "node.db"
    if not db.is_file():
        raise InvalidConfig(
            f"no node state at {db}: is this the config of a node that has run "
            "(its state_dir)? Nothing was created."
        )
    engine = make_engine(f"sqlite:///{db}")
    try:
        lines = Ledger(
            engine,
            {d.name: Fraction(d.privacy.budget_rho) for d in cfg.datasets},
            {d.name: Fraction(d.privacy.max_delta) for d in cfg.datasets},
        ).show()
    finally:
        engine.dispose()
    rows: list[dict[str, Any]] = [
        {
            "dataset": line.dataset,
            "budget_rho": float(line.cap),
            "spent_rho": float(line.spent),
            "reserved_rho": float(line.reserved),
            "remaining_rho": float(line.remaining),
            "max_delta": float(line.delta_cap),
            "spent_delta": float(line.delta_spent),
            "reserved_delta": float(line.delta_reserved),
            "exact": {"spent": str(line.spent), "reserved": str(line.reserved)},
        }
        for line in lines
    ]
    if as_json:
        emit_json({"party": cfg.name, "budgets": rows})
        return
    t = Table(title=f"Privacy budgets of {cfg.name} (zCDP ρ)")
    for col in ("dataset", "budget", "spent", "reserved", "remaining", "δ spent / max"):
        t.add_column(col, justify="left" if col == "dataset" else "right")
    for r in rows:
        t.add_row(
            r["dataset"],
            f"{r['budget_rho']:g}",
            f"{r['spent_rho']:g}",
            f"{r['reserved_rho']:g}",
            f"{r['remaining_rho']:g}",
            f"{r['spent_delta'] + r['reserved_delta']:.3g} / {r['max_delta']:.3g}",
        )
    console.print(t)
