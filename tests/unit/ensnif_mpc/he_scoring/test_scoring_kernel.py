"""The owner's evaluation on SEAL's API (ensnif_mpc/he/scoring.py ``Kernel``): one rescaling
for the weighted sum, exact scales, skipped zero products, the cubic against numpy, a
context of other parameters refused; and the node's TenSEAL thread setting (real TenSEAL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ensnif_mpc import errors
from ensnif_mpc.config import PartyConfig
from ensnif_mpc.he import ckks, scoring
from ensnif_mpc.he.sigmoid import fit

RNG = np.random.default_rng(1402)


def _score(model: scoring.Model, x: np.ndarray, threads: int = 1) -> np.ndarray:
    ctx = ckks.new_context(model.params, n_threads=threads)
    public = ckks.public_bytes(ctx)
    digest = ckks.context_hash(public)
    owner = ckks.load_public(public, threads, model.params)
    blobs = ckks.encrypt_columns(ctx, digest, x.T)
    out = scoring.evaluate(model, model.sigmoid(), owner, digest, blobs, x.shape[0])
    assert out.startswith(ckks.RESULT_MAGIC)
    (got,) = ckks.decrypt(ctx, digest, [out])
    return got


def test_a_full_logistic_batch_matches_the_cubic_in_numpy() -> None:
    w = RNG.normal(0, 0.25, 20)
    radius = 0.2 + np.abs(w).sum()
    model = scoring.Model("m", "logistic", tuple(w), -0.2, (-radius, radius))
    x = RNG.uniform(-1, 1, (ckks.LOGISTIC.slots, 20))

    got = _score(model, x)

    err = np.max(np.abs(got - model.plaintext(x)))
    assert err < 1e-4  # exact scales: no |Δ/q - 1| factor per rescaling


def test_a_wide_logit_range_keeps_the_cubic_within_the_ckks_tolerance() -> None:
    """R = 40: c3 ≈ -1e-5, the smallest coefficient the cubic multiplies by."""
    w = RNG.normal(0, 4.0, 8)
    model = scoring.Model("m", "logistic", tuple(w), 1.0, (-40.0, 40.0))
    x = RNG.uniform(-1, 1, (500, 8)) * (39.0 / (1.0 + np.abs(w).sum()))

    got = _score(model, x)

    np.testing.assert_allclose(got[:500], model.plaintext(x), atol=1e-3, rtol=0)


def test_a_partial_batch_leaves_its_spare_slots_empty() -> None:
    w = RNG.normal(0, 1.0, 4)
    model = scoring.Model("m", "linear", tuple(w), 2.5, (-1.0, 1.0))
    x = RNG.uniform(-3, 3, (77, 4))

    got = _score(model, x)

    np.testing.assert_allclose(got[:77], model.plaintext(x), atol=1e-6, rtol=0)
    assert np.max(np.abs(got[77:])) < 1e-6  # bias and weights were zero there


def test_zero_weights_are_skipped_and_the_rest_scores() -> None:
    w = (0.0, 1.5, 0.0, -0.75)
    model = scoring.Model("m", "linear", w, 0.0, (-1.0, 1.0))
    x = RNG.uniform(-2, 2, (40, 4))

    got = _score(model, x, threads=2)

    np.testing.assert_allclose(got[:40], x @ np.asarray(w), atol=1e-6, rtol=0)


def test_a_model_whose_every_weight_rounds_to_zero_is_refused() -> None:
    with pytest.raises(errors.InvalidArgument):
        scoring.Model("m", "linear", (1e-9, -2e-8), 0.3, (-1.0, 1.0))


def test_a_context_of_other_parameters_is_refused_for_the_model() -> None:
    linear = ckks.public_bytes(ckks.new_context(ckks.LINEAR))

    with pytest.raises(errors.InvalidArgument) as err:
        ckks.load_public(linear, params=ckks.LOGISTIC)

    assert err.value.reason == "he_context_invalid"
    assert not ckks.load_public(linear, params=ckks.LINEAR).has_secret_key()


def test_the_sigmoid_fit_is_computed_once_per_range() -> None:
    assert fit(-3.25, 3.25) is fit(-3.25, 3.25)


PARTY = """
name = "grocery"
listen = "127.0.0.1:50061"
mpc_ports = "41000-41099"
{extra}
[tls]
ca = "ca.crt"
cert = "grocery.crt"
key = "grocery.key"
"""


def _config(tmp_path: Path, extra: str) -> PartyConfig:
    for name in ("ca.crt", "grocery.crt", "grocery.key"):
        (tmp_path / name).write_text("unused: the config only checks the files exist\n")
    path = tmp_path / "party.toml"
    path.write_text(PARTY.format(extra=extra))
    return PartyConfig.load(path)


def test_tenseal_threads_default_to_one_and_are_read_from_the_node_config(tmp_path: Path) -> None:
    assert _config(tmp_path, "").tenseal_threads == 1
    assert _config(tmp_path, "tenseal_threads = 4").tenseal_threads == 4


@pytest.mark.parametrize("bad", ["0", "65", "true", "1.5", '"2"'])
def test_tenseal_threads_outside_one_to_64_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(errors.InvalidConfig):
        _config(tmp_path, f"tenseal_threads = {bad}")
