"""An outsourced dataset in the coordinator's catalog: published by the helper node that
holds it, under its OWNER's name, only when the owner's signed manifest (real BFV
encryption, real consortium PKI) entrusts it to that helper; anything else is refused with
``outsourced_not_entrusted`` and nothing is published."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from coordinator.handlers import Coordinator
from coordinator.outsourced import EntrustmentProof
from coordinator.store import Store
from ensnif_mpc.data.schema import Column, DatasetSchema
from ensnif_mpc.errors import EnsnifError
from ensnif_mpc.he import bfv, outsource_table as table
from ensnif_mpc.he.outsource_table import OutsourcedColumn
from ensnif_mpc.security import pki
from ensnif_mpc.security.pki import Identity

COLUMN = OutsourcedColumn(Column("amount", "float", 0.0, 1000.0, 2), (0.0, 500.0, 1000.0))
POLICY = {"exact_protocols": ["sum"], "budget_rho": 2.0, "max_rho": 0.5}


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("pki")
    pki.init_ca(root)
    files = {n: pki.issue(root, n, r) for n, r in
             [("smallshop", "analyst"), ("intruder", "analyst"), ("helper", "party"),
              ("clinic", "party")]}  # fmt: skip
    key = bfv.keygen(root / "smallshop-key")
    values = np.random.default_rng(3).integers(0, 100_000, 40) / 100
    return root, files, key, values


def _signed(consortium, helper: str, signer: str = "smallshop", owner: str = "smallshop"):
    root, files, key, values = consortium
    manifest, _ = table.encrypt_table(
        key, "payments", owner, {"amount": values}, [COLUMN], POLICY, helper
    )
    body = manifest.to_bytes()
    proof = EntrustmentProof(
        body, pki.sign(files[signer].key.read_bytes(), body), files[signer].cert.read_bytes()
    )
    return manifest, proof


@pytest.fixture
def coordinator(consortium, tmp_path: Path):
    root, _, _, _ = consortium
    store = Store(f"sqlite:///{tmp_path}/coordinator.db")
    for name in ("helper", "clinic"):
        store.upsert_party(name, "party", "127.0.0.1:1", "pem")
    c = Coordinator(store, scheduler=None, ca_pem=(root / "ca.crt").read_bytes())  # type: ignore[arg-type]
    yield c
    store.close()


def _claim(**kw) -> DatasetSchema:
    # What a helper's message says; the coordinator takes schema and rows from the manifest.
    return dataclasses.replace(
        DatasetSchema("smallshop", "payments", (), 0, "outsourced", host="helper"), **kw
    )


def test_published_under_the_owners_name_with_the_signed_schema(consortium, coordinator):
    manifest, proof = _signed(consortium, "helper")

    entry = coordinator.publish_dataset(Identity("helper", "party"), _claim(), proof)

    listed = coordinator.store.list_datasets("smallshop")
    assert listed == [entry]
    assert (entry.party, entry.host, entry.node) == ("smallshop", "helper", "helper")
    assert entry.outsourced_sha256 == manifest.digest
    assert entry.row_count == 40 and [c.name for c in entry.columns] == ["amount"]
    assert entry.policy.exact_protocols == ("sum",) and entry.policy.budget_rho == 2.0
    assert coordinator.party_kind("helper") == "compute"  # it holds no data of its own
    published = [
        e for _, _, e, d, _, _ in coordinator.store.audit_rows() if e == "dataset_published"
    ]
    assert published == ["dataset_published"]


@pytest.mark.parametrize(
    ("publisher", "helper", "signer", "claim"),
    [
        ("helper", "helper", "intruder", {}),  # a manifest signed by someone else
        ("clinic", "helper", "smallshop", {}),  # entrusted to another node
        ("helper", "", "smallshop", {}),  # entrusted to no node
        ("helper", "helper", "smallshop", {"party": "intruder"}),  # another owner claimed
        ("helper", "helper", "smallshop", {"name": "salaries"}),  # another dataset claimed
    ],
)
def test_not_entrusted_is_refused_and_nothing_published(
    consortium, coordinator, publisher, helper, signer, claim
):
    _, proof = _signed(consortium, helper, signer=signer)

    with pytest.raises(EnsnifError) as refused:
        coordinator.publish_dataset(Identity(publisher, "party"), _claim(**claim), proof)

    assert refused.value.reason in ("outsourced_not_entrusted", "crypto_verification_failed")
    if signer == "smallshop":
        assert refused.value.reason == "outsourced_not_entrusted"
    assert coordinator.store.list_datasets() == []


def test_an_outsourced_claim_without_the_manifest_is_refused(coordinator):
    with pytest.raises(EnsnifError) as refused:
        coordinator.publish_dataset(Identity("helper", "party"), _claim())
    assert refused.value.reason == "outsourced_not_entrusted"
    assert coordinator.store.list_datasets() == []
