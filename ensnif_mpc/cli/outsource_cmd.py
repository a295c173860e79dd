"""`ensnif outsource …`: a member without a node puts its table at the consortium's disposal,
encrypted under a BFV key only it holds (docs/homomorphic.md, "Outsourced datasets").

``keygen`` writes the key directory (the secret context never leaves it); ``encrypt``
turns a CSV or Parquet file into the signed directory a helper node stores; ``verify``
is what the helper checks before it accepts one (signature, context, every ciphertext).
The owner signs with its consortium certificate from the client profile (``[tls]``).
Every command is a thin layer over the SDK (ensnif_mpc/sdk/outsource.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from ensnif_mpc.cli.render import console, emit_json


@click.group()
def outsource() -> None:
    """Encrypted datasets for members without a node (BFV, 128-bit security)."""


def _profile(ctx: click.Context) -> Any:
    from ensnif_mpc.config import ClientProfile

    return ClientProfile.load(Path(ctx.obj["profile"]) if ctx.obj.get("profile") else None)


def _helper(ctx: click.Context, node: str, node_name: str, timeout_s: float = 600.0) -> Any:
    from ensnif_mpc.sdk.outsource import Helper

    return Helper(_profile(ctx), node, node_name, timeout_s)


def _stored_dict(stored: Any) -> dict[str, Any]:
    out: dict[str, Any] = asdict(stored)
    return out


@outsource.command("keygen")
@click.option("--key", "key_dir", required=True, type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def keygen(key_dir: str, as_json: bool) -> None:
    """A new BFV key directory (secret.ctx mode 600; public.ctx and key.json travel)."""
    from ensnif_mpc.sdk import outsource as sdk

    key = sdk.keygen(Path(key_dir))
    out = {"key": str(key.path), "scheme": key.scheme, "params": key.params}
    out["context_sha256"] = key.context_sha256
    if as_json:
        emit_json(out)
    else:
        console.print(f"BFV key in {key.path} ({key.params}, context {key.context_sha256[:16]}…)")


@outsource.command("encrypt")
@click.option("--dataset", "data_path", required=True, type=click.Path(exists=True))
@click.option("--name", required=True, help="The dataset's name in the catalog.")
@click.option("--schema", "schema_path", required=True, type=click.Path(exists=True))
@click.option("--key", "key_dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option(
    "--helper",
    default="",
    help="The helper node entrusted with the dataset (signed in the manifest); the "
    "coordinator's catalog lists the dataset only as published by that node.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def encrypt(
    ctx: click.Context,
    data_path: str,
    name: str,
    schema_path: str,
    key_dir: str,
    out_dir: str,
    helper: str,
    as_json: bool,
) -> None:
    """Encrypt a CSV or Parquet table column by column and sign it for a helper node.

    The schema file's [[columns]] give name, type, lower, upper, decimals and optional
    bins; a join key column says key = true (int or string, distinct over the table; it
    is encrypted as the limbs of its 128-bit hash, docs/homomorphic.md "Join keys")."""
    from ensnif_mpc.sdk import outsource as sdk

    done = sdk.encrypt(
        _profile(ctx), Path(data_path), name, Path(schema_path), Path(key_dir), Path(out_dir),
        helper,
    )  # fmt: skip
    out: dict[str, Any] = {"dataset": done.dataset, "owner": done.owner, "rows": done.rows}
    out |= {"out": out_dir, "series": done.series, "ciphertexts": done.ciphertexts}
    out |= {"manifest_sha256": done.manifest_sha256, "seconds": done.seconds}
    if as_json:
        emit_json(out)
    else:
        console.print(
            f"{name}: {done.rows} rows, {done.ciphertexts} ciphertexts in {out_dir} "
            f"(manifest {done.manifest_sha256[:16]}…)"
        )


@outsource.command("verify")
@click.option("--dir", "data_dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--ca", "ca_path", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True)
def verify(data_dir: str, ca_path: str, as_json: bool) -> None:
    """Check an outsourced dataset as a helper does: owner, signature, context, ciphertexts."""
    from ensnif_mpc.sdk import outsource as sdk

    done = sdk.verify(Path(data_dir), Path(ca_path).read_bytes())
    out: dict[str, Any] = {"dataset": done.dataset, "owner": done.owner}
    out |= {"rows": done.rows, "ciphertexts": done.ciphertexts, "ok": True}
    out["manifest_sha256"] = done.manifest_sha256
    if as_json:
        emit_json(out)
    else:
        console.print(json.dumps(out))


@outsource.command("upload")
@click.option("--dir", "data_dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--node", required=True, help="The helper node's address, host:port.")
@click.option("--node-name", required=True, help="The helper's consortium name (its TLS name).")
@click.option("--timeout", "timeout_s", default=600.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def upload(
    ctx: click.Context, data_dir: str, node: str, node_name: str, timeout_s: float, as_json: bool
) -> None:
    """Upload an encrypted dataset to a helper node over mTLS, as its owner."""
    with _helper(ctx, node, node_name, timeout_s) as helper:
        out = _stored_dict(helper.upload(Path(data_dir)))
    if as_json:
        emit_json(out)
    else:
        console.print(
            f"{node_name} stores {out['owner']}/{out['dataset']}: {out['rows']} rows, "
            f"{out['ciphertexts']} ciphertexts (manifest {out['manifest_sha256'][:16]}…)"
        )


@outsource.command("list")
@click.option("--node", required=True, help="The helper node's address, host:port.")
@click.option("--node-name", required=True, help="The helper's consortium name (its TLS name).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_outsourced(ctx: click.Context, node: str, node_name: str, as_json: bool) -> None:
    """The outsourced datasets a helper node stores (schemas and hashes only)."""
    with _helper(ctx, node, node_name) as helper:
        rows = [_stored_dict(d) for d in helper.list()]
    if as_json:
        emit_json(rows)
    else:
        for r in rows:
            console.print(f"{r['owner']}/{r['dataset']}: {r['rows']} rows, {r['manifest_sha256']}")


@outsource.command("serve")
@click.option("--node", required=True, help="The helper node's address, host:port.")
@click.option("--node-name", required=True, help="The helper's consortium name (its TLS name).")
@click.option("--key", "key_dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--allow-protocol", "protocols", multiple=True, help="Approve only these.")
@click.option("--allow-analyst", "analysts", multiple=True, help="Approve only these.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between polls.")
@click.option("--once", is_flag=True, help="Answer what is pending (waiting up to --wait).")
@click.option("--wait", "wait_s", default=60.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def serve(
    ctx: click.Context,
    node: str,
    node_name: str,
    key_dir: str,
    protocols: tuple[str, ...],
    analysts: tuple[str, ...],
    interval: float,
    once: bool,
    wait_s: float,
    as_json: bool,
) -> None:
    """Be online for your outsourced datasets: approve or refuse each job that reads one,
    decrypt only its masked values, and seal one additive share to each MPC party."""

    def report(answer: Any) -> None:
        line: dict[str, Any] = {"job_id": answer.job_id, "dataset": answer.dataset}
        line |= {"approved": answer.approved, "refusal": answer.refusal}
        if as_json:
            emit_json(line)
        else:
            verdict = "shared" if answer.approved else f"refused: {answer.refusal}"
            console.print(f"job {answer.job_id} ({answer.dataset}): {verdict}")

    with _helper(ctx, node, node_name) as helper:
        helper.serve(Path(key_dir), protocols, analysts, interval, once, wait_s, on_answer=report)
