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

What leaks beyond the scores: a decrypted result carries the evaluation's noise and the
rounding of the encoded weights, which depend on the weights. The node does not flood it
(no circuit privacy), so the analyst, who decrypts with its own key, sees the scores plus
terms of order 2^-20 that are a function of the model (docs/homomorphic.md).

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
import tenseal.sealapi as sealapi

from ensnif_mpc.errors import InvalidArgument
from ensnif_mpc.he import ckks
from ensnif_mpc.he.sigmoid import SigmoidPoly, fit

KINDS = ("linear", "logistic")
#: Where a logistic model's sigmoid is applied: by the node, as the stated cubic on the
#: ciphertexts ("node"), or exactly by the analyst's client on the decrypted logit
#: ("analyst"). σ is a bijection, so the logit tells the analyst exactly what an exact
#: score would; the owner chooses (the cubic's error against exactness and speed).
SIGMOID_AT = ("node", "analyst")
#: The smallest largest |weight| a model may have: below it the plaintext products of a
#: one-row batch could round to zero at the parameter sets' scales (a constant score, and
#: for SEAL a "transparent" ciphertext it refuses to produce).
MIN_WEIGHT = 2.0**-16


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
        if max(abs(w) for w in self.weights) < MIN_WEIGHT:
            raise InvalidArgument(
                f"every weight is below {MIN_WEIGHT:g} in magnitude: the model scores a "
                "constant (and its encrypted products would round to zero)"
            )

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


class Kernel:
    """SEAL's evaluator, encoder and keys for one public context, and the plan of scales.

    Why SEAL's API and not TenSEAL's vector operators: TenSEAL rescales after every
    plaintext product and then overwrites the ciphertext's scale with the initial one,
    so Σ_j w_j·ct_j cost one rescaling (the costly step: inverse and forward NTTs of every
    prime) per feature and carried a relative error |Δ/q − 1| per rescaling. Here the
    products are summed at one scale and rescaled once (lazy rescaling), each plaintext is
    encoded at the scale that makes the result's scale exact, and a product that would be
    zero is skipped (TenSEAL would ask an encryptor, which a public context has not, for a
    fresh zero).
    """

    def __init__(self, ctx: ts.Context, params: ckks.ParamSet) -> None:
        seal_ctx = ctx.seal_context().data
        self.params = params
        self.evaluator = sealapi.Evaluator(seal_ctx)
        self.encoder = sealapi.CKKSEncoder(seal_ctx)
        self.relin_keys = ctx.relin_keys().data if params.relin_keys else None
        self.moduli = [float(q) for q in ckks.data_moduli(ctx)]
        self.scale = float(2**params.scale_bits)
        self.first = seal_ctx.first_parms_id()

    def plain(self, value: float | list[float], parms_id: Any, scale: float) -> sealapi.Plaintext:
        out = sealapi.Plaintext()
        self.encoder.encode(value, parms_id, scale, out)
        return out

    def load(self, vector: ts.CKKSVector) -> sealapi.Ciphertext:
        (ct,) = vector.ciphertext()
        if ct.size() != 2 or ct.parms_id() != self.first or ct.scale != self.scale:
            raise InvalidArgument(
                "a ciphertext is not a fresh encryption at the parameter set's scale",
                reason="he_ciphertext_invalid",
            )
        return ct

    def weighted_sum(
        self,
        cts: Sequence[sealapi.Ciphertext],
        weights: npt.NDArray[np.float64],
        bias: float,
        mask: int,
    ) -> sealapi.Ciphertext:
        """Σ_j w_j·ct_j + b at the first level, rescaled once: the weights are encoded at
        the scale q_L of the prime the rescaling removes, so the result's scale is Δ again.
        With ``mask`` < slots the weights and the bias are vectors zero past ``mask``."""
        ev, q = self.evaluator, self.moduli[-1]
        ones = np.zeros(self.params.slots)
        ones[:mask] = 1.0

        def value(c: float) -> float | list[float]:
            return (c * ones).tolist() if mask else float(c)

        acc: sealapi.Ciphertext | None = None
        for w, ct in zip(weights, cts, strict=True):
            if w == 0.0:
                continue
            pt = self.plain(value(float(w)), self.first, q)
            if pt.is_zero():
                continue  # the product is exactly 0
            ev.multiply_plain_inplace(ct, pt)
            if acc is None:
                acc = ct
            else:
                ev.add_inplace(acc, ct)
        if acc is None:
            raise InvalidArgument(
                f"every weight product rounds to zero under {self.params.name}",
                reason="he_context_invalid",
            )
        if bias:
            b = self.plain(value(bias), self.first, acc.scale)
            if not b.is_zero():
                ev.add_plain_inplace(acc, b)
        ev.rescale_to_next_inplace(acc)
        acc.scale = self.scale
        return acc

    def odd_cubic(self, z: sealapi.Ciphertext, c1: float, c3: float) -> sealapi.Ciphertext:
        """1/2 + c1·z + c3·z³ from z (scale Δ, three primes left) in two more levels:
        z² and c3·z side by side (level 2), their product (level 3), plus c1·z brought
        down to level 3; every scale planned so that the two terms add exactly. The caller
        passes z normalized to [-1, 1] (and c1, c3 for it), so that every factor is of
        order 1: a rescaling adds noise of absolute size about 2^-20 at scale 2^30, which a
        small c3·z times a large z² would magnify (by R² at the range's edge)."""
        ev, rk, d = self.evaluator, self.relin_keys, self.scale
        q1, q2 = self.moduli[1], self.moduli[2]
        level1 = z.parms_id()
        sq = sealapi.Ciphertext()
        ev.square(z, sq)
        ev.relinearize_inplace(sq, rk)
        ev.rescale_to_next_inplace(sq)
        sq.scale = d * d / q2
        u = sealapi.Ciphertext()
        ev.multiply_plain(z, self.plain(c3, level1, q2), u)
        ev.rescale_to_next_inplace(u)
        u.scale = d
        ev.multiply_inplace(u, sq)
        ev.relinearize_inplace(u, rk)
        ev.rescale_to_next_inplace(u)
        final = d * d * d / (q2 * q1)
        u.scale = final
        lin = sealapi.Ciphertext()
        ev.multiply_plain(z, self.plain(c1, level1, d * d / q1), lin)
        ev.rescale_to_next_inplace(lin)
        ev.mod_switch_to_next_inplace(lin)
        lin.scale = final
        ev.add_inplace(u, lin)
        ev.add_plain_inplace(u, self.plain(0.5, u.parms_id(), final))
        return u


def evaluate(
    model: Model,
    poly: SigmoidPoly | None,
    ctx: ts.Context,
    ctx_hash: bytes,
    blobs: Sequence[bytes],
    rows: int,
    kernel: Kernel | None = None,
) -> bytes:
    """One batch: the framed ciphertexts of ``model.features`` columns of ``rows`` rows
    in, one framed ciphertext of ``rows`` scores out (SEAL's serialization, RESULT_MAGIC).
    ``kernel``: the context's, made once per request by the caller (else here)."""
    if len(blobs) != model.features:
        raise InvalidArgument(
            f"a batch holds {len(blobs)} feature ciphertexts; the model takes {model.features}",
            reason="he_feature_count",
        )
    k = kernel or Kernel(ctx, model.params)
    slots = model.params.slots
    vectors = [ckks.load_vector(ctx, ctx_hash, b) for b in blobs]
    if any(v.size() != rows for v in vectors):
        raise InvalidArgument(
            "a ciphertext holds another number of rows than its batch declares",
            reason="he_ciphertext_invalid",
        )
    cts = [k.load(v) for v in vectors]
    del vectors
    mask = rows if rows < slots else 0
    r = 1.0 if poly is None else poly.radius  # the cubic is evaluated on z / R, in [-1, 1]
    try:
        w = np.asarray(model.weights, dtype=np.float64) / r
        z = k.weighted_sum(cts, w, model.bias / r, mask)
        if poly is not None:
            z = k.odd_cubic(z, poly.c1 * r, poly.c3 * r**3)
    except (ValueError, RuntimeError):
        raise InvalidArgument(
            "the ciphertexts do not fit the model's CKKS parameters (scale or level)",
            reason="he_context_invalid",
        ) from None
    return ckks.frame(ctx_hash, ckks.seal_save(z), ckks.RESULT_MAGIC)


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
