"""A submission reads every named member's kind from one catalog snapshot
(``coordinator.handlers._kinds``): the same answers as ``Coordinator.party_kind``, which
asks the store per member."""

from __future__ import annotations

from pathlib import Path

from coordinator.handlers import Coordinator, _kinds
from coordinator.store import Store
from ensnif_mpc.data.schema import Column, DatasetSchema

COLUMNS = (Column("amount", "float", 0.0, 100.0, 2),)


def test_the_snapshot_gives_every_member_the_kind_the_store_gives(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/coordinator.db")
    try:
        for name in ("grocery", "helper", "idle"):
            store.upsert_party(name, "party", "127.0.0.1:1", "pem")
        store.upsert_dataset(DatasetSchema("grocery", "orders", COLUMNS, 10))
        outsourced = DatasetSchema("smallshop", "payments", COLUMNS, 5, host="helper")
        store.upsert_dataset(outsourced)  # held by the helper, under its owner's name
        c = Coordinator(store, scheduler=None, ca_pem=b"")  # type: ignore[arg-type]
        kind = _kinds(store.list_datasets(), {p.name for p in store.list_parties()})
        names = ("grocery", "helper", "idle", "smallshop", "stranger")
        assert {n: kind(n) for n in names} == {n: c.party_kind(n) for n in names}
        assert [kind(n) for n in names] == [
            "data_owner",
            "compute",
            "compute",
            "data_owner",
            None,
        ]
    finally:
        store.close()
