"""The node's cache of loaded public CKKS contexts (party_node/scoring.py ``Contexts``), with
real TenSEAL contexts: a returning analyst's context is loaded once, another is its own,
the oldest is evicted, a refused one is not kept, and a cached one still scores."""

from __future__ import annotations

import numpy as np
import pytest

from ensnif_mpc import errors
from ensnif_mpc.he import ckks, scoring
from party_node.scoring import Contexts


def _public(params: ckks.ParamSet = ckks.LINEAR) -> tuple[bytes, bytes, object]:
    ctx = ckks.new_context(params)
    public = ckks.public_bytes(ctx)
    return public, ckks.context_hash(public), ctx


def test_the_same_bytes_load_once_and_other_bytes_load_their_own() -> None:
    cache = Contexts()
    public, digest, _ = _public()
    other, other_digest, _ = _public()

    first = cache.load(digest, public, 1, ckks.LINEAR)

    assert cache.load(digest, public, 1, ckks.LINEAR) is first
    assert cache.load(other_digest, other, 1, ckks.LINEAR) is not first
    assert cache.load(digest, public, 2, ckks.LINEAR) is not first  # its own thread pool


def test_the_oldest_context_is_evicted() -> None:
    cache = Contexts(size=1)
    a, a_digest, _ = _public()
    b, b_digest, _ = _public()

    first = cache.load(a_digest, a, 1, ckks.LINEAR)
    cache.load(b_digest, b, 1, ckks.LINEAR)

    assert cache.load(a_digest, a, 1, ckks.LINEAR) is not first


def test_a_refused_context_is_not_kept() -> None:
    cache = Contexts()
    _, _, ctx = _public()
    secret = ckks.secret_bytes(ctx)  # type: ignore[arg-type]

    for _ in range(2):
        with pytest.raises(errors.InvalidArgument) as err:
            cache.load(ckks.context_hash(secret), secret, 1, ckks.LINEAR)
        assert err.value.reason == "he_context_invalid"


def test_a_cached_context_scores_as_numpy() -> None:
    cache = Contexts()
    public, digest, ctx = _public()
    model = scoring.Model("m", "linear", (0.5, -1.25), 0.75, (-1.0, 1.0))
    x = np.random.default_rng(4).uniform(-3, 3, (50, 2))
    blobs = ckks.encrypt_columns(ctx, digest, x.T)  # type: ignore[arg-type]

    cache.load(digest, public, 1, ckks.LINEAR)
    owner = cache.load(digest, public, 1, ckks.LINEAR)
    out = scoring.evaluate(model, None, owner, digest, blobs, 50)

    (got,) = ckks.decrypt(ctx, digest, [out])  # type: ignore[arg-type]
    np.testing.assert_allclose(got[:50], model.plaintext(x), atol=1e-6, rtol=0)
