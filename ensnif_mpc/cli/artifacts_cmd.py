"""`ensnif artifacts list|delete`: outputs kept secret-shared at the nodes for later jobs.

Through the coordinator (the analyst's profile): the artifacts the analyst produced, as
every node that holds a share describes them, and their deletion at every node (the
coordinator sees only metadata, never a share). With ``--config party.toml`` (beside a
node, like `ensnif budget show`): what this node holds, and deletion of this node's share
by its administrator (audited in the node's chain).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ensnif_mpc.cli.context import client_from
from ensnif_mpc.cli.render import console, emit_json

_config = click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="A node's party.toml: act on this node's own store instead of the coordinator.",
)
_json = click.option("--json", "as_json", is_flag=True)


@click.group()
def artifacts() -> None:
    """Artifacts: outputs kept secret-shared at the parties for a later job."""


@artifacts.command("list")
@_config
@_json
@click.pass_context
def list_artifacts(ctx: click.Context, config_path: str | None, as_json: bool) -> None:
    """The artifacts you may see, with the members that hold a share of each."""
    if config_path:
        rows = _node_rows(config_path)
    else:
        with client_from(ctx) as c:
            rows = [_row(a) for a in c.artifacts()]
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "protocol", "shape", "type", "owners", "analyst", "holders", "created")
    for r in rows:
        kind = r["kind"] + (f" (2^-{r['frac_bits']})" if r["frac_bits"] else "")
        table.add_row(
            r["id"],
            r["protocol"],
            "x".join(map(str, r["shape"])) or "scalar",
            kind,
            ", ".join(r["owners"]),
            r["analyst"],
            ", ".join(r["holders"]),
            r["created_at"],
        )
    console.print(table)


@artifacts.command("delete")
@click.argument("artifact_id")
@_config
@_json
@click.pass_context
def delete(ctx: click.Context, artifact_id: str, config_path: str | None, as_json: bool) -> None:
    """Delete an artifact: at every node (you produced it), or this node's share (--config)."""
    import getpass

    if config_path:
        from ensnif_mpc.errors import NotFound

        cfg, store = _node_store(config_path)
        try:
            if not store.delete(artifact_id, by=f"{getpass.getuser()} (administrator)"):
                raise NotFound(
                    f"{cfg.name} holds no share of artifact {artifact_id!r}",
                    reason="artifact_not_found",
                )
        finally:
            store.store.close()
        deleted = [cfg.name]
    else:
        with client_from(ctx) as c:
            deleted = c.delete_artifact(artifact_id)
    if as_json:
        emit_json({"id": artifact_id, "deleted_at": deleted})
    else:
        console.print(f"artifact {artifact_id}: deleted at {', '.join(deleted)}")


def _row(a: Any) -> dict[str, Any]:
    return {
        "id": a.id,
        "name": a.name,
        "job_id": a.job_id,
        "protocol": a.protocol,
        "shape": list(a.shape),
        "kind": a.kind,
        "bit_length": a.bit_length,
        "frac_bits": a.frac_bits,
        "owners": list(a.owners),
        "parties": list(a.parties),
        "analyst": a.analyst,
        "holders": list(a.holders),
        "created_at": a.created_at,
    }


def _node_store(config_path: str) -> tuple[Any, Any]:
    from ensnif_mpc.audit import chain as audit
    from ensnif_mpc.config import PartyConfig
    from ensnif_mpc.errors import InvalidConfig
    from party_node.artifacts import ArtifactStore
    from party_node.store import NodeStore

    cfg = PartyConfig.load(Path(config_path))
    db = cfg.state_dir / "node.db"
    if not db.is_file():
        raise InvalidConfig(
            f"no node state at {db}: is this the config of a node that has run "
            "(its state_dir)? Nothing was created."
        )
    # Signed as the running node signs its audit anchor, so `ensnif audit verify` stays green.
    store = NodeStore(db, signer=audit.Signer.from_key_file(cfg.tls.key))
    return cfg, ArtifactStore(store)


def _node_rows(config_path: str) -> list[dict[str, Any]]:
    cfg, store = _node_store(config_path)
    try:
        held = store.listing()
    finally:
        store.store.close()
    return [
        {
            "id": m["artifact_id"],
            **{k: m[k] for k in ("name", "job_id", "protocol", "kind", "bit_length")},
            "frac_bits": m["frac_bits"],
            "shape": list(m["shape"]),
            "owners": list(m["owners"]),
            "parties": list(m["parties"]),
            "analyst": analyst,
            "holders": [cfg.name],
            "created_at": m.get("created_at", ""),
        }
        for m, analyst in held
    ]
