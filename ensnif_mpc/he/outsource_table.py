"""An outsourced dataset: an owner's table encrypted column by column under its BFV key.

The owner runs no node. Its client (``ensnif outsource encrypt``) puts each numeric column
on the declared integer grid (value × 10^decimals), packs N = 8192 rows per ciphertext
(row i in slot i mod N of ciphertext i // N, the last one zero-padded), and writes a
directory a helper node stores::

    manifest.json   dataset, owner, rows, columns with bounds and bins, the owner's policy,
                    the context's SHA-256, and per series the SHA-256 of every ciphertext
    manifest.sig    the owner's ECDSA signature over manifest.json (consortium key)
    owner.crt       the owner's consortium certificate
    public.ctx      the BFV parameters (no key of any kind, see ``bfv.public_bytes``)
    ct/<series>/<chunk>.bin   one framed ciphertext each

Series: a column's values, and for a column with declared bin edges, per bin b the 0/1
indicator (``col@bin<b>``, for per-bin counts) and the value × indicator
(``col@binsum<b>``, for per-bin sums). The owner computes these at encryption, in the
clear, on its own machine: the helper only ever adds ciphertexts, so no relinearization
or Galois key is needed and no multiplication noise arises. A join key column
(``key = true``, int or string, distinct over the table) has no value series: it is
encrypted as the eight 16-bit limbs of its 128-bit hash (``col@key0`` … ``col@key7``,
``outsource_keys``), which a join converts row by row.

Binding: a frame is ``ENBFV1 | sha256(public context) | sha256(owner/dataset) | SEAL
bytes``, and the signed manifest lists the SHA-256 of each frame. A ciphertext from another
context (he_context_mismatch) or another dataset (he_dataset_mismatch), a changed byte
(he_ciphertext_tampered) or a manifest not signed by its owner (crypto_verification_failed)
is refused with its reason before any arithmetic.

What the helper learns from the directory: the schema, bounds, bins, policy and row count
(all published in the catalog anyway), and nothing about any value (BFV is IND-CPA under
RLWE at 128-bit security).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import tenseal as ts

from ensnif_mpc.data.schema import Column
from ensnif_mpc.errors import CryptoError, DataError, InvalidArgument, UnknownColumn
from ensnif_mpc.he import bfv, ckks, outsource_keys
from ensnif_mpc.he.keys import KeyDir
from ensnif_mpc.security import pki

FORMAT = "ensnif-outsourced-bfv-v1"
MAGIC = b"ENBFV1"
MANIFEST, SIGNATURE, OWNER_CERT, PUBLIC = "manifest.json", "manifest.sig", "owner.crt", "public.ctx"
OWNER_ROLES = ("analyst", "party")  # a member without a node holds an analyst certificate


@dataclass(frozen=True)
class OutsourcedColumn:
    """A numeric column as the owner declares it, with optional bin edges [e0, …, eB]."""

    column: Column
    bins: tuple[float, ...] = ()
    # A join key (``key = true``): encrypted as the eight 16-bit limbs of its 128-bit hash
    # (``outsource_keys``), int or string; distinct over the table; no value series.
    key: bool = False

    def __post_init__(self) -> None:
        if self.key:
            if self.column.type not in ("int", "string") or self.bins:
                raise InvalidArgument(
                    f"column {self.column.name!r}: a key column is int or string, without bins"
                )
            return
        if not self.column.numeric:
            raise InvalidArgument(
                f"column {self.column.name!r}: only numeric columns can be outsourced "
                "(a string column as a join key: key = true)"
            )
        edges = self.bins
        if edges and (
            len(edges) < 2 or any(edges[i] >= edges[i + 1] for i in range(len(edges) - 1))
        ):
            raise InvalidArgument(
                f"column {self.column.name!r}: bins need two or more increasing edges"
            )

    def series(self) -> list[str]:
        name = self.column.name
        if self.key:
            return outsource_keys.series_names(name)
        per_bin = [(f"{name}@bin{b}", f"{name}@binsum{b}") for b in range(len(self.bins) - 1)]
        return [name, *(s for pair in per_bin for s in pair)]


def _scaled_edge(edge: float, decimals: int, upper: bool) -> int:
    exact = Decimal(repr(float(edge))).scaleb(decimals)
    return int(exact.to_integral_value(ROUND_FLOOR if upper else ROUND_CEILING))


def bin_index(values: np.ndarray, edges: Sequence[float], decimals: int) -> np.ndarray:
    """Per scaled value its bin [e_b, e_(b+1)) (the last closed), −1 outside; the same rule
    as the histogram protocol (``protocols/statistics/histogram.py``)."""
    lows = np.array([_scaled_edge(e, decimals, upper=False) for e in edges], dtype=np.int64)
    top = _scaled_edge(edges[-1], decimals, upper=True)
    index = np.searchsorted(lows[:-1], values, side="right") - 1
    return np.where((values >= lows[0]) & (values <= top), index, -1)


@dataclass(frozen=True)
class Manifest:
    dataset: str
    owner: str
    rows: int
    context_sha256: str
    columns: tuple[dict[str, Any], ...]
    policy: Mapping[str, Any]
    series: Mapping[str, tuple[str, ...]]  # series → SHA-256 of each frame, chunk order
    format: str = FORMAT
    slots: int = bfv.POLY_DEGREE
    params: str = bfv.PARAMS
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        body = asdict(self)
        body["series"] = {k: list(v) for k, v in self.series.items()}
        return json.dumps(body, sort_keys=True, indent=1).encode() + b"\n"

    @property
    def digest(self) -> str:
        """The hash the catalog publishes: it names this exact encrypted dataset."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @property
    def dataset_id(self) -> bytes:
        return hashlib.sha256(f"{self.owner}/{self.dataset}".encode()).digest()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            body = json.loads(data)
            if body.get("format") != FORMAT:
                raise ValueError(body.get("format"))
            body["columns"] = tuple(body["columns"])
            body["series"] = {k: tuple(v) for k, v in body["series"].items()}
            return cls(**body)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise InvalidArgument(
                f"not an {FORMAT} manifest", reason="he_ciphertext_invalid"
            ) from None

    def outsourced_columns(self) -> list[OutsourcedColumn]:
        out = []
        for c in self.columns:
            col = Column(c["name"], c["type"], c["lower"], c["upper"], c["decimals"])
            out.append(OutsourcedColumn(col, tuple(c.get("bins", ())), bool(c.get("key"))))
        return out


def _grid(values: np.ndarray, col: OutsourcedColumn) -> np.ndarray:
    """The column on its integer grid; a value outside the declared bounds is refused
    (the message names the column and the row, never the value)."""
    c = col.column
    floats = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(floats) | (floats < c.lower) | (floats > c.upper)
    if c.type == "int":
        bad |= floats != np.rint(floats)
    if bad.any():
        row = int(np.argmax(bad)) + 1
        raise DataError(
            f"column {c.name!r}, row {row}: not a number within the declared bounds "
            f"[{c.lower:g}, {c.upper:g}]"
        )
    grid: np.ndarray = np.rint(floats * 10**c.decimals).astype(np.int64)
    return grid


def check_capacity(col: OutsourcedColumn, rows: int) -> None:
    """Every sum a job may take of the column must stay below t/2 in magnitude, so the
    masked sum + mask is exact modulo t (``ensnif_mpc/he/outsource.py``)."""
    bound = math.ceil(col.column.abs_bound * 10**col.column.decimals)
    if rows * bound >= bfv.HALF_T:
        raise InvalidArgument(
            f"column {col.column.name!r}: {rows} rows × bound {bound} on the integer grid "
            f"reaches the BFV plain modulus' half (2^{bfv.HALF_T.bit_length() - 1}); declare "
            "narrower bounds or fewer decimals",
            reason="he_sum_out_of_range",
        )


def key_series(values: np.ndarray, col: OutsourcedColumn) -> dict[str, np.ndarray]:
    """A key column's series: the limbs of each key's hash (``outsource_keys``). An int key
    must be an integer within its declared bounds; every key must be present and distinct
    (messages name the row, never the key)."""
    c = col.column
    raw = np.asarray(values)
    if c.type == "int":
        keys: np.ndarray = _grid(raw, col)
    else:
        keys = np.array([str(v) for v in raw.tolist()], dtype=object)
        missing = np.array([v in ("", "None", "nan") for v in keys.tolist()], dtype=bool)
        if missing.any():
            raise DataError(f"column {c.name!r}, row {int(np.argmax(missing)) + 1}: no key")
    repeat = outsource_keys.first_repeat(keys)
    if repeat:
        raise DataError(
            f"column {c.name!r}, row {repeat}: a key repeats an earlier row's; a key column "
            "must be distinct over the table (aggregate per key before encrypting)"
        )
    parts = outsource_keys.limbs(outsource_keys.key_hashes(keys))
    return dict(zip(outsource_keys.series_names(c.name), parts, strict=True))


def series_values(table: Mapping[str, np.ndarray], col: OutsourcedColumn) -> dict[str, np.ndarray]:
    if col.key:
        return key_series(table[col.column.name], col)
    x = _grid(table[col.column.name], col)
    out = {col.column.name: x}
    if col.bins:
        index = bin_index(x, col.bins, col.column.decimals)
        for b in range(len(col.bins) - 1):
            member = (index == b).astype(np.int64)
            out[f"{col.column.name}@bin{b}"] = member
            out[f"{col.column.name}@binsum{b}"] = member * x
    return out


def frame(ctx_hash: bytes, dataset_id: bytes, seal_bytes: bytes) -> bytes:
    return MAGIC + ctx_hash + dataset_id + seal_bytes


def encrypt_table(
    key: KeyDir,
    dataset: str,
    owner: str,
    table: Mapping[str, np.ndarray],
    columns: Sequence[OutsourcedColumn],
    policy: Mapping[str, Any],
    helper: str = "",
) -> tuple[Manifest, dict[tuple[str, int], bytes]]:
    """The manifest and every framed ciphertext, keyed by (series, chunk). ``helper``: the
    node the owner entrusts the dataset to, signed in the manifest (``extra.helper``); the
    coordinator publishes the dataset only from that node."""
    if not columns:
        raise InvalidArgument("declare at least one numeric column to outsource")
    rows = len(table[columns[0].column.name])
    n = bfv.POLY_DEGREE
    dataset_id = hashlib.sha256(f"{owner}/{dataset}".encode()).digest()
    frames: dict[tuple[str, int], bytes] = {}
    digests: dict[str, tuple[str, ...]] = {}
    for col in columns:
        if not col.key:
            check_capacity(col, rows)
        for name, values in series_values(table, col).items():
            chunks = [values[i : i + n] for i in range(0, max(rows, 1), n)]
            blobs = [
                frame(key.context_hash, dataset_id, bfv.encrypt(key.context, c)) for c in chunks
            ]
            frames |= {(name, i): b for i, b in enumerate(blobs)}
            digests[name] = tuple(hashlib.sha256(b).hexdigest() for b in blobs)
    described = tuple(
        {**asdict(c.column), "bins": list(c.bins), **({"key": True} if c.key else {})}
        for c in columns
    )  # the schema as the catalog shows it
    extra = {"helper": helper} if helper else {}
    manifest = Manifest(
        dataset, owner, rows, key.context_sha256, described, dict(policy), digests, extra=extra
    )
    return manifest, frames


def write(
    directory: Path,
    key: KeyDir,
    manifest: Manifest,
    frames: Mapping[tuple[str, int], bytes],
    owner_key_pem: bytes,
    owner_cert_pem: bytes,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for (name, chunk), blob in frames.items():
        path = directory / "ct" / name / f"{chunk}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    body = manifest.to_bytes()
    (directory / PUBLIC).write_bytes(key.public)
    (directory / OWNER_CERT).write_bytes(owner_cert_pem)
    (directory / SIGNATURE).write_bytes(pki.sign(owner_key_pem, body))
    (directory / MANIFEST).write_bytes(body)


@dataclass(frozen=True)
class StoredDataset:
    """An outsourced dataset directory whose manifest and context were verified."""

    directory: Path
    manifest: Manifest
    public: bytes
    owner_cert_pem: bytes

    @property
    def context_hash(self) -> bytes:
        return bytes.fromhex(self.manifest.context_sha256)

    def context(self) -> ts.Context:
        return bfv.load_public(self.public)

    def chunks(self, ctx: ts.Context, series: str) -> Iterator[ts.BFVVector]:
        """The series' ciphertexts, each checked against the signed manifest first."""
        digests = self.manifest.series.get(series)
        if digests is None:
            raise UnknownColumn(
                f"the outsourced dataset {self.manifest.dataset!r} has no series {series!r}"
            )
        for i, digest in enumerate(digests):
            blob = (self.directory / "ct" / series / f"{i}.bin").read_bytes()
            yield bfv.load_vector(ctx, self.unframe(blob, digest))

    def unframe(self, blob: bytes, digest: str) -> bytes:
        head = len(MAGIC) + 64
        if len(blob) < head or not blob.startswith(MAGIC):
            raise InvalidArgument(
                "a file is not an Ensnif BFV frame", reason="he_ciphertext_invalid"
            )
        if blob[len(MAGIC) : len(MAGIC) + 32] != self.context_hash:
            raise InvalidArgument(
                "a ciphertext was made under another BFV context than the dataset's",
                reason="he_context_mismatch",
            )
        if blob[len(MAGIC) + 32 : head] != self.manifest.dataset_id:
            raise InvalidArgument(
                f"a ciphertext belongs to another dataset than {self.manifest.dataset!r}",
                reason="he_dataset_mismatch",
            )
        if hashlib.sha256(blob).hexdigest() != digest:
            raise CryptoError(
                "a ciphertext does not match the digest its owner signed",
                reason="he_ciphertext_tampered",
            )
        return blob[head:]


def open_stored(directory: Path, ca_pem: bytes) -> StoredDataset:
    """Verify an outsourced dataset: the owner's certificate (consortium CA), its signature
    over the manifest, and that the public context is the one the manifest names."""
    try:
        body = (directory / MANIFEST).read_bytes()
        signature = (directory / SIGNATURE).read_bytes()
        cert = (directory / OWNER_CERT).read_bytes()
        public = (directory / PUBLIC).read_bytes()
    except OSError:
        raise InvalidArgument(
            f"{directory.name} is not an outsourced dataset (manifest, signature, "
            "certificate and context)",
            reason="he_ciphertext_invalid",
        ) from None
    ident = pki.verify_member(cert, ca_pem)
    if ident.role not in OWNER_ROLES:
        raise InvalidArgument(f"{ident.name!r} (role {ident.role}) cannot own a dataset")
    pki.verify_signature(cert, body, signature)
    manifest = Manifest.from_bytes(body)
    if manifest.owner != ident.name:
        raise CryptoError(f"the manifest names owner {manifest.owner!r}, signed by {ident.name!r}")
    if ckks.context_hash(public).hex() != manifest.context_sha256:
        raise InvalidArgument(
            "the stored public context is not the one the manifest names",
            reason="he_context_mismatch",
        )
    return StoredDataset(directory, manifest, public, cert)
