"""The demo's encrypted scoring: the grocery registers a small logistic model at its own
node, the analyst scores a few sample customers under CKKS, and the demo prints each
decrypted score next to the same model in the clear (docs/homomorphic.md).

The weights are written into the grocery node's state directory before the node starts
(as `ensnif model register` would) and never leave it; the analyst's key directory is
``he-keys/`` under the demo's root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ensnif_mpc.config import PartyConfig
from ensnif_mpc.he.sigmoid import sigmoid
from party_node import models

OWNER = "grocery"
MODEL = "basket-propensity"
FEATURES = ("visits_per_month", "basket_total_k", "tenure_years")
WEIGHTS = (0.25, 0.8, -0.2)
BIAS = -0.6
LOW = (0.0, 0.0, 0.0)
HIGH = (8.0, 2.0, 10.0)
ROWS = 8


def register(root: Path) -> models.ModelRecord:
    """Register the demo model at the grocery node (its state dir, before it starts)."""
    cfg = PartyConfig.load(root / f"party-{OWNER}.toml")
    record = models.build(
        MODEL,
        "logistic",
        list(WEIGHTS),
        BIAS,
        feature_bounds=(list(LOW), list(HIGH)),
        feature_names=FEATURES,
    )
    models.ModelRegistry(cfg.state_dir).register(record, replace=True)
    return record


def sample_rows(seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(np.array(LOW), np.array(HIGH), (ROWS, len(FEATURES)))


def run(root: Path, client: Any, record: models.ModelRecord) -> dict[str, Any]:
    """Score the sample rows; each encrypted score with the plaintext model's."""
    rows = sample_rows()
    out = client.score(MODEL, rows, party=OWNER, key_dir=root / "he-keys")
    poly = record.model.sigmoid()
    assert poly is not None
    z = rows @ np.asarray(WEIGHTS) + BIAS
    return {
        "model": MODEL,
        "party": OWNER,
        "features": list(FEATURES),
        "sigmoid": poly.describe(),
        "sigmoid_max_error": poly.max_error,
        "rows": [
            {
                "features": [round(float(v), 3) for v in r],
                "encrypted": float(e),
                "polynomial": float(p),
                "sigmoid": float(s),
            }
            for r, e, p, s in zip(rows, out.values, poly(z), sigmoid(z), strict=True)
        ],
        "max_ckks_error": float(np.max(np.abs(out.values - poly(z)))),
        "seconds": round(out.stats.seconds, 2),
        "ciphertext_bytes": out.stats.ciphertext_bytes,
    }


def ok(result: dict[str, Any]) -> bool:
    return bool(result["max_ckks_error"] <= 1e-3) and all(
        abs(r["encrypted"] - r["sigmoid"]) <= result["sigmoid_max_error"] + 1e-3
        for r in result["rows"]
    )
