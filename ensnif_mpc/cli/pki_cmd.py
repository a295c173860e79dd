"""``ensnif pki``: the consortium CA and member certificates."""

from __future__ import annotations

from pathlib import Path

import click

from ensnif_mpc import pki as pki_lib
from ensnif_mpc.cli.render import emit_json


@click.group("pki")
def pki() -> None:
    """Consortium PKI: a CA and certificates for coordinator, nodes and analysts."""


@pki.command("init")
@click.option(
    "--dir", "directory", default="pki", show_default=True, type=click.Path(file_okay=False)
)
@click.option("--name", default="Ensnif consortium CA", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def init(directory: str, name: str, as_json: bool) -> None:
    """Create the consortium CA (ca.crt, ca.key). Keep ca.key offline."""
    path = pki_lib.init_ca(Path(directory), name)
    if as_json:
        emit_json({"ca": str(path)})
    else:
        click.echo(
            f"CA certificate: {path}\n"
            f"CA key:         {Path(directory) / 'ca.key'} (keep it offline)"
        )


@pki.command("issue")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["coordinator", "party", "analyst"]))
@click.option(
    "--dir", "directory", default="pki", show_default=True, type=click.Path(file_okay=False)
)
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Where to write NAME.crt/key."
)
@click.option(
    "--host", "hosts", multiple=True, help="Extra DNS name or IP for a server (repeatable)."
)
@click.option("--days", default=825, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True)
def issue(
    name: str,
    role: str,
    directory: str,
    out_dir: str | None,
    hosts: tuple[str, ...],
    days: int,
    as_json: bool,
) -> None:
    """Issue NAME.crt/NAME.key signed by the CA; NAME becomes the member's identity."""
    files = pki_lib.issue(
        Path(directory),
        name,
        role,
        hosts=("localhost", "127.0.0.1", *hosts),
        days=days,
        out_dir=Path(out_dir) if out_dir else None,
    )
    if as_json:
        emit_json(
            {
                "name": name,
                "role": role,
                "cert": str(files.cert),
                "key": str(files.key),
                "ca": str(files.ca),
            }
        )
    else:
        click.echo(f"{role} {name}: {files.cert}, {files.key}")
