"""`ensnif job pending|approve|reject`: a data owner's administrator decides on waiting jobs.

Runs beside the node, against its own config, state and key (like `ensnif budget
show`): the decision is the node's, signed with the node's key, and the running
node applies it. Nothing here talks to the coordinator.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from ensnif_mpc.cli.render import console, emit_json
from ensnif_mpc.config import PartyConfig
from ensnif_mpc.errors import InvalidConfig

_config = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The node's party.toml (run beside the node).",
)


def _node_state(config_path: str) -> tuple[PartyConfig, Any]:
    from ensnif_mpc.audit import chain as audit
    from party_node.store import NodeStore

    cfg = PartyConfig.load(Path(config_path))
    db = cfg.state_dir / "node.db"
    if not db.is_file():
        raise InvalidConfig(
            f"no node state at {db}: is this the config of a node that has run "
            "(its state_dir)? Nothing was created."
        )
    # The store signs its audit anchor with the node's key, as the running node does, so
    # the records this command adds keep `ensnif audit verify` green.
    return cfg, NodeStore(db, signer=audit.Signer.from_key_file(cfg.tls.key))


@click.command("pending")
@_config
@click.option("--job", "job_id", default="", help="Show one job's full threat-model manifest.")
@click.option("--json", "as_json", is_flag=True)
def pending(config_path: str, job_id: str, as_json: bool) -> None:
    """Jobs waiting for this node's administrator, with what each would reveal and cost."""
    from ensnif_mpc.errors import UnknownJob
    from ensnif_mpc.jobs import manifest
    from party_node import admin

    cfg, store = _node_state(config_path)
    try:
        waiting = admin.pending(store)
    finally:
        store.close()
    if job_id:
        waiting = [p for p in waiting if p.job_id == job_id]
        if not waiting:
            raise UnknownJob(f"no job {job_id!r} awaits approval at {cfg.name}")
    if as_json:
        emit_json({"party": cfg.name, "pending": [p.__dict__ for p in waiting]})
        return
    if job_id:
        p = waiting[0]
        console.print(f"[bold]job {p.job_id}[/] from {escape(p.analyst)}, proposed {p.proposed_at}")
        console.print(escape(manifest.render(p.manifest)))
        if p.program:
            _print_program(p.program)
        console.print(f"job hash   {p.job_hash}")
        console.print(
            f"decide     ensnif job approve {p.job_id} --config {config_path}  |  "
            f"ensnif job reject {p.job_id} --config {config_path} --reason …"
        )
        return
    t = Table(title=f"Jobs awaiting approval at {cfg.name}")
    for col in ("job", "proposed", "analyst", "protocol", "inputs", "privacy"):
        t.add_column(col)
    for p in waiting:
        m = p.manifest
        t.add_row(
            p.job_id,
            p.proposed_at[:19].replace("T", " "),
            escape(p.analyst),
            m.get("protocol", ""),
            escape(", ".join(f"{i['party']}:{i['dataset']}" for i in m.get("inputs", []))),
            escape(m.get("privacy", {}).get("cost", "")),
        )
    console.print(t)
    if not waiting:
        console.print("nothing waits for approval")


def _print_program(program: dict[str, Any]) -> None:
    """A member program as the administrator reviews it: its hash (what the dataset's
    `programs` policy lists to allow it without asking again), then every file."""
    console.print(f"[bold]member program[/] {program['hash']}")
    console.print(
        "  approving runs this exact code; to allow it without asking again, add its hash "
        "to the dataset's policy: programs = [...]"
    )
    for path, text in sorted(program["files"].items()):
        console.rule(escape(path))
        console.print(text, highlight=False, markup=False, soft_wrap=True)  # verbatim
    console.rule()


def _decide(config_path: str, job_id: str, decision: str, approver: str, reason: str) -> None:
    from party_node import admin

    cfg, store = _node_state(config_path)
    try:
        signed = admin.decide(cfg, store, job_id, decision, approver or getpass.getuser(), reason)
    finally:
        store.close()
    console.print(
        f"job {job_id}: {decision} at {cfg.name} by {escape(signed.approver)} "
        f"(signed, hash {signed.job_hash[:16]}…)"
    )


@click.command("approve")
@click.argument("job_id")
@_config
@click.option("--as", "approver", default="", help="Your name in the signed approval.")
def approve(config_path: str, job_id: str, approver: str) -> None:
    """Approve a waiting job. The node re-checks its policy and budget before it runs it."""
    _decide(config_path, job_id, "approved", approver, "")


@click.command("reject")
@click.argument("job_id")
@_config
@click.option("--reason", required=True, help="Why (shown to the analyst).")
@click.option("--as", "approver", default="", help="Your name in the signed rejection.")
def reject(config_path: str, job_id: str, reason: str, approver: str) -> None:
    """Reject a waiting job; the job ends REJECTED for everyone with your reason."""
    _decide(config_path, job_id, "rejected", approver, reason)
