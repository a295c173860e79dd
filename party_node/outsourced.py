"""The helper node's store of outsourced datasets (docs/homomorphic.md, "Outsourced datasets").

A member without a node uploads the directory ``ensnif outsource encrypt`` wrote. The node
keeps it under ``<state_dir>/outsourced/<owner>/<dataset>/`` only after checking, before
anything replaces what it held:

* the caller is the manifest's owner (its identity comes from the TLS certificate, never
  from a field) and holds an analyst or party certificate of the consortium CA;
* the owner's certificate in the directory is the caller's, and its signature over the
  manifest verifies;
* the public context is the one the manifest names, and it holds no secret key;
* every ciphertext the manifest lists is present, framed for this context and dataset and
  matches its signed digest; nothing else was sent (paths are checked against the layout,
  so a path can never leave the staging directory).

Then it adds every series' chunks once (``outsource.precompute_sums``) so a job loads one
ciphertext per output. The node can read none of it: it holds no key. TenSEAL is imported
here (a node may, the coordinator may not).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ensnif_mpc.data.schema import Column, DatasetSchema
from ensnif_mpc.errors import InvalidArgument, PermissionDenied
from ensnif_mpc.he import outsource, outsource_request as requests, outsource_table as table
from ensnif_mpc.he.outsource_request import ConversionRequest
from ensnif_mpc.security.pki import Identity, identity_of, parse_cert
from party_node.outsourced_admission import OwnerPolicy

log = logging.getLogger(__name__)

# 128 MB per dataset by default: 100,000 rows of one column with 8 bins take about 88 MB.
MAX_UPLOAD_BYTES = 128 * 2**20
_TOP = frozenset({table.MANIFEST, table.SIGNATURE, table.OWNER_CERT, table.PUBLIC})
# Neither a series nor a name may start with a dot: no "." or ".." path component, ever.
_CHUNK = re.compile(r"ct/[A-Za-z0-9_@-][A-Za-z0-9_.@-]{0,199}/[0-9]{1,9}\.bin")
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class Accepted:
    """What the node holds of one outsourced dataset (published; no ciphertext)."""

    owner: str
    dataset: str
    rows: int
    manifest_sha256: str
    context_sha256: str
    ciphertexts: int
    columns_json: str
    policy_json: str


def _accepted(stored: table.StoredDataset) -> Accepted:
    m = stored.manifest
    return Accepted(
        owner=m.owner,
        dataset=m.dataset,
        rows=m.rows,
        manifest_sha256=m.digest,
        context_sha256=m.context_sha256,
        ciphertexts=sum(len(d) for d in m.series.values()),
        columns_json=json.dumps(list(m.columns), sort_keys=True),
        policy_json=json.dumps(dict(m.policy), sort_keys=True),
    )


@dataclass(frozen=True)
class HostedDataset:
    """An outsourced dataset this node holds, as its admission needs it."""

    directory: Path
    manifest_sha256: str
    columns: tuple[Column, ...]
    rows: int
    policy: OwnerPolicy
    # The bin edges the owner declared per column (signed): a histogram takes exactly these.
    bins: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    # The columns the owner encrypted as join keys (the limbs of their hashes; signed).
    keys: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Published:
    """One catalog entry for an outsourced dataset, with the owner's signed files."""

    schema: DatasetSchema
    manifest: bytes
    signature: bytes
    owner_cert_pem: bytes


class OutsourcedStore:
    def __init__(
        self,
        root: Path,
        ca_pem: bytes,
        jobs_root: Path | None = None,
        max_bytes: int = MAX_UPLOAD_BYTES,
    ) -> None:
        self.root = root
        self.ca_pem = ca_pem
        self.jobs_root = jobs_root  # <state_dir>/jobs: where workers leave conversion requests
        self.max_bytes = max_bytes
        self._lock = threading.Lock()  # one replacement, one answer at a time

    def accept(self, caller: Identity, files: Iterable[tuple[str, bytes]]) -> Accepted:
        """Stage the uploaded files, verify everything, then replace the owner's dataset."""
        if caller.role not in table.OWNER_ROLES:
            raise PermissionDenied(
                f"{caller.name!r} has role {caller.role!r}; an outsourced dataset is uploaded "
                "by its owner with an analyst or party certificate"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            self._receive(staging, files)
            stored = table.open_stored(staging, self.ca_pem)
            self._check_owner(caller, stored)
            self._check_complete(staging, stored)
            outsource.precompute_sums(stored)
            accepted = _accepted(stored)
            self._replace(staging, accepted)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info(
            "stored outsourced dataset %s/%s (%d rows, manifest %s)",
            accepted.owner,
            accepted.dataset,
            accepted.rows,
            accepted.manifest_sha256[:16],
        )
        return accepted

    def _receive(self, staging: Path, files: Iterable[tuple[str, bytes]]) -> None:
        total = 0
        for path, data in files:
            if path not in _TOP and not _CHUNK.fullmatch(path):
                raise InvalidArgument(
                    f"upload path {path[:80]!r} is not part of an outsourced dataset's layout"
                )
            total += len(data)
            if total > self.max_bytes:
                raise InvalidArgument(
                    f"the upload exceeds this node's limit of {self.max_bytes} bytes per dataset"
                )
            target = staging / path
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("ab") as out:  # a file may come in several chunks, in order
                out.write(data)

    def _check_owner(self, caller: Identity, stored: table.StoredDataset) -> None:
        signer = identity_of(parse_cert(stored.owner_cert_pem))
        if (signer.name, stored.manifest.owner) != (caller.name, caller.name):
            raise PermissionDenied(
                f"{caller.name!r} may upload only its own datasets (this one is signed by "
                f"{signer.name!r} for owner {stored.manifest.owner!r})"
            )
        for name in (stored.manifest.owner, stored.manifest.dataset):
            if not _NAME.fullmatch(name):
                raise InvalidArgument(f"{name[:80]!r} is not a valid owner or dataset name")

    def _check_complete(self, staging: Path, stored: table.StoredDataset) -> None:
        """Every listed ciphertext verifies (frame, context, dataset, digest); no extra file."""
        listed = {
            f"ct/{series}/{i}.bin"
            for series, digests in stored.manifest.series.items()
            for i in range(len(digests))
        }
        sent = {str(p.relative_to(staging)) for p in (staging / "ct").rglob("*") if p.is_file()}
        if sent != listed:
            raise InvalidArgument(
                f"the upload has {len(sent)} ciphertext files; the signed manifest lists "
                f"{len(listed)}",
                reason="he_ciphertext_invalid",
            )
        ctx = stored.context()
        for series in stored.manifest.series:
            for _ in stored.chunks(ctx, series):
                pass

    def _replace(self, staging: Path, accepted: Accepted) -> None:
        final = self.root / accepted.owner / accepted.dataset
        with self._lock:
            final.parent.mkdir(parents=True, exist_ok=True)
            old = final.with_name(f".old-{accepted.dataset}-{uuid.uuid4().hex}")
            if final.exists():
                final.rename(old)
            staging.rename(final)
            shutil.rmtree(old, ignore_errors=True)

    def stored(self) -> list[Accepted]:
        out: list[Accepted] = []
        if not self.root.is_dir():
            return out
        for directory in sorted(self.root.glob("*/*")):
            if directory.name.startswith("."):
                continue
            try:
                out.append(_accepted(table.open_stored(directory, self.ca_pem)))
            except Exception:  # a damaged directory is logged, never served
                log.exception("outsourced dataset %s does not verify", directory.name)
        return out

    def path_of(self, owner: str, dataset: str) -> Path:
        return self.root / owner / dataset

    def hosted(self, owner: str, dataset: str) -> HostedDataset | None:
        """The outsourced dataset ``owner/dataset`` if this node holds it, verified again
        (owner's certificate, signature, context), with the policy the owner signed."""
        if not (_NAME.fullmatch(owner) and _NAME.fullmatch(dataset)):
            return None
        directory = self.path_of(owner, dataset)
        if not (directory / table.MANIFEST).is_file():
            return None
        m = table.open_stored(directory, self.ca_pem).manifest
        return HostedDataset(
            directory,
            m.digest,
            tuple(c.column for c in m.outsourced_columns()),
            m.rows,
            OwnerPolicy.from_manifest(m.owner, m.dataset, m.policy),
            {c.column.name: c.bins for c in m.outsourced_columns() if c.bins},
            frozenset(c.column.name for c in m.outsourced_columns() if c.key),
        )

    def entries(self, host: str) -> list[Published]:
        """What this node publishes in the catalog for each dataset it holds: the schema
        under the owner's name with this node as host, and the owner's signed files exactly
        as uploaded, so the coordinator checks the owner entrusted it here."""
        out: list[Published] = []
        for accepted in self.stored():
            directory = self.path_of(accepted.owner, accepted.dataset)
            try:
                manifest = table.Manifest.from_bytes((directory / table.MANIFEST).read_bytes())
                proof = tuple(
                    (directory / n).read_bytes()
                    for n in (table.MANIFEST, table.SIGNATURE, table.OWNER_CERT)
                )
            except (OSError, InvalidArgument):
                log.exception("outsourced dataset %s is unreadable", directory.name)
                continue
            schema = DatasetSchema(
                accepted.owner,
                accepted.dataset,
                tuple(c.column for c in manifest.outsourced_columns()),
                accepted.rows,
                "outsourced (BFV)",
                host=host,
                outsourced_sha256=accepted.manifest_sha256,
            )
            out.append(Published(schema, proof[0], proof[1], proof[2]))
        return out

    # -- conversions: a job's worker waits for the owner ---------------------------------

    def pending(self, caller: Identity) -> list[tuple[ConversionRequest, bytes]]:
        """The caller's unanswered conversion requests (only for datasets it owns)."""
        out: list[tuple[ConversionRequest, bytes]] = []
        if self.jobs_root is None or not self.jobs_root.is_dir():
            return out
        for job_dir in sorted(self.jobs_root.iterdir()):
            try:
                found = requests.read_request(job_dir)
            except (OSError, InvalidArgument):
                continue
            if found and found[0].owner == caller.name and not requests.answered(job_dir):
                out.append(found)
        return out

    def answer(
        self, caller: Identity, job_id: str, sealed: dict[int, bytes] | None, refusal: str = ""
    ) -> None:
        """Record the owner's answer for its worker: sealed shares (one per party) or a
        refusal. Only the dataset's owner answers, once."""
        if self.jobs_root is None or not _NAME.fullmatch(job_id):
            raise InvalidArgument("no conversion of that job is pending here")
        job_dir = self.jobs_root / job_id
        with self._lock:
            try:
                found = requests.read_request(job_dir)
            except (OSError, InvalidArgument):
                found = None
            if found is None or found[0].owner != caller.name or requests.answered(job_dir):
                raise PermissionDenied(f"{caller.name!r} has no pending conversion for {job_id}")
            request = found[0]
            if sealed is not None and set(sealed) != {p.index for p in request.peers}:
                raise InvalidArgument("the answer must carry one sealed share per MPC party")
            requests.write_answer(job_dir, sealed, refusal)
        log.info(
            "owner %s %s job %s", caller.name, "refused" if sealed is None else "answered", job_id
        )
