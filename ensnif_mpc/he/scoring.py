"""Encrypted scoring: a linear or logistic model applied to CKKS-encrypted rows.

Who provides what: the analyst encrypts its rows under its own key, one ciphertext per
feature holding up to ``slots`` rows (rows in the slots: the "column" layout of
docs/homomorphic.md); the model owner's node holds the weights in the clear and
evaluates z = Σ_j w_j·ct_j + b, then for a logistic model the odd cubic of
:mod:`ensnif_mpc.he.sigmoid`. Only additions, plaintext-scalar products and two
ciphertext products: no rotation, so no Galois keys.

What is revealed: to the model owner, the number of rows and features (the sizes of
the ciphertexts), nothing of their values (CKKS is IND-CPA under RLWE). To the analyst,
the scores, which reveal what scores reveal about a model (d+1 scores of a linear model
determine it; the owner's row quota limits this). Slots past a partial batch's declared
rows are zeroed by a plaintext mask before the model's weights touch them, so an
analyst learns exactly as many scores as it declared and was charged for.

The messages each side signs (:func:`header_message`, :func:`seal_message`,
:func:`result_message`) bind every batch to the request's nonce, the public context's
hash and the ciphertexts' digests, so a relay that alters, reorders or splices
ciphertexts or results is detected.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import tenseal as ts

from ensnif_mpc.errors import InvalidArgument
from ensnif_mpc.he import ckks
from ensnif_mpc.he.sigmoid import SigmoidPoly, fit

KINDS = ("linear", "logistic")
#: Where a logistic model's sigmoid is applied: by the node, as the stated cubic on the
#: ciphertexts ("node"), or exactly by the analyst's client on the decrypted logit
#: ("analyst"). σ is a bijection, so the logit tells the analyst exactly what an exact
#: score would; the owner chooses (the cubic's error against exactness and speed).
SIGMOID_AT = ("node", "analyst")


@dataclass(frozen=True)
class Model:
    """A model as its owner's node holds it (the weights never leave the node)."""

    name: str
    kind: str
    weights: tuple[float, ...]
    bias: float
    input_range: tuple[float, float]  # the declared logit range (logistic)
    sigmoid_at: str = "node"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidArgument(f"model kind must be one of {', '.join(KINDS)}")
        if self.sigmoid_at not in SIGMOID_AT:
            raise InvalidArgument(f"the sigmoid is applied at one of {', '.join(SIGMOID_AT)}")
        if not self.weights:
            raise InvalidArgument("a model needs at least one weight")
        values = (*self.weights, self.bias, *self.input_range)
        if not all(math.isfinite(v) for v in values):
            raise InvalidArgument("model weights, bias and input range must be finite")

    @property
    def features(self) -> int:
        return len(self.weights)

    @property
    def node_sigmoid(self) -> bool:
        return self.kind == "logistic" and self.sigmoid_at == "node"

    @property
    def params(self) -> ckks.ParamSet:
        return ckks.LOGISTIC if self.node_sigmoid else ckks.LINEAR

    def sigmoid(self) -> SigmoidPoly | None:
        """The cubic the node evaluates (None: the node returns the logit)."""
        return fit(*self.input_range) if self.node_sigmoid else None

    def plaintext(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """What the encrypted evaluation computes, in the clear (its tests' reference):
        the cubic of the logit, or the logit itself when the node applies no sigmoid."""
        z: npt.NDArray[np.float64] = rows @ np.asarray(self.weights) + self.bias
        poly = self.sigmoid()
        return z if poly is None else poly(z)


def _combine(
    vectors: Sequence[ts.CKKSVector], weights: npt.NDArray[np.float64], bias: float, mask: int
) -> ts.CKKSVector:
    """Σ_j w_j·v_j + b; with ``mask`` < slots, as plaintext vectors zero past ``mask``."""
    if mask:
        ones = np.ones(mask)
        acc = vectors[0] * (weights[0] * ones).tolist()
        for w, v in zip(weights[1:], vectors[1:], strict=True):
            acc += v * (w * ones).tolist()
        return acc + (bias * ones).tolist()
    acc = vectors[0] * float(weights[0])
    for w, v in zip(weights[1:], vectors[1:], strict=True):
        acc += v * float(w)
    return acc + float(bias)


def evaluate(
    model: Model,
    poly: SigmoidPoly | None,
    ctx: ts.Context,
    ctx_hash: bytes,
    blobs: Sequence[bytes],
    rows: int,
) -> bytes:
    """One batch: the framed ciphertexts of ``model.features`` columns of ``rows`` rows
    in, one framed ciphertext of ``rows`` scores out."""
    if len(blobs) != model.features:
        raise InvalidArgument(
            f"a batch holds {len(blobs)} feature ciphertexts; the model takes {model.features}",
            reason="he_feature_count",
        )
    slots = model.params.slots
    vectors = [ckks.load_vector(ctx, ctx_hash, b) for b in blobs]
    if any(v.size() != rows for v in vectors):
        raise InvalidArgument(
            "a ciphertext holds another number of rows than its batch declares",
            reason="he_ciphertext_invalid",
        )
    mask = rows if rows < slots else 0
    w = np.asarray(model.weights, dtype=np.float64)
    try:
        z = _combine(vectors, w, model.bias, mask)
        if poly is not None:
            # p(z) = 1/2 + z·(c1 + c3·z²) in three rescalings: y = √|c3|·z comes from the
            # same linear step (not a product with z), so y² = |c3|·z² costs one level and
            # the product with z the last one.
            a = math.sqrt(abs(poly.c3))
            y = _combine(vectors, a * w, a * model.bias, mask)
            q = y * y
            q = (-q if poly.c3 < 0 else q) + poly.c1
            z = q * z + 0.5
    except ValueError:
        raise InvalidArgument(
            "the ciphertexts do not fit the model's CKKS parameters (scale or level)",
            reason="he_context_invalid",
        ) from None
    return ckks.frame(ctx_hash, z.serialize())


# -- what each side signs ------------------------------------------------------------------


def _canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def header_message(
    party: str,
    model: str,
    params: str,
    ctx_hash: bytes,
    rows: int,
    features: int,
    nonce: str,
) -> bytes:
    return _canonical(
        {
            "what": "ensnif-score-request-v1",
            "party": party,
            "model": model,
            "params": params,
            "context_sha256": ctx_hash.hex(),
            "rows": rows,
            "features": features,
            "nonce": nonce,
        }
    )


def batch_digest(blobs: Sequence[bytes]) -> bytes:
    h = hashlib.sha256()
    for b in blobs:
        h.update(hashlib.sha256(b).digest())
    return h.digest()


def seal_message(nonce: str, ctx_hash: bytes, batch: int, rows: int, digest: bytes) -> bytes:
    return _canonical(
        {
            "what": "ensnif-score-batch-v1",
            "nonce": nonce,
            "context_sha256": ctx_hash.hex(),
            "batch": batch,
            "rows": rows,
            "digest": digest.hex(),
        }
    )


def result_message(nonce: str, batch: int, rows: int, result: bytes) -> bytes:
    return _canonical(
        {
            "what": "ensnif-score-result-v1",
            "nonce": nonce,
            "batch": batch,
            "rows": rows,
            "digest": hashlib.sha256(result).hexdigest(),
        }
    )


def batches(rows: int, slots: int) -> list[tuple[int, int]]:
    """(start, count) of each batch of ``rows`` rows, ``slots`` to a batch."""
    return [(s, min(slots, rows - s)) for s in range(0, rows, slots)]
