"""Outsourced rows of several columns at once (what a regression converts), with real
TenSEAL: the conversion into additive shares computed in the clear the way the MPC
computes it, against numpy; and the measurement behind protocols/he_regression.py's
choice of the Gram in MPC rather than under BFV at the helper."""

from __future__ import annotations

import numpy as np
import pytest
import tenseal as ts

from ensnif_mpc.data.schema import Column
from ensnif_mpc.errors import CryptoError
from ensnif_mpc.he import bfv, outsource, outsource_rows, outsource_table as table
from ensnif_mpc.security import mpc_session

COLUMNS = [
    table.OutsourcedColumn(Column("x1", "float", -10.0, 10.0, 2)),
    table.OutsourcedColumn(Column("x2", "int", 0, 500, 0)),
    table.OutsourcedColumn(Column("y", "float", -200.0, 200.0, 1)),
]


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory):
    return bfv.keygen(tmp_path_factory.mktemp("owner") / "key")


def _rows(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(31)
    return {
        "x1": rng.integers(-1000, 1000, n, endpoint=True) / 100,
        "x2": rng.integers(0, 500, n, endpoint=True).astype(float),
        "y": rng.integers(-2000, 2000, n, endpoint=True) / 10,
    }


def _peers(consortium, job_id: str) -> tuple[list[mpc_session.PeerBinding], list[bytes]]:
    peers, keys = [], []
    for index, name in enumerate(("grocery", "helper")):
        member = getattr(consortium, name)
        cred = mpc_session.mint(job_id, index, member.key.read_bytes())
        peers.append(
            mpc_session.PeerBinding(
                index, name, f"127.0.0.1:{9100 + index}", cred.cert_pem,
                cred.binding_signature, member.cert.read_text(),
            )
        )  # fmt: skip
        keys.append(cred.key_pem.encode())
    return peers, keys


def test_several_columns_of_rows_convert_to_shares_of_every_value(tmp_path, key, consortium):
    """9,000 rows (two ciphertexts per column) of three columns, negative values among them:
    each party's share (here two parties: a data owner and the helper) holds the columns one
    after the other, and the shares (the helper's minus its masks) add up to numpy's grid
    values exactly."""
    data = _rows(9_000)
    manifest, frames = table.encrypt_table(key, "trips", "alice", data, COLUMNS, {})
    table.write(
        tmp_path / "trips", key, manifest, frames,
        consortium.alice.key.read_bytes(), consortium.alice.cert.read_bytes(),
    )  # fmt: skip
    stored = table.open_stored(tmp_path / "trips", consortium.ca_pem)
    batch, masks = outsource_rows.mask_rows(stored, "job-k", ["x1", "x2", "y"])
    batch = outsource.MaskedBatch.from_bytes(batch.to_bytes())
    peers, mpc_keys = _peers(consortium, "job-k")

    sealed = outsource_rows.share_masked_rows(
        key.context, key.context_sha256, batch, peers, consortium.ca_pem
    )
    forwarded = outsource.Forwarded.of(batch, sealed)
    shares = [outsource.open_share(mpc_keys[i], forwarded.only(i), "job-k", i) for i in range(2)]
    total = shares[0] + outsource_rows.helper_row_input(shares[1], masks)

    want = np.concatenate([np.rint(data["x1"] * 100), data["x2"], np.rint(data["y"] * 10)])
    assert masks.shape == (3, 9_000)
    assert total.tolist() == want.astype(np.int64).tolist()
    with pytest.raises(CryptoError):  # a party's forwarded copy holds only its own share
        outsource.open_share(mpc_keys[1], forwarded.only(0), "job-k", 1)


def test_shares_travel_in_binary_and_refuse_anything_else():
    values = np.array([0, -1, 2**123, -(2**124) + 5, 7], dtype=object)

    assert outsource_rows.decode_shares(outsource_rows.encode_shares(values)).tolist() == list(
        values
    )
    with pytest.raises(CryptoError):
        outsource_rows.decode_shares(outsource_rows.ROWS_MAGIC + b"\0" * 15)


def test_one_ciphertext_product_leaves_too_little_noise_budget_to_flood(key):
    """Why the Gram is computed in MPC (protocols/he_regression.py): a fresh ciphertext has
    about 110 bits of invariant noise budget, one slot-wise product of two (what x_j·x_l
    under BFV at the helper would take) leaves far less than the FLOOD_BITS (100) that the
    flooding before the owner's decryption consumes."""
    ctx = key.context
    x = np.arange(-500, 500, dtype=np.int64)
    a, b = ts.bfv_vector(ctx, x.tolist()), ts.bfv_vector(ctx, (x + 3).tolist())
    fresh = bfv.noise_budget(ctx, bfv.seal_bytes(a))
    product = a * b
    left = bfv.noise_budget(ctx, bfv.seal_bytes(product))

    assert product.decrypt()[: x.size] == (x * (x + 3)).tolist()  # exact, before flooding
    assert fresh >= bfv.FLOOD_BITS
    assert left < bfv.FLOOD_BITS - 40, (fresh, left)
