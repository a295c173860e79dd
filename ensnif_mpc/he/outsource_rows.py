"""An outsourced column's rows themselves as a secret-shared input vector (so that MPC
programs, models among them, can use every row, not only totals).

Same three steps as ``ensnif_mpc/he/outsource.py`` (read its docstring first), but per row
and without any secure comparison:

1. The helper H adds to every chunk ciphertext a fresh plaintext mask with every slot
   r_i uniform in [B, t − B), B the column's bound on the integer grid, floods the noise
   and keeps r (one value per row).
2. The owner O decrypts m_i = x_i + r_i. As |x_i| ≤ B, m_i ∈ [0, t): no reduction
   modulo t ever happens, so m_i − r_i = x_i over the integers. O splits each m_i into n
   additive shares and seals share j to party j (as for totals).
3. Every party inputs its share vector; H inputs its share minus r; the sum is x,
   exactly, with no correction step.

Hiding: m_i is uniform on [x_i + B, x_i + t − B), whose statistical distance from the
same interval for any other x'_i is at most 2B/(t − 2B). The owner's refusal below keeps
that at most 2^-ROW_SIGMA per row: B < 2^(57 − ROW_SIGMA) on the grid (2^17 = 131,072,
e.g. amounts up to 1,310.71 at two decimals); a wider column converts its totals only
(``outsource.py``, perfectly hiding). The shares hide as in ``outsource.py``; the flooding
hides the noise as there.

What leaks: the row count (public in the catalog) and, to nobody, anything else.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence

import numpy as np
import tenseal as ts

from ensnif_mpc.errors import CryptoError, InvalidArgument
from ensnif_mpc.he import bfv, outsource, outsource_keys
from ensnif_mpc.he.outsource import MaskedBatch
from ensnif_mpc.he.outsource_table import StoredDataset
from ensnif_mpc.security import mpc_session, sealing

ROW_SIGMA = 40
MAX_ROW_BOUND = 2 ** (bfv.PLAIN_BITS - 1 - ROW_SIGMA)


def row_bound(stored: StoredDataset, series: str) -> int:
    """B for a column's rows on the grid; refused when rows could not hide within 2^-40.
    A key column's limb series (``outsource_keys``) have B = 2^16 − 1."""
    for col in stored.manifest.outsourced_columns():
        if col.key and series in col.series():
            return outsource_keys.LIMB_BOUND
        if col.column.name == series:
            bound: int = math.ceil(col.column.abs_bound * 10**col.column.decimals)
            if bound >= MAX_ROW_BOUND:
                raise InvalidArgument(
                    f"column {series!r}: its bound on the grid ({bound}) is too wide to convert "
                    f"rows with 2^-{ROW_SIGMA} hiding (below {MAX_ROW_BOUND}); convert its "
                    "totals instead, or declare narrower bounds or fewer decimals",
                    reason="he_sum_out_of_range",
                )
            return bound
    raise InvalidArgument(f"rows convert a declared column, not {series!r}")


def _uniform_between(low: int, high: int, n: int) -> np.ndarray:
    """n integers uniform in [low, high) from the OS CSPRNG (rejection on 58-bit draws)."""
    span = high - low
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        raw = np.frombuffer(secrets.token_bytes(16 * n), dtype=np.uint64) >> np.uint64(6)
        out = np.concatenate([out, raw[raw < np.uint64(span)].astype(np.int64)])
    return out[:n] + low


def mask_rows(
    stored: StoredDataset, job_id: str, series: str | Sequence[str]
) -> tuple[MaskedBatch, np.ndarray]:
    """Step 1 at H: every chunk of each of ``series`` (one or several columns of the same
    rows) masked and flooded; H keeps r, one row of masks per series (K × rows)."""
    names = [series] if isinstance(series, str) else list(series)
    bounds = [row_bound(stored, s) for s in names]
    ctx = stored.context()
    rows, n = stored.manifest.rows, bfv.POLY_DEGREE
    padded = -(-rows // n) * n
    blobs, masks = [], np.empty((len(names), rows), dtype=np.int64)
    for k, (name, bound) in enumerate(zip(names, bounds, strict=True)):
        r = _uniform_between(bound, bfv.T - bound, padded)
        for i, chunk in enumerate(stored.chunks(ctx, name)):
            chunk += bfv.centered(r[i * n : (i + 1) * n]).tolist()
            blobs.append(bfv.flooded(ctx, chunk))
        masks[k] = r[:rows]
    batch = MaskedBatch(
        job_id,
        stored.manifest.digest,
        stored.manifest.context_sha256,
        tuple(names),
        tuple(blobs),
        rows,
    )
    return batch, masks[0] if isinstance(series, str) else masks


def _shares(values: np.ndarray, n: int) -> list[np.ndarray]:
    """n additive shares of each value (object ints): n−1 uniform in [0, 2^SHARE_BITS)."""
    parts = []
    for _ in range(n - 1):
        raw = np.frombuffer(secrets.token_bytes(16 * values.size), dtype=np.uint64)
        high = (raw[0::2] >> np.uint64(128 - outsource.SHARE_BITS)).astype(object)
        parts.append((high << 64) + raw[1::2].astype(object))
    parts.append(values.astype(object) - sum(parts, np.zeros(values.size, dtype=object)))
    return parts


# A rows share travels in binary: every share is an integer below 2^(SHARE_BITS + 2) in
# magnitude, written as a signed high word and an unsigned low word (v = high·2^64 + low).
# JSON text of a million 37-digit integers is slower to write, read and seal.
ROWS_MAGIC = b"ENRSH1"
_LOW64 = (1 << 64) - 1


def encode_shares(values: np.ndarray) -> bytes:
    v = np.asarray(values, dtype=object)
    high = np.array(v >> 64, dtype=np.int64)
    low = np.array(v & _LOW64, dtype=np.uint64)
    return ROWS_MAGIC + high.tobytes() + low.tobytes()


def decode_shares(data: bytes) -> np.ndarray:
    """The object integers :func:`encode_shares` wrote; CryptoError if it is not such."""
    body = memoryview(data)[len(ROWS_MAGIC) :]
    if not data.startswith(ROWS_MAGIC) or len(body) % 16:
        raise CryptoError("an outsourced rows share does not decode")
    count = len(body) // 16
    high = np.frombuffer(body, dtype=np.int64, count=count)
    low = np.frombuffer(body, dtype=np.uint64, count=count, offset=8 * count)
    out: np.ndarray = high.astype(object) * (1 << 64) + low.astype(object)
    return out


def share_masked_rows(
    ctx: ts.Context,
    context_sha256: str,
    batch: MaskedBatch,
    peers: Sequence[mpc_session.PeerBinding],
    ca_pem: bytes,
) -> dict[int, bytes]:
    """Step 2 at O for a rows batch (one or several series of the same rows, each
    ⌈rows / N⌉ ciphertexts in order): decrypt, share each value, seal share j to party j.
    Every party's share is the K series' rows one after the other (K·rows values)."""
    if batch.context_sha256 != context_sha256:
        raise InvalidArgument(
            "the masked batch was made under another BFV context than this key's",
            reason="he_context_mismatch",
        )
    chunks = -(-batch.rows // bfv.POLY_DEGREE)
    if not batch.rows or len(batch.blobs) != chunks * len(batch.outputs):
        raise InvalidArgument("not a rows batch", reason="he_ciphertext_invalid")
    for peer in peers:
        mpc_session.verify_peer(batch.job_id, peer, ca_pem)
    per_series = [
        np.concatenate([bfv.decrypt_seal(ctx, b) for b in batch.blobs[k : k + chunks]])
        for k in range(0, len(batch.blobs), chunks)
    ]
    slots = np.concatenate([s[: batch.rows] for s in per_series])
    masked = np.mod(slots, bfv.T)  # m_i = x_i + r_i in [0, t): never reduced
    shares = _shares(masked, len(peers))
    digest = batch.digest
    return {
        peer.index: sealing.seal(
            peer.mpc_cert_pem,
            encode_shares(shares[peer.index]),
            outsource.associated(batch.job_id, peer.index, digest),
        )
        for peer in peers
    }


def helper_row_input(share: Sequence[int] | np.ndarray, masks: np.ndarray) -> np.ndarray:
    """What H secret-shares: its share of each row minus that row's mask (``masks`` one row
    per series, K × rows, in the order of the share's values)."""
    if len(share) != masks.size:
        raise CryptoError("the rows share does not match the helper's masks")
    out: np.ndarray = np.asarray(share, dtype=object) - masks.reshape(-1).astype(object)
    return out
