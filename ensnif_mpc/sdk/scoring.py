"""The analyst's side of encrypted scoring: encrypt, stream, verify, decrypt.

    with Client(ClientProfile.load()) as c:
        scores = c.score("churn", rows)          # rows: (n, features) floats
        scores.values                            # decrypted here, nowhere else

The key: a CKKS context made at the first use in ``key_dir`` (default: ``he/<params>``
beside the analyst's consortium key) and kept there (ensnif_mpc/he/keys.py); only its
public part (parameters and relinearization keys) is sent. Rows are checked here before
anything is encrypted: the feature count against the catalog, every value finite and
inside both what the CKKS parameters encode and the model's declared feature bounds (a
row outside them could push the logit outside the range the sigmoid polynomial is
fitted on). A refused row is named by its position only, never by its value.

The stream (ensnif/v1/scoring.proto) is a generator that gRPC drains in its own thread:
batch k+1 is encrypted while the model owner's node evaluates batch k. Each result
must carry the owner's node signature over the request's nonce, its batch and its
digest, checked against the owner's certificate from the catalog (issued by the
consortium CA), before it is decrypted.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ensnif_mpc.errors import CryptoError, InvalidArgument, NotFound
from ensnif_mpc.gen.ensnif.v1 import scoring_pb2 as spb
from ensnif_mpc.he import ckks, keys, scoring
from ensnif_mpc.he.sigmoid import sigmoid
from ensnif_mpc.security import pki

if TYPE_CHECKING:
    from ensnif_mpc.sdk.client import Client

CONTEXT_CHUNK = 1 << 20


@dataclass(frozen=True)
class ScoreStats:
    rows: int
    batches: int
    context_bytes: int
    ciphertext_bytes: int  # sent: every feature ciphertext of every batch
    result_bytes: int
    seconds: float

    @property
    def bytes_per_row(self) -> float:
        return self.ciphertext_bytes / max(self.rows, 1)


@dataclass(frozen=True)
class Scores:
    values: npt.NDArray[np.float64]
    model: spb.ModelInfo
    rows_used: int
    stats: ScoreStats


def default_key_dir(client: Client, params: ckks.ParamSet) -> Path:
    return Path(client.profile.tls.key).parent / "he" / params.name


def find_model(models: list[spb.ModelInfo], name: str, party: str = "") -> spb.ModelInfo:
    found = [m for m in models if m.name == name and (not party or m.party == party)]
    if not found:
        where = f" at {party}" if party else ""
        raise NotFound(f"no model {name!r}{where} in the catalog", reason="unknown_model")
    if len(found) > 1:
        owners = ", ".join(sorted(m.party for m in found))
        raise InvalidArgument(f"model {name!r} is registered by {owners}: name one with party")
    return found[0]


def check_rows(model: spb.ModelInfo, rows: npt.NDArray[np.float64]) -> None:
    """Refuse, before encrypting, rows the model or the parameters cannot take."""
    if rows.ndim != 2 or rows.shape[1] != model.features:
        got = rows.shape[1] if rows.ndim == 2 else rows.ndim
        raise InvalidArgument(
            f"the rows have {got} features; model {model.name!r} takes {model.features}",
            reason="he_feature_count",
        )
    if rows.shape[0] == 0:
        raise InvalidArgument("no rows to score")
    limit = ckks.param_set(model.params).max_magnitude
    bad = ~np.isfinite(rows) | (np.abs(rows) > limit)
    if model.feature_low:
        lo = np.asarray(model.feature_low)
        hi = np.asarray(model.feature_high)
        bad |= (rows < lo) | (rows > hi)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        bounds = (
            f"the model's feature bounds [{model.feature_low[c]:g}, {model.feature_high[c]:g}]"
            if model.feature_low
            else f"what {model.params} encodes (|x| <= {limit:g})"
        )
        raise InvalidArgument(
            f"row {r + 1}, feature {c + 1}: the value is not finite or lies outside {bounds} "
            f"({int(bad.sum())} values refused; nothing was sent)",
            reason="he_input_out_of_range",
        )


def _requests(
    key: keys.KeyDir,
    header: spb.ScoreHeader,
    rows: npt.NDArray[np.float64],
    slots: int,
    signing_key: bytes,
    sent: list[int],
) -> Iterator[spb.ScoreRequest]:
    yield spb.ScoreRequest(header=header)
    for i in range(0, len(key.public), CONTEXT_CHUNK):
        yield spb.ScoreRequest(context_chunk=key.public[i : i + CONTEXT_CHUNK])
    for b, (start, n) in enumerate(scoring.batches(rows.shape[0], slots)):
        blobs = ckks.encrypt_columns(key.context, key.context_hash, rows[start : start + n].T)
        for j, blob in enumerate(blobs):
            sent[0] += len(blob)
            yield spb.ScoreRequest(ciphertext=spb.CiphertextChunk(batch=b, feature=j, data=blob))
        digest = scoring.batch_digest(blobs)
        message = scoring.seal_message(header.nonce, key.context_hash, b, n, digest)
        yield spb.ScoreRequest(
            seal=spb.BatchSeal(
                batch=b, rows=n, digest=digest, signature=pki.sign(signing_key, message)
            )
        )


def score(
    client: Client,
    model: str,
    rows: npt.ArrayLike,
    party: str = "",
    key_dir: Path | None = None,
    n_threads: int = ckks.DEFAULT_THREADS,
) -> Scores:
    """Score ``rows`` against ``model`` (of ``party``, if several members register the
    name): encrypted here, evaluated at the model's owner, decrypted here."""
    started = time.perf_counter()
    info = find_model(client.models(party), model, party)
    x = np.asarray(rows, dtype=np.float64)
    check_rows(info, x)
    params = ckks.param_set(info.params)
    key = keys.load_or_create_ckks(key_dir or default_key_dir(client, params), params, n_threads)
    owner_cert = _owner_certificate(client, info.party)
    signing_key = client.profile.tls.key.read_bytes()
    nonce = secrets.token_hex(16)
    n = int(x.shape[0])
    message = scoring.header_message(
        info.party, info.name, params.name, key.context_hash, n, info.features, nonce
    )
    header = spb.ScoreHeader(
        party=info.party,
        model=info.name,
        params=params.name,
        context_sha256=key.context_hash,
        rows=n,
        features=info.features,
        nonce=nonce,
        analyst_certificate_pem=client.profile.tls.cert.read_text(),
        signature=pki.sign(signing_key, message),
    )
    sent = [0]
    requests = _requests(key, header, x, params.slots, signing_key, sent)
    out = np.empty(n, dtype=np.float64)
    received, batches, rows_used = 0, 0, 0
    plan = scoring.batches(n, params.slots)
    stream = client.score_stream(requests)
    try:
        for msg in stream:
            if msg.WhichOneof("part") == "accepted":
                rows_used = int(msg.accepted.rows_used)
                continue
            r = msg.result
            if r.batch != batches or r.batch >= len(plan) or r.rows != plan[r.batch][1]:
                raise CryptoError(
                    "a result arrived out of order or for other rows",
                    reason="he_ciphertext_tampered",
                )
            try:
                pki.verify_signature(
                    owner_cert,
                    scoring.result_message(nonce, r.batch, r.rows, r.ciphertext),
                    r.signature,
                )
            except CryptoError:
                raise CryptoError(
                    f"result {r.batch} does not carry {info.party}'s signature",
                    reason="he_ciphertext_tampered",
                ) from None
            start, count = plan[r.batch]
            (values,) = ckks.decrypt(key.context, key.context_hash, [r.ciphertext])
            out[start : start + count] = values[:count]
            received += len(r.ciphertext)
            batches += 1
    finally:
        stream.close()
    if info.kind == "logistic" and info.sigmoid_at == "analyst":
        out = sigmoid(out)  # the node returned the logit: the exact score, here
    if batches != len(plan):
        raise CryptoError(
            f"{batches} of {len(plan)} results arrived", reason="he_ciphertext_tampered"
        )
    stats = ScoreStats(
        n, batches, len(key.public), sent[0], received, time.perf_counter() - started
    )
    return Scores(out, info, rows_used, stats)


def _owner_certificate(client: Client, party: str) -> str:
    ca = client.profile.tls.ca.read_bytes()
    for p in client.parties():
        if p.name == party:
            ident = pki.verify_member(p.certificate_pem, ca, role="party")
            if ident.name != party:
                raise CryptoError(f"the catalog's certificate for {party!r} names {ident.name!r}")
            return str(p.certificate_pem)
    raise NotFound(f"no registered party {party!r}", reason="unknown_party")
