"""HE → secret sharing: how an outsourced dataset's aggregates enter an MPC job.

Who: the helper node H stores the owner's ciphertexts (``outsource_table.py``) and is an
MPC party of the job; the owner O runs no node, only its client (``ensnif outsource
serve``), which holds the BFV secret key; the job's MPC parties P_0 … P_(n-1) include H.

Steps, for K outputs (a column's sum, per-bin counts, per-bin sums):

1. H (:func:`mask_outputs`) adds every chunk of the output's series under encryption,
   giving a ciphertext of N slot partials s_k ∈ Z_t^N; adds a fresh plaintext mask
   r_k uniform in Z_t^N (the OS CSPRNG); floods the noise (``bfv.flooded``); keeps
   R_k = Σ_i r_k,i mod t and hands O the K masked ciphertexts (:class:`MaskedBatch`).
2. O (:func:`share_masked`) decrypts m_k = s_k + r_k mod t slot-wise, sums the slots,
   M_k = Σ_i m_k,i mod t ≡ S_k + R_k (S_k the output's true value), and splits M_k into
   n additive integer shares a_k,0 … a_k,n-1 (all but the last uniform in
   [0, 2^(58+SIGMA)), the last M_k minus their sum). It seals share j to the per-job MPC
   certificate of party j, after checking that party's binding for this job
   (``mpc_session.verify_peer``), with the job, index and batch digest as associated data.
3. H forwards the sealed shares to the parties (it cannot open them). In the MPC every
   party inputs its share, H inputs its share minus R_k, and the sum is
   d_k = M_k − R_k ∈ (−t, t) with d_k ≡ S_k mod t. Since |S_k| < t/2 (the capacity check
   at encryption: rows × bound < t/2), S_k is d_k − t if d_k > t/2, d_k + t if
   d_k < −t/2, and d_k otherwise: two secure comparisons per output
   (``protocols/he_outsourced.py``). The MPC continues with S_k as with any owner's input.

What each party learns:

* H: ciphertexts, its own masks, its additive share a_H (uniform, independent of S) and
  the public row count. Nothing about a value (IND-CPA of BFV; a_H is independent of M).
* O: m_k = s_k + r_k mod t per slot, which is uniform on Z_t^N and independent of s_k
  (a one-time pad mod t), and the noise of a flooded ciphertext, within statistical
  distance N·2^(e−FLOOD_BITS) of a distribution independent of H's computation and masks
  (e bits of computation noise). So O learns neither the slot partials nor the total
  before the MPC releases it, nor H's masks.
* Any other party P_j: its additive share a_j, uniform within 2^-SIGMA in statistical
  distance of a value independent of M (and so of S).
* Any coalition of fewer than n parties (O not among them): at most n − 1 shares of an
  n-of-n additive sharing of M, plus R if H is in it: nothing about S beyond 2^-SIGMA.
  O colluding with H learns S, which O owns anyway; O receives no share of any other
  member's data, so the MPC's threshold for everyone else is unchanged.
* The coordinator: relays nothing of this (the batch and sealed shares go between H and
  O over mTLS); it sees that a job reads an outsourced dataset, as in the catalog.

Why BFV and not CKKS: O decrypts values chosen by H's computation; CKKS decryption
returns the noise with the value (a key-recovery oracle, Li–Micciancio 2021), BFV returns
an exact residue, and flooding hides the noise that remains.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import tenseal as ts

from ensnif_mpc.errors import CryptoError, InvalidArgument, Unavailable
from ensnif_mpc.he import bfv
from ensnif_mpc.he.outsource_table import StoredDataset
from ensnif_mpc.security import mpc_session, sealing

_T = TypeVar("_T")
SIGMA = 64  # statistical hiding of the additive shares, in bits
SHARE_BITS = bfv.PLAIN_BITS + SIGMA
_MAGIC = b"ENMASK1"


@dataclass(frozen=True)
class MaskedBatch:
    """What H hands O for one job: K masked, flooded ciphertexts (SEAL bytes)."""

    job_id: str
    dataset_digest: str  # the manifest's digest: the exact dataset these come from
    context_sha256: str
    outputs: tuple[str, ...]  # the series each ciphertext sums
    blobs: tuple[bytes, ...]
    rows: int = 0  # 0: one total per ciphertext; else the rows of one series, chunk by chunk

    def to_bytes(self) -> bytes:
        head = json.dumps(
            {
                "job_id": self.job_id,
                "dataset_digest": self.dataset_digest,
                "context_sha256": self.context_sha256,
                "outputs": list(self.outputs),
                "sizes": [len(b) for b in self.blobs],
                "rows": self.rows,
            }
        ).encode()
        return _MAGIC + struct.pack("<I", len(head)) + head + b"".join(self.blobs)

    @classmethod
    def from_bytes(cls, data: bytes) -> MaskedBatch:
        try:
            if not data.startswith(_MAGIC):
                raise ValueError("magic")
            (size,) = struct.unpack_from("<I", data, len(_MAGIC))
            start = len(_MAGIC) + 4
            head = json.loads(data[start : start + size])
            offset, blobs = start + size, []
            for n in head["sizes"]:
                blobs.append(data[offset : offset + n])
                offset += n
            rows = int(head.get("rows", 0))
            if offset != len(data) or (not rows and len(blobs) != len(head["outputs"])):
                raise ValueError("length")
            return cls(
                str(head["job_id"]),
                str(head["dataset_digest"]),
                str(head["context_sha256"]),
                tuple(head["outputs"]),
                tuple(blobs),
                rows,
            )
        except (ValueError, KeyError, TypeError, struct.error):
            raise InvalidArgument(
                "not a masked batch of an outsourced dataset", reason="he_ciphertext_invalid"
            ) from None

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.to_bytes()).digest()


@dataclass(frozen=True)
class HelperMasks:
    """H's secret of one job: R_k per output (mod t). Kept in the worker, never sent."""

    totals: tuple[int, ...]


SUMS_DIR, SUMS_INDEX = "sums", "sums.json"


def _add_chunks(stored: StoredDataset, ctx: ts.Context, series: str) -> ts.BFVVector:
    chunks = stored.chunks(ctx, series)
    total = next(chunks)
    for chunk in chunks:
        total += chunk
    return total


def precompute_sums(stored: StoredDataset) -> int:
    """At accept time, the helper adds every series' chunks once and keeps the sums (its own
    derived state, indexed by the manifest's digest and each file's SHA-256), so a job loads
    one ciphertext per output instead of every chunk. Returns the number of series."""
    ctx = stored.context()
    out = stored.directory / SUMS_DIR
    out.mkdir(exist_ok=True)
    index: dict[str, object] = {"manifest_sha256": stored.manifest.digest}
    digests = {}
    for series in stored.manifest.series:
        blob = bytes(_add_chunks(stored, ctx, series).serialize())
        (out / f"{series}.bin").write_bytes(blob)
        digests[series] = hashlib.sha256(blob).hexdigest()
    index["series"] = digests
    (stored.directory / SUMS_INDEX).write_text(json.dumps(index, indent=1))
    return len(digests)


def series_sum(stored: StoredDataset, ctx: ts.Context, series: str) -> ts.BFVVector:
    """The sum of a series' chunks: from the helper's precomputed sums when they belong to
    this exact manifest and are intact, else added now from the verified chunks."""
    try:
        index = json.loads((stored.directory / SUMS_INDEX).read_text())
        blob = (stored.directory / SUMS_DIR / f"{series}.bin").read_bytes()
    except (OSError, ValueError):
        return _add_chunks(stored, ctx, series)
    fresh = index.get("manifest_sha256") == stored.manifest.digest
    if fresh and index.get("series", {}).get(series) == hashlib.sha256(blob).hexdigest():
        return bfv.load_vector(ctx, blob)
    return _add_chunks(stored, ctx, series)


def mask_outputs(
    stored: StoredDataset, job_id: str, outputs: Sequence[str]
) -> tuple[MaskedBatch, HelperMasks]:
    """Step 1 at H: the K outputs' slot partials, masked and flooded, and H's mask totals."""
    ctx = stored.context()
    blobs, totals = [], []
    for series in outputs:
        summed = series_sum(stored, ctx, series)
        mask = bfv.uniform_mod_t(bfv.POLY_DEGREE)
        summed += bfv.centered(mask).tolist()
        blobs.append(bfv.flooded(ctx, summed))
        totals.append(int(mask.astype(object).sum()) % bfv.T)
    batch = MaskedBatch(
        job_id, stored.manifest.digest, stored.manifest.context_sha256, tuple(outputs), tuple(blobs)
    )
    return batch, HelperMasks(tuple(totals))


def masked_totals(ctx: ts.Context, batch: MaskedBatch) -> list[int]:
    """Step 2 at O, first half: M_k = Σ_i (s_k,i + r_k,i) mod t."""
    return [int(bfv.decrypt_seal(ctx, b).astype(object).sum()) % bfv.T for b in batch.blobs]


def additive_shares(totals: Sequence[int], n: int) -> list[list[int]]:
    """n additive integer shares of each total: n−1 uniform in [0, 2^SHARE_BITS), one the rest."""
    out: list[list[int]] = [[] for _ in range(n)]
    for total in totals:
        parts = [secrets.randbits(SHARE_BITS) for _ in range(n - 1)]
        parts.append(total - sum(parts))
        for j, part in enumerate(parts):
            out[j].append(part)
    return out


def associated(job_id: str, index: int, batch_digest: bytes) -> bytes:
    return b"ensnif-outsourced-share-v1|" + f"{job_id}|{index}|".encode() + batch_digest


def share_masked(
    ctx: ts.Context,
    context_sha256: str,
    batch: MaskedBatch,
    peers: Sequence[mpc_session.PeerBinding],
    ca_pem: bytes,
) -> dict[int, bytes]:
    """Step 2 at O: decrypt the masked batch, share it, seal share j to party j.

    Refused if the batch was made for another context, or if any peer's per-job
    certificate is not bound to that party for this job (a relay cannot slip in a key).
    """
    if batch.context_sha256 != context_sha256:
        raise InvalidArgument(
            "the masked batch was made under another BFV context than this key's",
            reason="he_context_mismatch",
        )
    for peer in peers:
        mpc_session.verify_peer(batch.job_id, peer, ca_pem)
    shares = additive_shares(masked_totals(ctx, batch), len(peers))
    digest = batch.digest
    return {
        peer.index: sealing.seal(
            peer.mpc_cert_pem,
            json.dumps([str(v) for v in shares[peer.index]]).encode(),
            associated(batch.job_id, peer.index, digest),
        )
        for peer in peers
    }


@dataclass(frozen=True)
class Forwarded:
    """What H forwards to every party over the MPC links: the owner's sealed shares and
    the batch's digest and value count (each party opens only its own share; a wrong
    digest makes the opening fail, so H cannot swap batches unseen)."""

    sealed: dict[int, bytes]
    batch_digest: bytes
    count: int

    @classmethod
    def of(cls, batch: MaskedBatch, sealed: dict[int, bytes]) -> Forwarded:
        count = batch.rows * len(batch.outputs) if batch.rows else len(batch.outputs)
        return cls(sealed, batch.digest, count)

    def only(self, index: int) -> Forwarded:
        """What party ``index`` needs of it: its own sealed share (a rows conversion's shares
        are megabytes each; no party receives another's)."""
        return Forwarded({index: self.sealed[index]}, self.batch_digest, self.count)


def open_share(key_pem: bytes, forwarded: Forwarded, job_id: str, index: int) -> Any:
    """Step 3 at party ``index``: its additive share, sealed to its per-job key (a list of
    ints for totals; for rows, ``outsource_rows``' binary form, an object array)."""
    from ensnif_mpc.he import outsource_rows

    blob = forwarded.sealed.get(index)
    if blob is None:
        raise CryptoError(f"the owner sealed no share for party {index}")
    plain = sealing.unseal(key_pem, blob, associated(job_id, index, forwarded.batch_digest))
    values: Any
    if plain.startswith(outsource_rows.ROWS_MAGIC):
        values = outsource_rows.decode_shares(plain)
    else:
        try:
            values = [int(v) for v in json.loads(plain)]
        except (ValueError, TypeError):
            raise CryptoError("an outsourced share does not decode") from None
    if len(values) != forwarded.count:
        raise CryptoError("an outsourced share has the wrong number of values")
    return values


def helper_input(share: Sequence[int], masks: HelperMasks) -> list[int]:
    """What H secret-shares: its own additive share minus R_k."""
    return [a - r for a, r in zip(share, masks.totals, strict=True)]


def recover(d: Sequence[int]) -> list[int]:
    """The plaintext rule the MPC evaluates on d_k = Σ inputs ∈ (−t, t): the centered
    residue S_k (a reference for tests; the MPC computes it with secure comparisons)."""
    out = []
    for v in d:
        if not -bfv.T < v < bfv.T:
            raise ValueError("d outside (−t, t)")
        out.append(v - bfv.T if v > bfv.HALF_T else v + bfv.T if v < -bfv.HALF_T else v)
    return out


def wait_for_owner(ready: Callable[[], _T | None], window_s: float, poll_s: float = 0.05) -> _T:
    """The owner's sealed shares, once its client has sent them; ``owner_offline`` when
    the approval window passes first. The helper waits before its MPC connects, so an
    owner that never comes ends the job before anything is computed or opened; the wait
    is the same whatever the data (it depends only on the owner's presence)."""
    deadline = time.monotonic() + window_s
    while True:
        got = ready()
        if got is not None:
            return got
        if time.monotonic() >= deadline:
            raise Unavailable(
                f"the dataset's owner did not come online within {window_s:g} s "
                "(`ensnif outsource serve`)",
                reason="owner_offline",
            )
        time.sleep(poll_s)
