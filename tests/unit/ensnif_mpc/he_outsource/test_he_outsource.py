"""Outsourced datasets with real TenSEAL: encryption on the grid, the signed directory and its
refusals, noise flooding, and the HE → additive-share conversion computed in the clear the
way the MPC computes it, against numpy on data the test draws."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ensnif_mpc.data.schema import Column
from ensnif_mpc.errors import CryptoError, DataError, EnsnifError
from ensnif_mpc.he import bfv, outsource, outsource_rows, outsource_table as table
from ensnif_mpc.security import mpc_session

EDGES = (0.0, 25.0, 50.0, 75.0, 100.0)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory):
    return bfv.keygen(tmp_path_factory.mktemp("owner") / "key")


def _draw(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 10_000, size=rows, endpoint=True) / 100  # [0, 100], 2 decimals


def _columns() -> list[table.OutsourcedColumn]:
    return [table.OutsourcedColumn(Column("amount", "float", 0.0, 100.0, 2), EDGES)]


def _store(tmp: Path, key, consortium, values: np.ndarray, dataset: str = "payments") -> Path:
    manifest, frames = table.encrypt_table(
        key, dataset, "alice", {"amount": values}, _columns(), {"max_rho": 0.5}
    )
    out = tmp / dataset
    table.write(
        out,
        key,
        manifest,
        frames,
        consortium.alice.key.read_bytes(),
        consortium.alice.cert.read_bytes(),
    )
    return out


def _peers(consortium, job_id: str) -> tuple[list[mpc_session.PeerBinding], list[str]]:
    peers, keys = [], []
    for index, name in enumerate(("grocery", "helper")):
        member = getattr(consortium, name)
        cred = mpc_session.mint(job_id, index, member.key.read_bytes())
        peers.append(
            mpc_session.PeerBinding(
                index,
                name,
                f"127.0.0.1:{9000 + index}",
                cred.cert_pem,
                cred.binding_signature,
                member.cert.read_text(),
            )
        )
        keys.append(cred.key_pem)
    return peers, keys


def _reference(values: np.ndarray) -> list[int]:
    """Sum, per-bin counts and per-bin sums on the integer grid, by numpy."""
    grid = np.rint(values * 100).astype(np.int64)
    index = np.clip(np.searchsorted(np.array(EDGES[1:-1]) * 100, grid, side="right"), 0, 3)
    counts = np.bincount(index, minlength=4)
    sums = np.bincount(index, weights=grid, minlength=4).astype(np.int64)
    return [
        int(grid.sum()),
        *(v for pair in zip(counts, sums, strict=True) for v in map(int, pair)),
    ]


def test_masked_outputs_converted_to_additive_shares_reconstruct_numpy_exactly(
    tmp_path, key, consortium
):
    values = _draw(20_000, seed=1)  # three ciphertexts, the last one padded
    stored = table.open_stored(_store(tmp_path, key, consortium, values), consortium.ca_pem)
    outputs = _columns()[0].series()
    batch, masks = outsource.mask_outputs(stored, "job-1", outputs)
    batch = outsource.MaskedBatch.from_bytes(batch.to_bytes())  # as it travels to the owner
    peers, mpc_keys = _peers(consortium, "job-1")

    sealed = outsource.share_masked(
        key.context, key.context_sha256, batch, peers, consortium.ca_pem
    )
    shares = [
        outsource.open_share(
            mpc_keys[i].encode(), outsource.Forwarded.of(batch, sealed), "job-1", i
        )
        for i in (0, 1)
    ]
    inputs = [shares[0], outsource.helper_input(shares[1], masks)]  # party 1 is the helper
    d = [a + b for a, b in zip(*inputs, strict=True)]

    assert outsource.recover(d) == _reference(values)


def test_the_owner_sees_only_uniform_masked_slots(tmp_path, key, consortium):
    values = np.full(8192, 100.0)  # every slot partial the same: the masks must hide it
    stored = table.open_stored(_store(tmp_path, key, consortium, values), consortium.ca_pem)
    batch, _ = outsource.mask_outputs(stored, "job-2", ["amount"])
    slots = bfv.decrypt_seal(key.context, batch.blobs[0]) % bfv.T

    # 10,000 (the constant on the grid) would be every slot without the mask; uniform mod t
    # spreads the slots over [0, t): a 16-bucket histogram is flat within 5 sd.
    assert not np.any(slots == 10_000)
    counts = np.bincount((slots.astype(object) * 16 // bfv.T).astype(np.int64), minlength=16)
    assert np.all(np.abs(counts - 512) < 5 * np.sqrt(512))


def test_flooding_keeps_the_plaintext_and_spends_the_stated_noise(key):
    x = np.arange(-4096, 4096)
    vector = bfv.load_vector(key.context, bfv.encrypt(key.context, x))
    before = bfv.noise_budget(key.context, bfv.seal_bytes(vector))
    flooded = bfv.flooded(key.context, vector)

    assert np.array_equal(bfv.decrypt_seal(key.context, flooded), x)
    after = bfv.noise_budget(key.context, flooded)
    # a uniform E in ±2^FLOOD_BITS dominates the noise: the budget falls by about FLOOD_BITS
    # minus the fresh noise's own bits, and some budget is left for a correct decryption
    assert 0 < after < before - (bfv.FLOOD_BITS - 8)


def test_a_tampered_ciphertext_is_refused(tmp_path, key, consortium):
    directory = _store(tmp_path, key, consortium, _draw(100, seed=2))
    path = directory / "ct" / "amount" / "0.bin"
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 1
    path.write_bytes(bytes(blob))
    stored = table.open_stored(directory, consortium.ca_pem)

    with pytest.raises(EnsnifError) as err:
        outsource.mask_outputs(stored, "job-3", ["amount"])
    assert err.value.reason == "he_ciphertext_tampered"


def test_a_ciphertext_from_another_context_or_dataset_is_refused(tmp_path, key, consortium):
    other_key = bfv.keygen(tmp_path / "other-key")
    mine = _store(tmp_path, key, consortium, _draw(100, seed=3))
    foreign = _store(tmp_path / "x", other_key, consortium, _draw(100, seed=3))
    sibling = _store(tmp_path, key, consortium, _draw(100, seed=3), dataset="refunds")

    for source, reason in ((foreign, "he_context_mismatch"), (sibling, "he_dataset_mismatch")):
        target = tmp_path / f"mixed-{reason}"
        shutil.copytree(mine, target)
        shutil.copy(source / "ct" / "amount" / "0.bin", target / "ct" / "amount" / "0.bin")
        stored = table.open_stored(target, consortium.ca_pem)
        with pytest.raises(EnsnifError) as err:
            outsource.mask_outputs(stored, "job-4", ["amount"])
        assert err.value.reason == reason


def test_a_manifest_changed_after_signing_is_refused(tmp_path, key, consortium):
    directory = _store(tmp_path, key, consortium, _draw(100, seed=4))
    manifest = directory / table.MANIFEST
    manifest.write_bytes(manifest.read_bytes().replace(b'"rows": 100', b'"rows": 101'))

    with pytest.raises(CryptoError):
        table.open_stored(directory, consortium.ca_pem)


def test_a_batch_for_another_context_is_refused_by_the_owner(tmp_path, key, consortium):
    other_key = bfv.keygen(tmp_path / "other-key")
    stored = table.open_stored(
        _store(tmp_path, other_key, consortium, _draw(10, seed=5)), consortium.ca_pem
    )
    batch, _ = outsource.mask_outputs(stored, "job-5", ["amount"])
    peers, _ = _peers(consortium, "job-5")

    with pytest.raises(EnsnifError) as err:
        outsource.share_masked(key.context, key.context_sha256, batch, peers, consortium.ca_pem)
    assert err.value.reason == "he_context_mismatch"


def test_a_peer_certificate_not_bound_to_the_job_gets_no_share(tmp_path, key, consortium):
    stored = table.open_stored(
        _store(tmp_path, key, consortium, _draw(10, seed=6)), consortium.ca_pem
    )
    batch, _ = outsource.mask_outputs(stored, "job-6", ["amount"])
    peers, _ = _peers(consortium, "another-job")  # bindings signed for another job

    with pytest.raises(CryptoError):
        outsource.share_masked(key.context, key.context_sha256, batch, peers, consortium.ca_pem)


def test_values_outside_the_bounds_or_beyond_the_plain_modulus_are_refused(key):
    column = table.OutsourcedColumn(Column("amount", "float", 0.0, 100.0, 2))
    with pytest.raises(DataError) as bad:
        table.encrypt_table(key, "d", "alice", {"amount": np.array([1.0, 100.5])}, [column], {})
    assert "row 2" in bad.value.message and "100.5" not in bad.value.message

    huge = table.OutsourcedColumn(Column("amount", "float", 0.0, 1e9, 4))
    with pytest.raises(EnsnifError) as err:
        table.check_capacity(huge, 100_000)
    assert err.value.reason == "he_sum_out_of_range"


def test_additive_shares_sum_to_the_total_and_each_hides_it():
    shares = outsource.additive_shares([0, bfv.T - 1], 3)
    assert [sum(col) for col in zip(*shares, strict=True)] == [0, bfv.T - 1]
    assert all(0 <= v < 2**outsource.SHARE_BITS for v in shares[0] + shares[1])


def _plain(key, vector) -> np.ndarray:
    return bfv.decrypt_seal(key.context, bfv.seal_bytes(vector))


def test_precomputed_sums_give_the_same_answer_and_a_changed_one_is_not_used(
    tmp_path, key, consortium
):
    values = _draw(12_000, seed=8)
    stored = table.open_stored(_store(tmp_path, key, consortium, values), consortium.ca_pem)
    assert outsource.precompute_sums(stored) == 9
    ctx = stored.context()
    cached = _plain(key, outsource.series_sum(stored, ctx, "amount@binsum2"))
    (stored.directory / "sums" / "amount@binsum2.bin").write_bytes(
        bfv.encrypt(key.context, np.ones(3, dtype=np.int64))  # a sum of something else
    )
    fallback = _plain(key, outsource.series_sum(stored, ctx, "amount@binsum2"))

    grid = np.rint(values * 100).astype(np.int64)
    inside = (grid >= 5000) & (grid < 7500)
    want = np.bincount(np.arange(grid.size) % 8192, weights=grid * inside, minlength=8192)
    assert np.array_equal(cached, want.astype(np.int64))
    assert np.array_equal(fallback, cached)


def test_masked_rows_convert_to_additive_shares_of_every_row_exactly(tmp_path, key, consortium):
    values = _draw(9_000, seed=12)  # two ciphertexts
    stored = table.open_stored(_store(tmp_path, key, consortium, values), consortium.ca_pem)
    batch, masks = outsource_rows.mask_rows(stored, "job-r", "amount")
    batch = outsource.MaskedBatch.from_bytes(batch.to_bytes())
    peers, mpc_keys = _peers(consortium, "job-r")

    sealed = outsource_rows.share_masked_rows(
        key.context, key.context_sha256, batch, peers, consortium.ca_pem
    )
    shares = [
        outsource.open_share(
            mpc_keys[i].encode(), outsource.Forwarded.of(batch, sealed), "job-r", i
        )
        for i in (0, 1)
    ]
    rows = np.array(shares[0], dtype=object) + np.array(
        outsource_rows.helper_row_input(shares[1], masks), dtype=object
    )

    assert rows.tolist() == np.rint(values * 100).astype(np.int64).tolist()


def test_rows_of_a_column_too_wide_to_hide_are_refused(tmp_path, key, consortium):
    wide = table.OutsourcedColumn(Column("amount", "float", 0.0, 10_000.0, 2))  # 10^6 > 2^17
    manifest, frames = table.encrypt_table(
        key, "wide", "alice", {"amount": np.array([1.0])}, [wide], {}
    )
    table.write(
        tmp_path / "wide",
        key,
        manifest,
        frames,
        consortium.alice.key.read_bytes(),
        consortium.alice.cert.read_bytes(),
    )
    stored = table.open_stored(tmp_path / "wide", consortium.ca_pem)

    with pytest.raises(EnsnifError) as err:
        outsource_rows.mask_rows(stored, "job-w", "amount")
    assert err.value.reason == "he_sum_out_of_range"


def test_a_share_forwarded_with_another_batchs_digest_does_not_open(tmp_path, key, consortium):
    stored = table.open_stored(_store(tmp_path, key, consortium, _draw(10, 14)), consortium.ca_pem)
    batch, _ = outsource.mask_outputs(stored, "job-f", ["amount"])
    other, _ = outsource.mask_outputs(stored, "job-f", ["amount"])  # fresh masks: another batch
    peers, mpc_keys = _peers(consortium, "job-f")
    sealed = outsource.share_masked(
        key.context, key.context_sha256, batch, peers, consortium.ca_pem
    )

    with pytest.raises(CryptoError):
        outsource.open_share(
            mpc_keys[0].encode(), outsource.Forwarded.of(other, sealed), "job-f", 0
        )
