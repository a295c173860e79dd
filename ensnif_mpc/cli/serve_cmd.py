"""``ensnif coordinator serve`` and ``ensnif party serve``: the two daemons."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ensnif_mpc import logs
from ensnif_mpc.config import CoordinatorConfig, PartyConfig

F = TypeVar("F", bound=Callable[..., Any])


def _set_log_format(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:  # the handlers main.py set up switch format; the node's workers inherit it
        logs.set_format(value)


def daemon_options(fn: F) -> F:
    """The options both daemons take: config file, listen address, metrics, log format."""
    for option in reversed(
        [
            click.option(
                "--config",
                "config_path",
                required=True,
                type=click.Path(dir_okay=False, exists=True),
            ),
            click.option("--listen", help="host:port to listen on (overrides the file)."),
            click.option(
                "--metrics-listen",
                help="host:port (or a port on 127.0.0.1) for Prometheus /metrics "
                "(overrides metrics_listen in the file; off unless set).",
            ),
            click.option(
                "--log-format",
                type=click.Choice(logs.FORMATS, case_sensitive=False),
                envvar=logs.ENV_FORMAT,
                callback=_set_log_format,
                expose_value=False,
                is_eager=True,
                help="text (default) or json: one JSON object per line, with the job id.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


@click.group()
def coordinator() -> None:
    """The consortium coordinator (registry, catalog, scheduling; never sees data)."""


@coordinator.command("serve")
@daemon_options
def coordinator_serve(config_path: str, listen: str | None, metrics_listen: str | None) -> None:
    """Run the coordinator until SIGTERM/Ctrl-C."""
    from coordinator import server

    overrides = {"listen": listen, "metrics_listen": metrics_listen}
    server.serve(CoordinatorConfig.load(Path(config_path), overrides))


@click.group()
def party() -> None:
    """A member's party node (datasets, policy, MPC workers)."""


@party.command("serve")
@daemon_options
def party_serve(config_path: str, listen: str | None, metrics_listen: str | None) -> None:
    """Run the party node until SIGTERM/Ctrl-C."""
    from party_node import server

    def load() -> PartyConfig:
        overrides = {"listen": listen, "metrics_listen": metrics_listen}
        return PartyConfig.load(Path(config_path), overrides)

    server.serve(load(), load)
