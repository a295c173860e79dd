"""The helper node's store of outsourced datasets (party_node/outsourced.py), driven as its
servicer drives it, with a real BFV dataset: what it accepts, what it refuses, and that a
refused upload changes nothing it held."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ensnif_mpc.data.schema import Column
from ensnif_mpc.errors import EnsnifError, PermissionDenied
from ensnif_mpc.he import bfv, outsource_table as table
from ensnif_mpc.security.pki import Identity
from party_node.outsourced import OutsourcedStore

ALICE = Identity("alice", "analyst")


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory, consortium) -> Path:
    work = tmp_path_factory.mktemp("store")
    key = bfv.keygen(work / "key")
    column = table.OutsourcedColumn(Column("amount", "float", 0.0, 100.0, 2), (0.0, 50.0, 100.0))
    values = np.random.default_rng(1).integers(0, 10_000, size=300) / 100
    manifest, frames = table.encrypt_table(
        key, "payments", "alice", {"amount": values}, [column], {}
    )
    table.write(
        work / "up", key, manifest, frames,
        consortium.alice.key.read_bytes(), consortium.alice.cert.read_bytes(),
    )  # fmt: skip
    return work / "up"


def _files(directory: Path, extra: dict[str, bytes] | None = None):
    files = [
        (p.relative_to(directory).as_posix(), p.read_bytes())
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    ]
    return files + list((extra or {}).items())


def test_the_owners_upload_is_stored_with_its_sums(tmp_path, upload, consortium):
    store = OutsourcedStore(tmp_path / "outsourced", consortium.ca_pem)

    accepted = store.accept(ALICE, _files(upload))

    assert (accepted.owner, accepted.dataset, accepted.rows, accepted.ciphertexts) == (
        "alice", "payments", 300, 5,
    )  # fmt: skip
    assert (tmp_path / "outsourced" / "alice" / "payments" / "sums.json").is_file()
    assert [a.manifest_sha256 for a in store.stored()] == [accepted.manifest_sha256]


@pytest.mark.parametrize(
    "path", ["ct/../../escape.bin", "ct/.hidden/0.bin", "../manifest.json", "sums/amount.bin"]
)
def test_a_path_outside_the_layout_is_refused_and_nothing_is_written(
    tmp_path, upload, consortium, path
):
    store = OutsourcedStore(tmp_path / "outsourced", consortium.ca_pem)

    with pytest.raises(EnsnifError):
        store.accept(ALICE, _files(upload, {path: b"x"}))
    assert not (tmp_path / "escape.bin").exists()
    assert store.stored() == []


def test_a_missing_ciphertext_or_another_callers_upload_is_refused(tmp_path, upload, consortium):
    store = OutsourcedStore(tmp_path / "outsourced", consortium.ca_pem)
    incomplete = [f for f in _files(upload) if f[0] != "ct/amount@bin1/0.bin"]

    with pytest.raises(EnsnifError) as missing:
        store.accept(ALICE, incomplete)
    with pytest.raises(PermissionDenied):
        store.accept(Identity("bob", "analyst"), _files(upload))
    with pytest.raises(PermissionDenied):
        store.accept(Identity("alice", "coordinator"), _files(upload))
    assert missing.value.reason == "he_ciphertext_invalid"
    assert store.stored() == []
