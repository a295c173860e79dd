"""``ensnif coordinator serve`` and ``ensnif party serve``: the two daemons."""

from __future__ import annotations

from pathlib import Path

import click

from ensnif_mpc.config import CoordinatorConfig, PartyConfig


@click.group()
def coordinator() -> None:
    """The consortium coordinator (registry, catalog, scheduling; never sees data)."""


@coordinator.command("serve")
@click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False, exists=True)
)
@click.option("--listen", help="host:port to listen on (overrides the file).")
def coordinator_serve(config_path: str, listen: str | None) -> None:
    """Run the coordinator until SIGTERM/Ctrl-C."""
    from coordinator import server

    server.serve(CoordinatorConfig.load(Path(config_path), {"listen": listen}))


@click.group()
def party() -> None:
    """A member's party node (datasets, policy, MPC workers)."""


@party.command("serve")
@click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False, exists=True)
)
@click.option("--listen", help="host:port to listen on (overrides the file).")
def party_serve(config_path: str, listen: str | None) -> None:
    """Run the party node until SIGTERM/Ctrl-C."""
    from party_node import server

    def load() -> PartyConfig:
        return PartyConfig.load(Path(config_path), {"listen": listen})

    server.serve(load(), load)
