"""Join keys of an outsourced dataset (ensnif_mpc/he/outsource_keys.py): the hash limbs
the owner encrypts, their conversion to shares through the real BFV rows path, and the
helper's admission of a join side (party_node/outsourced_admission.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ensnif_mpc.data.schema import Column
from ensnif_mpc.errors import DataError, InvalidArgument
from ensnif_mpc.he import bfv, outsource, outsource_keys, outsource_rows, outsource_table
from ensnif_mpc.he.outsource_table import OutsourcedColumn
from ensnif_mpc.security import mpc_session
from party_node import outsourced_admission as adm
from protocols import prf


def test_limbs_rebuild_the_hash_and_every_limb_is_below_its_bound():
    keys = np.array([0, -5, 10**15, "C0000123", ""], dtype=object)
    h = outsource_keys.key_hashes(keys)
    parts = outsource_keys.limbs(h)
    assert parts.shape == (8, 5) and parts.min() >= 0
    assert parts.max() <= outsource_keys.LIMB_BOUND < adm.MAX_ROW_BOUND
    rebuilt = (outsource_keys.weights()[:, None] * parts.astype(object)).sum(axis=0)
    assert rebuilt.tolist() == h.tolist()
    assert max(h) < 2**128 < prf.Q  # exact in the PRF's field
    # an int and a string of the same digits hash apart; the hash is the owner's and the
    # live owner's alike (a pure function of the key)
    assert outsource_keys.key_hashes([7])[0] != outsource_keys.key_hashes(["7"])[0]
    assert outsource_keys.key_hashes(np.array([7]))[0] == outsource_keys.key_hashes([7])[0]


def test_the_admission_constants_are_the_key_modules():
    assert (adm.KEY_LIMBS, adm.KEY_LIMB_BOUND) == (
        outsource_keys.LIMBS,
        outsource_keys.LIMB_BOUND,
    )
    assert outsource_keys.is_key_series("cust@key7")
    assert not outsource_keys.is_key_series("cust@key8")


def _key_column(kind: str = "int") -> OutsourcedColumn:
    bounds = (0.0, 1e12) if kind == "int" else (0.0, 0.0)
    return OutsourcedColumn(Column("cust", kind, *bounds), key=True)


def test_a_key_column_must_be_distinct_and_present():
    with pytest.raises(DataError, match="row 3: a key repeats") as err:
        outsource_table.key_series(np.array([5, 6, 5]), _key_column())
    assert "5" not in str(err.value).replace("row 3", "")  # no key in the message
    with pytest.raises(DataError, match="row 2: no key"):
        outsource_table.key_series(np.array(["a", None], dtype=object), _key_column("string"))
    with pytest.raises(DataError, match="row 1: not a number within"):
        outsource_table.key_series(np.array([-1, 2]), _key_column())
    with pytest.raises(InvalidArgument, match="int or string, without bins"):
        OutsourcedColumn(Column("cust", "float", 0, 1, 2), key=True)
    assert _key_column().series() == [f"cust@key{j}" for j in range(8)]


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
            )  # fmt: skip
        )
        keys.append(cred.key_pem)
    return peers, keys


def test_key_limbs_convert_to_shares_that_add_up_to_the_hash(tmp_path: Path, consortium):
    """Encrypt a string key column and a value, mask at the helper, decrypt, share and
    seal at the owner, subtract at the helper: the two parties' shares add up to each key's
    hash limbs and each value exactly, and the limbs rebuild the hash."""
    key = bfv.keygen(tmp_path / "key")
    ids = np.array([f"K{i}" for i in np.random.default_rng(3).permutation(9000)], dtype=object)
    amounts = np.arange(9000) % 1001
    cols = [_key_column("string"), OutsourcedColumn(Column("amount", "int", 0, 1000))]
    manifest, frames = outsource_table.encrypt_table(
        key, "cust", "alice", {"cust": ids, "amount": amounts}, cols, {}
    )
    assert manifest.columns[0]["key"] is True and "key" not in manifest.columns[1]
    assert set(manifest.series) == {*outsource_keys.series_names("cust"), "amount"}
    store = tmp_path / "store"
    outsource_table.write(
        store, key, manifest, frames,
        consortium.alice.key.read_bytes(), consortium.alice.cert.read_bytes(),
    )  # fmt: skip
    stored = outsource_table.open_stored(store, consortium.ca_pem)
    assert [c.key for c in stored.manifest.outsourced_columns()] == [True, False]
    series = [*outsource_keys.series_names("cust"), "amount"]
    batch, masks = outsource_rows.mask_rows(stored, "job-k", series)
    assert masks[:8].min() >= outsource_keys.LIMB_BOUND  # r in [B, t − B), B = 2^16 − 1
    peers, mpc_keys = _peers(consortium, "job-k")
    sealed = outsource_rows.share_masked_rows(
        key.context, key.context_sha256, batch, peers, consortium.ca_pem
    )
    forwarded = outsource.Forwarded.of(batch, sealed)
    shares = [outsource.open_share(mpc_keys[i].encode(), forwarded, "job-k", i) for i in (0, 1)]
    total = np.asarray(shares[0], dtype=object) + outsource_rows.helper_row_input(shares[1], masks)
    limbs = total[: 8 * 9000].reshape(8, 9000)
    rebuilt = (outsource_keys.weights()[:, None] * limbs).sum(axis=0)
    assert rebuilt.tolist() == outsource_keys.key_hashes(ids).tolist()
    assert total[8 * 9000 :].tolist() == amounts.tolist()


def _proposal(params: dict[str, object], position: int, columns: dict[str, str]):
    spec = SimpleNamespace(protocol="intersection_sum", params=params)
    inp = SimpleNamespace(party="shop", dataset="cust", columns=columns, column_lists={})
    dataset = SimpleNamespace(keys=frozenset({"cust"}))
    return SimpleNamespace(spec=spec, decimals=2), inp, dataset, position


PRF = {"join_path": "prf-shuffle"}


def test_the_helper_serves_a_join_side_only_on_the_prf_route_and_with_an_encrypted_key():
    adm._check_join(*_proposal(PRF, 1, {"key": "cust"}), "shop/cust")
    adm._check_join(*_proposal(PRF, 0, {"key": "cust", "value": "amount"}), "shop/cust")
    with pytest.raises(InvalidArgument) as off_route:
        adm._check_join(*_proposal({}, 1, {"key": "cust"}), "shop/cust")
    assert off_route.value.reason == "outsourced_join_path"
    with pytest.raises(InvalidArgument) as not_a_key:
        adm._check_join(*_proposal(PRF, 1, {"key": "amount"}), "shop/cust")
    assert not_a_key.value.reason == "outsourced_key_not_encrypted"
    with pytest.raises(InvalidArgument, match="gives key$"):
        adm._check_join(*_proposal(PRF, 1, {"key": "cust", "value": "x"}), "shop/cust")
    size = _proposal(PRF, 0, {"key": "cust"})
    size[0].spec.protocol = "intersection_size"  # keys only, on either side
    adm._check_join(*size, "shop/cust")


def test_a_join_side_converts_the_key_limbs_and_the_value_row_by_row():
    p, inp, dataset, _ = _proposal(PRF, 0, {"key": "cust", "value": "amount"})
    amount = Column("amount", "float", 0.0, 1000.0, 1)
    out = adm._conversion(p, inp, dataset, {"key": (), "value": (amount,)}, "shop/cust")
    assert out["mode"] == "rows" and out["columns"] == ["cust", "amount"]
    assert out["outputs"] == [*outsource_keys.series_names("cust"), "amount"]
    assert out["scales"] == [1] * 8 + [10]
    assert out["bounds"] == [2**16 - 1] * 8 + [100_000]
    wide = Column("amount", "float", 0.0, 100_000.0, 2)
    with pytest.raises(InvalidArgument) as err:
        adm._conversion(p, inp, dataset, {"key": (), "value": (wide,)}, "shop/cust")
    assert err.value.reason == "he_sum_out_of_range"


def test_the_signed_min_cohort_goes_to_the_mpc_or_refuses_on_the_public_row_count():
    from ensnif_mpc.errors import PolicyViolation
    from protocols.registry import catalog

    policy = adm.OwnerPolicy.from_manifest("shop", "cust", {"min_cohort": 50})
    for joint in ("histogram", "intersection_sum", "join_regression"):
        assert adm._min_cohort(policy, catalog()[joint], 10, "shop/cust") == 50
    assert adm._min_cohort(policy, catalog()["sum"], 50, "shop/cust") == 0  # 50 rows: allowed
    with pytest.raises(PolicyViolation) as err:
        adm._min_cohort(policy, catalog()["linear_regression"], 49, "shop/cust")
    assert err.value.reason == "cohort_too_small"
    none = adm.OwnerPolicy.from_manifest("shop", "cust", {})
    assert adm._min_cohort(none, catalog()["histogram"], 3, "shop/cust") == 0


def test_the_coordinator_refuses_two_outsourced_inputs_and_an_off_route_join_at_submit():
    from coordinator.outsourced import check_job
    from ensnif_mpc.jobs import jobspec

    hosts = {"shop": "helper", "office": "other-helper"}.get

    def spec(protocol: str, parties: list[str], params: dict[str, object]):
        inputs = [{"party": p, "dataset": "d", "key": "k", "value": "v"} for p in parties]
        inputs[1:] = [{"party": p, "dataset": "d", "key": "k"} for p in parties[1:]]
        return jobspec.from_dict({"protocol": protocol, "inputs": inputs, "params": params})

    check_job(spec("intersection_sum", ["grocery", "shop"], PRF), hosts)
    check_job(spec("intersection_sum", ["grocery", "logistics"], {}), hosts)  # no outsourced
    with pytest.raises(InvalidArgument) as off_route:
        check_job(spec("intersection_sum", ["shop", "grocery"], {}), hosts)
    assert off_route.value.reason == "outsourced_join_path"
    with pytest.raises(InvalidArgument) as two:
        check_job(spec("intersection_sum", ["shop", "office"], PRF), hosts)
    assert two.value.reason == "outsourced_one_per_job"


def test_the_helper_s_ledger_takes_the_signed_budget_and_delta_caps():
    from fractions import Fraction

    from party_node.node import Node

    policy = adm.OwnerPolicy.from_manifest(
        "shop", "cust", {"budget_rho": 0.75, "max_delta": 2e-6, "min_cohort": 3}
    )
    held = SimpleNamespace(policy=policy)
    ledger = SimpleNamespace(caps={}, delta_caps={})
    node = SimpleNamespace(outsourced=lambda owner, dataset: held, ledger=ledger)
    assert Node._hosted(node, "shop", "cust") is held  # type: ignore[arg-type]
    assert ledger.caps == {"shop/cust": Fraction(0.75)}
    assert ledger.delta_caps == {"shop/cust": Fraction(2e-6)}
    assert policy.min_cohort == 3


def test_a_key_column_is_refused_where_a_protocol_reads_values():
    """An int key column passes a numeric role's type check, but it holds no value series:
    refused at the helper's admission, before anything is reserved."""
    from ensnif_mpc.privacy.dp import ReleasePlan

    policy = adm.OwnerPolicy.from_manifest("shop", "cust", {"exact_protocols": ["sum"]})
    dataset = SimpleNamespace(keys=frozenset({"cust"}), policy=policy)
    spec = SimpleNamespace(protocol="sum", params={})
    p = SimpleNamespace(spec=spec, release=ReleasePlan(True, 0.0, (), 3, 1), decimals=0)
    inp = SimpleNamespace(party="shop", dataset="cust", columns={"value": "cust"}, column_lists={})
    with pytest.raises(InvalidArgument, match="is a join key"):
        adm.check_input(p, None, (0, inp, dataset), None)
    join = SimpleNamespace(protocol="intersection_sum", params=PRF)
    both = {"key": "cust", "value": "cust"}
    with pytest.raises(InvalidArgument, match="cannot be a value"):
        adm._check_join(
            SimpleNamespace(spec=join),
            SimpleNamespace(**{**vars(inp), "columns": both}),
            dataset,
            0,
            "shop/cust",
        )
