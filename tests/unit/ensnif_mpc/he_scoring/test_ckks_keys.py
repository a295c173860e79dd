"""CKKS parameter sets, contexts, frames and the key directory (real TenSEAL)."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import numpy as np
import pytest

from ensnif_mpc import errors
from ensnif_mpc.he import ckks, keys, scoring


@pytest.mark.parametrize("params", list(ckks.PARAM_SETS.values()))
def test_every_parameter_set_is_within_the_128_bit_bound(params: ckks.ParamSet) -> None:
    assert params.coeff_bits <= ckks.MAX_COEFF_BITS[params.poly_modulus_degree]
    assert len(params.coeff_mod_bit_sizes) == params.depth + 2  # data primes + special


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> keys.KeyDir:
    return keys.load_or_create_ckks(tmp_path_factory.mktemp("k") / "key", ckks.LINEAR)


def test_the_public_context_holds_no_secret_key(key: keys.KeyDir) -> None:
    public = ckks.load_public(key.public)

    assert not public.has_secret_key()
    assert key.context.has_secret_key()


def test_a_context_with_its_secret_key_is_refused_for_evaluation(key: keys.KeyDir) -> None:
    with pytest.raises(errors.InvalidArgument) as err:
        ckks.load_public(ckks.secret_bytes(key.context))
    assert err.value.reason == "he_context_invalid"


def test_a_malformed_context_is_refused() -> None:
    with pytest.raises(errors.InvalidArgument) as err:
        ckks.load_public(b"not a context" * 100)
    assert err.value.reason == "he_context_invalid"


def test_a_frame_under_another_context_is_refused(key: keys.KeyDir) -> None:
    (blob,) = ckks.encrypt_columns(key.context, key.context_hash, np.ones((1, 4)))

    with pytest.raises(errors.InvalidArgument) as other:
        ckks.unframe(b"\0" * 32, blob)
    with pytest.raises(errors.InvalidArgument) as garbage:
        ckks.unframe(key.context_hash, b"garbage")

    assert other.value.reason == "he_context_mismatch"
    assert garbage.value.reason == "he_ciphertext_invalid"


def test_a_truncated_ciphertext_does_not_load(key: keys.KeyDir) -> None:
    (blob,) = ckks.encrypt_columns(key.context, key.context_hash, np.ones((1, 4)))

    with pytest.raises(errors.InvalidArgument) as err:
        ckks.load_vector(ckks.load_public(key.public), key.context_hash, blob[: len(blob) // 2])
    assert err.value.reason == "he_ciphertext_invalid"


def test_the_key_directory_reloads_the_same_context(key: keys.KeyDir) -> None:
    again = keys.load(key.path)
    (blob,) = ckks.encrypt_columns(key.context, key.context_hash, np.array([[1.5, -2.25]]))

    assert again.context_hash == key.context_hash
    (values,) = ckks.decrypt(again.context, again.context_hash, [blob])
    np.testing.assert_allclose(values, [1.5, -2.25], atol=1e-6)
    assert (key.path / keys.SECRET).stat().st_mode & 0o777 == 0o600
    assert key.path.stat().st_mode & 0o777 == 0o700


def test_a_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    k = keys.load_or_create_ckks(tmp_path / "k", ckks.LINEAR)
    (k.path / keys.SECRET).chmod(0o644)

    with pytest.raises(errors.FailedPrecondition) as err:
        keys.load(k.path)
    assert err.value.reason == "he_key_invalid"


def test_a_public_context_of_another_key_is_refused(tmp_path: Path) -> None:
    a = keys.load_or_create_ckks(tmp_path / "a", ckks.LINEAR)
    b = keys.load_or_create_ckks(tmp_path / "b", ckks.LINEAR)
    (a.path / keys.PUBLIC).write_bytes(b.public)

    with pytest.raises(errors.FailedPrecondition) as err:
        keys.load(a.path)
    assert err.value.reason == "he_key_invalid"


def test_a_key_for_other_parameters_is_refused(key: keys.KeyDir) -> None:
    with pytest.raises(errors.FailedPrecondition) as err:
        keys.load_or_create_ckks(key.path, ckks.LOGISTIC)
    assert err.value.reason == "he_key_invalid"


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_tenseal_threads_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(errors.InvalidArgument):
        ckks.check_threads(bad)  # type: ignore[arg-type]


def test_concurrent_contexts_with_their_own_thread_pools_score_correctly() -> None:
    """The node serves requests on gRPC threads, each with its own context; TenSEAL's pools
    (n_threads set explicitly) must not interfere."""
    rng = np.random.default_rng(3)
    model = scoring.Model("m", "linear", tuple(rng.normal(0, 1, 3)), 0.5, (-1.0, 1.0))

    def one(threads: int) -> float:
        ctx = ckks.new_context(ckks.LINEAR, n_threads=threads)
        public = ckks.public_bytes(ctx)
        digest = ckks.context_hash(public)
        x = rng.uniform(-5, 5, (200, 3))
        blobs = ckks.encrypt_columns(ctx, digest, x.T)
        owner = ckks.load_public(public, n_threads=threads)
        out = scoring.evaluate(model, None, owner, digest, blobs, 200)
        (got,) = ckks.decrypt(ctx, digest, [out])  # a result holds every slot
        return float(np.max(np.abs(got[:200] - model.plaintext(x))))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        errs = list(pool.map(one, [1, 2, 4, 1, 2, 4]))

    assert max(errs) < 1e-3
