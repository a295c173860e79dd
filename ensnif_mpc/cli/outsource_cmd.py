"""`ensnif outsource …`: a member without a node puts its table at the consortium's disposal,
encrypted under a BFV key only it holds (docs/homomorphic.md, "Outsourced datasets").

``keygen`` writes the key directory (the secret context never leaves it); ``encrypt``
turns a CSV or Parquet file into the signed directory a helper node stores; ``verify``
is what the helper checks before it accepts one (signature, context, every ciphertext).
The owner signs with its consortium certificate from the client profile (``[tls]``).
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path
from typing import Any

import click

from ensnif_mpc.cli.render import console, emit_json
from ensnif_mpc.errors import InvalidArgument


@click.group()
def outsource() -> None:
    """Encrypted datasets for members without a node (BFV, 128-bit security)."""


@outsource.command("keygen")
@click.option("--key", "key_dir", required=True, type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def keygen(key_dir: str, as_json: bool) -> None:
    """A new BFV key directory (secret.ctx mode 600; public.ctx and key.json travel)."""
    from ensnif_mpc.he import bfv

    key = bfv.keygen(Path(key_dir))
    out = {"key": str(key.path), "scheme": key.scheme, "params": key.params}
    out["context_sha256"] = key.context_sha256
    if as_json:
        emit_json(out)
    else:
        console.print(f"BFV key in {key.path} ({key.params}, context {key.context_sha256[:16]}…)")


def read_schema(path: Path) -> tuple[list[Any], dict[str, Any]]:
    """``[[columns]]`` (name, type, lower, upper, decimals, optional bins) and ``[policy]``."""
    from ensnif_mpc.data.schema import Column
    from ensnif_mpc.he.outsource_table import OutsourcedColumn

    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidArgument(f"--schema {path}: {exc}") from None
    columns = []
    for i, c in enumerate(raw.get("columns", [])):
        try:
            col = Column(
                str(c["name"]),
                str(c.get("type", "float")),
                float(c["lower"]),
                float(c["upper"]),
                int(c.get("decimals", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"--schema columns[{i}]: {exc}") from None
        columns.append(OutsourcedColumn(col, tuple(float(b) for b in c.get("bins", ()))))
    if not columns:
        raise InvalidArgument(f"--schema {path}: declare at least one [[columns]] table")
    return columns, dict(raw.get("policy", {}))


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
    """Encrypt a CSV or Parquet table column by column and sign it for a helper node."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from ensnif_mpc.config import ClientProfile
    from ensnif_mpc.he import bfv, outsource_table as table
    from ensnif_mpc.security import pki

    profile = ClientProfile.load(Path(ctx.obj["profile"]) if ctx.obj.get("profile") else None)
    owner = pki.identity_of(pki.load_cert(profile.tls.cert)).name
    columns, policy = read_schema(Path(schema_path))
    source = Path(data_path)
    arrow = pq.read_table(source) if source.suffix == ".parquet" else pcsv.read_csv(source)
    missing = [c.column.name for c in columns if c.column.name not in arrow.column_names]
    if missing:
        raise InvalidArgument(f"--dataset {source.name} has no column {', '.join(missing)}")
    values = {c.column.name: arrow[c.column.name].to_numpy() for c in columns}
    key = bfv.load_key(Path(key_dir))
    t0 = time.perf_counter()
    manifest, frames = table.encrypt_table(key, name, owner, values, columns, policy, helper)
    table.write(
        Path(out_dir),
        key,
        manifest,
        frames,
        profile.tls.key.read_bytes(),
        profile.tls.cert.read_bytes(),
    )
    out: dict[str, Any] = {"dataset": name, "owner": owner, "rows": manifest.rows}
    out |= {"out": out_dir, "series": len(manifest.series), "ciphertexts": len(frames)}
    out |= {"manifest_sha256": manifest.digest, "seconds": round(time.perf_counter() - t0, 3)}
    if as_json:
        emit_json(out)
    else:
        console.print(
            f"{name}: {manifest.rows} rows, {len(frames)} ciphertexts in {out_dir} "
            f"(manifest {manifest.digest[:16]}…)"
        )


@outsource.command("verify")
@click.option("--dir", "data_dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--ca", "ca_path", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True)
def verify(data_dir: str, ca_path: str, as_json: bool) -> None:
    """Check an outsourced dataset as a helper does: owner, signature, context, ciphertexts."""
    from ensnif_mpc.he import outsource_table as table

    stored = table.open_stored(Path(data_dir), Path(ca_path).read_bytes())
    ctx = stored.context()
    count = sum(1 for series in stored.manifest.series for _ in stored.chunks(ctx, series))
    out: dict[str, Any] = {"dataset": stored.manifest.dataset, "owner": stored.manifest.owner}
    out |= {"rows": stored.manifest.rows, "ciphertexts": count, "ok": True}
    out["manifest_sha256"] = stored.manifest.digest
    if as_json:
        emit_json(out)
    else:
        console.print(json.dumps(out))


_CHUNK_BYTES = 1 << 20  # gRPC's default message limit is 4 MB


def _files(directory: Path) -> Any:
    """The directory's files as upload chunks (path, data), 1 MB at a time."""
    from ensnif_mpc.gen.ensnif.v1 import outsource_pb2 as opb

    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel.startswith(("sums", ".")):  # the helper's own derived state, if present
            continue
        data = path.read_bytes()
        for start in range(0, max(len(data), 1), _CHUNK_BYTES):
            yield opb.UploadChunk(path=rel, data=data[start : start + _CHUNK_BYTES])


def _stub(ctx: click.Context, node: str, node_name: str) -> Any:
    from ensnif_mpc.config import ClientProfile
    from ensnif_mpc.gen.ensnif.v1 import outsource_pb2_grpc
    from ensnif_mpc.security.tls import secure_channel

    profile = ClientProfile.load(Path(ctx.obj["profile"]) if ctx.obj.get("profile") else None)
    channel = secure_channel(node, profile.tls, node_name)
    return outsource_pb2_grpc.OutsourceServiceStub(channel)


def _dataset_dict(d: Any) -> dict[str, Any]:
    return {
        "owner": d.owner,
        "dataset": d.dataset,
        "rows": d.rows,
        "manifest_sha256": d.manifest_sha256,
        "context_sha256": d.context_sha256,
        "ciphertexts": d.ciphertexts,
        "columns": json.loads(d.columns_json or "[]"),
        "policy": json.loads(d.policy_json or "{}"),
    }


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
    import grpc

    from ensnif_mpc.errors import from_rpc_error

    try:
        reply = _stub(ctx, node, node_name).Upload(_files(Path(data_dir)), timeout=timeout_s)
    except grpc.RpcError as err:
        raise from_rpc_error(err) from None
    out = _dataset_dict(reply.dataset)
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
    import grpc

    from ensnif_mpc.errors import from_rpc_error
    from ensnif_mpc.gen.ensnif.v1 import outsource_pb2 as opb

    try:
        reply = _stub(ctx, node, node_name).ListOutsourced(opb.ListOutsourcedRequest(), timeout=30)
    except grpc.RpcError as err:
        raise from_rpc_error(err) from None
    rows = [_dataset_dict(d) for d in reply.datasets]
    if as_json:
        emit_json(rows)
    else:
        for r in rows:
            console.print(f"{r['owner']}/{r['dataset']}: {r['rows']} rows, {r['manifest_sha256']}")


def _decide(request: Any, protocols: tuple[str, ...], analysts: tuple[str, ...]) -> str:
    """Why the owner refuses a job ("" to approve): its own allow-lists, checked first."""
    job = request.job
    if protocols and job.get("protocol") not in protocols:
        return f"protocol {job.get('protocol')!r} is not one the owner allows"
    if analysts and job.get("analyst") not in analysts:
        return f"analyst {job.get('analyst')!r} is not one the owner allows"
    return ""


def _answer_chunks(job_id: str, sealed: dict[int, bytes] | None, refusal: str) -> Any:
    from ensnif_mpc.gen.ensnif.v1 import outsource_pb2 as opb

    if sealed is None:
        yield opb.AnswerChunk(job_id=job_id, refusal=refusal or "refused by the owner")
        return
    for index, blob in sorted(sealed.items()):
        for start in range(0, len(blob), _CHUNK_BYTES):
            part = blob[start : start + _CHUNK_BYTES]
            yield opb.AnswerChunk(job_id=job_id, party_index=index, sealed=part)


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
    import grpc

    from ensnif_mpc.errors import EnsnifError, from_rpc_error
    from ensnif_mpc.gen.ensnif.v1 import outsource_pb2 as opb
    from ensnif_mpc.he import bfv, outsource, outsource_rows
    from ensnif_mpc.he.outsource_request import ConversionRequest

    key = bfv.load_key(Path(key_dir))
    stub = _stub(ctx, node, node_name)
    ca = _profile_ca(ctx)
    deadline = time.monotonic() + wait_s
    answered = 0
    while True:
        try:
            pending = stub.PendingConversions(opb.PendingConversionsRequest(), timeout=60)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        for conv in pending.conversions:
            request = ConversionRequest.from_json(conv.request_json)
            batch = outsource.MaskedBatch.from_bytes(conv.batch)
            refusal = _decide(request, protocols, analysts)
            if not refusal and (
                batch.job_id != request.job_id or batch.dataset_digest != request.manifest_sha256
            ):
                refusal = "the masked batch is not the one the request names"
            sealed = None
            if not refusal:
                share = outsource_rows.share_masked_rows if request.rows else outsource.share_masked
                try:
                    sealed = share(key.context, key.context_sha256, batch, request.peers, ca)
                except EnsnifError as err:
                    refusal = f"{err.message} [{err.reason}]"
            try:
                stub.AnswerConversion(_answer_chunks(request.job_id, sealed, refusal), timeout=120)
            except grpc.RpcError as err:
                raise from_rpc_error(err) from None
            answered += 1
            line: dict[str, Any] = {"job_id": request.job_id, "dataset": request.dataset}
            line |= {"approved": sealed is not None, "refusal": refusal}
            if as_json:
                emit_json(line)
            else:
                verdict = "shared" if sealed is not None else f"refused: {refusal}"
                console.print(f"job {request.job_id} ({request.dataset}): {verdict}")
        if once and (answered or time.monotonic() > deadline):
            return
        time.sleep(interval)


def _profile_ca(ctx: click.Context) -> bytes:
    from ensnif_mpc.config import ClientProfile

    profile = ClientProfile.load(Path(ctx.obj["profile"]) if ctx.obj.get("profile") else None)
    return profile.tls.ca.read_bytes()
