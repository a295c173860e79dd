"""A member without a node, from Python: what ``ensnif outsource keygen | encrypt | verify |
upload | list | serve`` do, as functions (the CLI is a thin layer over them).

    from ensnif_mpc.config import ClientProfile
    from ensnif_mpc.sdk import outsource

    profile = ClientProfile.load()                      # the owner's consortium certificate
    outsource.keygen(Path("key"))                       # secret.ctx never leaves key/
    outsource.encrypt(profile, Path("payments.csv"), "payments", Path("schema.toml"),
                      Path("key"), Path("upload"), helper="helper")
    with outsource.Helper(profile, "helper.example:50061", "helper") as helper:
        helper.upload(Path("upload"))
        helper.serve(Path("key"), allow_protocols=("sum", "mean"))   # online for its jobs

Why a separate client from :class:`ensnif_mpc.sdk.Client`: the owner talks to the helper
node it entrusted its dataset to (``OutsourceService``, mutual TLS with its own consortium
certificate), not to the coordinator; it runs no node and needs no coordinator address.

What the owner learns and reveals is the conversion's (docs/homomorphic.md, "From
ciphertexts to secret shares"): ``serve`` decrypts only masked values, refuses any job its
allow-lists do not name before decrypting anything, and seals one additive share to each
MPC party's per-job key, checked against that party's binding for the job.
"""

from __future__ import annotations

import builtins
import json
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from ensnif_mpc.config import ClientProfile
from ensnif_mpc.data.schema import Column
from ensnif_mpc.errors import EnsnifError, InvalidArgument, from_rpc_error
from ensnif_mpc.gen.ensnif.v1 import outsource_pb2 as opb, outsource_pb2_grpc
from ensnif_mpc.he import bfv, outsource, outsource_rows, outsource_table as table
from ensnif_mpc.he.outsource_request import ConversionRequest
from ensnif_mpc.security import pki
from ensnif_mpc.security.tls import secure_channel

CHUNK_BYTES = 1 << 20  # gRPC's default message limit is 4 MB


@dataclass(frozen=True)
class KeyInfo:
    path: Path
    scheme: str
    params: str
    context_sha256: str


def keygen(key_dir: Path) -> KeyInfo:
    """A new BFV key directory (secret.ctx mode 600; public.ctx and key.json travel)."""
    key = bfv.keygen(Path(key_dir))
    return KeyInfo(key.path, key.scheme, key.params, key.context_sha256)


@dataclass(frozen=True)
class Schema:
    """The columns an owner outsources (bounds, decimals, bins) and its signed policy."""

    columns: tuple[table.OutsourcedColumn, ...]
    policy: dict[str, Any] = field(default_factory=dict)


def read_schema(path: Path) -> Schema:
    """``[[columns]]`` (name, type, lower, upper, decimals, optional bins; ``key = true``
    for a join key, int or string, whose bounds a string key omits) and ``[policy]``."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidArgument(f"--schema {path}: {exc}") from None
    columns = []
    for i, c in enumerate(raw.get("columns", [])):
        key = c.get("key", False) is True
        string_key = key and c.get("type") == "string"
        try:
            col = Column(
                str(c["name"]),
                str(c.get("type", "float")),
                float(c.get("lower", 0.0) if string_key else c["lower"]),
                float(c.get("upper", 0.0) if string_key else c["upper"]),
                int(c.get("decimals", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"--schema columns[{i}]: {exc}") from None
        bins = tuple(float(b) for b in c.get("bins", ()))
        columns.append(table.OutsourcedColumn(col, bins, key))
    if not columns:
        raise InvalidArgument(f"--schema {path}: declare at least one [[columns]] table")
    return Schema(tuple(columns), dict(raw.get("policy", {})))


@dataclass(frozen=True)
class Encrypted:
    dataset: str
    owner: str
    rows: int
    out: Path
    series: int
    ciphertexts: int
    manifest_sha256: str
    seconds: float


def _read_values(data: Path, columns: Sequence[table.OutsourcedColumn]) -> dict[str, Any]:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    arrow = pq.read_table(data) if data.suffix == ".parquet" else pcsv.read_csv(data)
    missing = [c.column.name for c in columns if c.column.name not in arrow.column_names]
    if missing:
        raise InvalidArgument(f"--dataset {data.name} has no column {', '.join(missing)}")
    return {c.column.name: arrow[c.column.name].to_numpy() for c in columns}


def encrypt(
    profile: ClientProfile,
    data: Path | Mapping[str, npt.ArrayLike],
    name: str,
    schema: Path | Schema,
    key_dir: Path,
    out_dir: Path,
    helper: str = "",
) -> Encrypted:
    """Encrypt a table (a CSV or Parquet file, or columns by name) column by column under
    the key in ``key_dir`` and sign it, for the ``helper`` node named in the manifest, with
    the owner's consortium key (the profile's ``[tls]``)."""
    owner = pki.identity_of(pki.load_cert(profile.tls.cert)).name
    declared = schema if isinstance(schema, Schema) else read_schema(schema)
    if isinstance(data, Mapping):
        values = {c.column.name: np.asarray(data[c.column.name]) for c in declared.columns}
    else:
        values = _read_values(Path(data), declared.columns)
    key = bfv.load_key(Path(key_dir))
    t0 = time.perf_counter()
    manifest, frames = table.encrypt_table(
        key, name, owner, values, declared.columns, declared.policy, helper
    )
    table.write(
        Path(out_dir),
        key,
        manifest,
        frames,
        profile.tls.key.read_bytes(),
        profile.tls.cert.read_bytes(),
    )
    return Encrypted(
        name,
        owner,
        manifest.rows,
        Path(out_dir),
        len(manifest.series),
        len(frames),
        manifest.digest,
        round(time.perf_counter() - t0, 3),
    )


@dataclass(frozen=True)
class Verified:
    dataset: str
    owner: str
    rows: int
    ciphertexts: int
    manifest_sha256: str


def verify(data_dir: Path, ca_pem: bytes) -> Verified:
    """The helper's checks, run here: owner certificate, signature, context, every frame."""
    stored = table.open_stored(Path(data_dir), ca_pem)
    ctx = stored.context()
    count = sum(1 for series in stored.manifest.series for _ in stored.chunks(ctx, series))
    m = stored.manifest
    return Verified(m.dataset, m.owner, m.rows, count, m.digest)


@dataclass(frozen=True)
class Stored:
    """An outsourced dataset as a helper node reports it (schemas and hashes, no value)."""

    owner: str
    dataset: str
    rows: int
    manifest_sha256: str
    context_sha256: str
    ciphertexts: int
    columns: list[dict[str, Any]]
    policy: dict[str, Any]

    @staticmethod
    def from_pb(d: opb.OutsourcedDataset) -> Stored:
        return Stored(
            d.owner,
            d.dataset,
            d.rows,
            d.manifest_sha256,
            d.context_sha256,
            d.ciphertexts,
            json.loads(d.columns_json or "[]"),
            json.loads(d.policy_json or "{}"),
        )


@dataclass(frozen=True)
class Answer:
    """What the owner answered for one job: approved (shares sealed and sent) or refused."""

    job_id: str
    dataset: str
    approved: bool
    refusal: str


def upload_chunks(directory: Path) -> Iterator[opb.UploadChunk]:
    """The directory's files as upload chunks (path, data), 1 MB at a time."""
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel.startswith(("sums", ".")):  # the helper's own derived state, if present
            continue
        data = path.read_bytes()
        for start in range(0, max(len(data), 1), CHUNK_BYTES):
            yield opb.UploadChunk(path=rel, data=data[start : start + CHUNK_BYTES])


def decide(job: Mapping[str, Any], protocols: Sequence[str], analysts: Sequence[str]) -> str:
    """Why the owner refuses a job ("" to approve): its own allow-lists, checked first."""
    if protocols and job.get("protocol") not in protocols:
        return f"protocol {job.get('protocol')!r} is not one the owner allows"
    if analysts and job.get("analyst") not in analysts:
        return f"analyst {job.get('analyst')!r} is not one the owner allows"
    return ""


def _answer_chunks(
    job_id: str, sealed: dict[int, bytes] | None, refusal: str
) -> Iterator[opb.AnswerChunk]:
    if sealed is None:
        yield opb.AnswerChunk(job_id=job_id, refusal=refusal or "refused by the owner")
        return
    for index, blob in sorted(sealed.items()):
        for start in range(0, len(blob), CHUNK_BYTES):
            part = blob[start : start + CHUNK_BYTES]
            yield opb.AnswerChunk(job_id=job_id, party_index=index, sealed=part)


class Helper:
    """The owner's connection to the helper node that holds (or will hold) its dataset."""

    def __init__(
        self, profile: ClientProfile, node: str, node_name: str, timeout_s: float = 600.0
    ) -> None:
        self.profile = profile
        self.node_name = node_name
        self.timeout_s = timeout_s
        self._channel = secure_channel(node, profile.tls, node_name)
        self._stub = outsource_pb2_grpc.OutsourceServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Helper:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, fn: Callable[..., Any], request: Any, timeout_s: float) -> Any:
        try:
            return fn(request, timeout=timeout_s)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def upload(self, data_dir: Path) -> Stored:
        """Upload an encrypted dataset as its owner; the node verifies it before storing."""
        reply = self._call(self._stub.Upload, upload_chunks(Path(data_dir)), self.timeout_s)
        return Stored.from_pb(reply.dataset)

    def list(self) -> builtins.list[Stored]:
        """The outsourced datasets the node stores (schemas and hashes only)."""
        reply = self._call(self._stub.ListOutsourced, opb.ListOutsourcedRequest(), 30.0)
        return [Stored.from_pb(d) for d in reply.datasets]

    def _pending(self) -> builtins.list[tuple[str, bytes]]:
        """The pending conversions, each (request JSON, masked batch), reassembled from the
        node's stream (a conversion's parts come in order, its first with the request)."""
        parts: dict[str, tuple[str, bytearray]] = {}
        try:
            for message in self._stub.PendingConversions(
                opb.PendingConversionsRequest(), timeout=600.0
            ):
                if message.job_id not in parts:
                    parts[message.job_id] = (message.request_json, bytearray())
                parts[message.job_id][1].extend(message.batch)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        return [(request_json, bytes(blob)) for request_json, blob in parts.values()]

    def answer_pending(
        self,
        key: Any,
        ca_pem: bytes,
        allow_protocols: Sequence[str] = (),
        allow_analysts: Sequence[str] = (),
    ) -> builtins.list[Answer]:
        """One poll: approve or refuse each job waiting for this owner, and answer it."""
        out = []
        for request_json, blob in self._pending():
            request = ConversionRequest.from_json(request_json)
            batch = outsource.MaskedBatch.from_bytes(blob)
            refusal = decide(request.job, allow_protocols, allow_analysts)
            if not refusal and (
                batch.job_id != request.job_id or batch.dataset_digest != request.manifest_sha256
            ):
                refusal = "the masked batch is not the one the request names"
            sealed = None
            if not refusal:
                share = outsource_rows.share_masked_rows if request.rows else outsource.share_masked
                try:
                    sealed = share(key.context, key.context_sha256, batch, request.peers, ca_pem)
                except EnsnifError as err:
                    refusal = f"{err.message} [{err.reason}]"
            self._call(
                self._stub.AnswerConversion,
                _answer_chunks(request.job_id, sealed, refusal),
                120.0,
            )
            out.append(Answer(request.job_id, request.dataset, sealed is not None, refusal))
        return out

    def serve(
        self,
        key_dir: Path,
        allow_protocols: Sequence[str] = (),
        allow_analysts: Sequence[str] = (),
        interval_s: float = 1.0,
        once: bool = False,
        wait_s: float = 60.0,
        stop: threading.Event | None = None,
        on_answer: Callable[[Answer], None] | None = None,
    ) -> builtins.list[Answer]:
        """Be online for the owner's datasets: poll every ``interval_s`` and answer each job.
        ``once``: return after the first poll that answered something (or after ``wait_s``
        with nothing to answer); otherwise run until ``stop`` is set."""
        key = bfv.load_key(Path(key_dir))
        ca_pem = self.profile.tls.ca.read_bytes()
        deadline = time.monotonic() + wait_s
        answers: builtins.list[Answer] = []
        while stop is None or not stop.is_set():
            for answer in self.answer_pending(key, ca_pem, allow_protocols, allow_analysts):
                answers.append(answer)
                if on_answer is not None:
                    on_answer(answer)
            if once and (answers or time.monotonic() > deadline):
                break
            if stop is not None:
                stop.wait(interval_s)
            else:
                time.sleep(interval_s)
        return answers
