"""Which private joins take an outsourced side, at submit and at the helper's admission
(issue 14): every join protocol of the registry is either served (then off the PRF route
it is refused ``outsourced_join_path``) or refused at submit with
``outsourced_join_unsupported`` and a message saying why; none reaches a node to fail
there. The admission's conversion of the new sides: the columns, their order and scales
(the group a label, never scaled), and its refusals."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from coordinator.outsourced import OUTSOURCED_JOINS, UNSERVED_JOINS, check_job
from ensnif_mpc.data.schema import Column
from ensnif_mpc.errors import InvalidArgument
from ensnif_mpc.jobs import jobspec
from party_node import outsourced_admission as adm
from protocols import registry

HOSTS = {"shop": "helper"}.get
PRF = {"join_path": "prf-shuffle"}


def _joins() -> list[str]:
    """Every two-owner join of the registry: the private-join family and the models'
    joins (join_regression, join_logistic)."""
    return sorted(
        name
        for name, d in registry.catalog().items()
        if d.family == "private-join" or name.startswith("join_")
    )


def _spec(protocol: str, parties: list[str], params: dict | None = None) -> jobspec.JobSpec:
    inputs = [{"party": p, "dataset": "d", "key": "k", "value": "v"} for p in parties]
    return jobspec.from_dict({"protocol": protocol, "inputs": inputs, "params": params or {}})


def test_every_join_protocol_is_served_or_refused_at_submit_with_its_reason():
    joins = _joins()
    assert {"join_group_by", "join_correlation", "join_moments", "join_logistic"} <= set(joins)
    assert set(joins) == OUTSOURCED_JOINS | set(UNSERVED_JOINS)
    assert set(adm.JOINS) >= OUTSOURCED_JOINS  # the helper converts what submit lets through
    for protocol in joins:
        for side in (["shop", "grocery"], ["grocery", "shop"]):
            if protocol in OUTSOURCED_JOINS:
                check_job(_spec(protocol, side, PRF), HOSTS)
                with pytest.raises(InvalidArgument) as off_route:
                    check_job(_spec(protocol, side), HOSTS)
                assert off_route.value.reason == "outsourced_join_path"
                continue
            with pytest.raises(InvalidArgument) as refused:
                check_job(_spec(protocol, side, PRF), HOSTS)
            assert refused.value.reason == "outsourced_join_unsupported"
            assert "shop's dataset is outsourced" in str(refused.value)
            assert UNSERVED_JOINS[protocol] in str(refused.value)
        check_job(_spec(protocol, ["grocery", "logistics"]), HOSTS)  # nothing outsourced


def _proposal(protocol: str, params: dict, decimals: int = 2) -> SimpleNamespace:
    spec = SimpleNamespace(protocol=protocol, params=params)
    return SimpleNamespace(spec=spec, decimals=decimals)


def test_the_group_by_second_side_converts_its_group_unscaled_then_its_value():
    grp, amount = Column("grp", "int", 0, 40), Column("amount", "float", 0, 500.0, 1)
    inp = SimpleNamespace(columns={"key": "cust"}, column_lists={})
    read = {"group": (grp,), "value": (amount,)}
    out = adm._conversion(_proposal("join_group_by", PRF), inp, None, read, "shop/d")
    assert out["columns"] == ["cust", "grp", "amount"]
    assert out["outputs"][8:] == ["grp", "amount"] and len(out["outputs"]) == 10
    assert out["scales"] == [1] * 9 + [10]
    assert out["bounds"][8:] == [40, 50_000]


def _dataset(*columns: Column) -> SimpleNamespace:
    return SimpleNamespace(columns=columns, keys=("cust",))


@pytest.mark.parametrize(
    ("protocol", "position", "params", "roles", "ok"),
    [
        ("join_group_by", 1, {}, {"key": "cust", "group": "grp", "value": "amount"}, True),
        ("join_group_by", 0, {}, {"key": "cust"}, True),
        ("join_group_by", 0, {"threshold": 3}, {"key": "cust", "filter": "amount"}, True),
        ("join_group_by", 0, {"threshold": 3}, {"key": "cust"}, False),
        ("join_group_by", 1, {}, {"key": "cust", "value": "amount"}, False),
        ("join_correlation", 0, {}, {"key": "cust", "value": "amount"}, True),
        ("join_moments", 1, {}, {"key": "cust", "value": "amount"}, True),
        ("join_moments", 1, {}, {"key": "cust"}, False),
    ],
)
def test_the_helper_admits_exactly_the_sides_the_programs_read(
    protocol, position, params, roles, ok
):
    dataset = _dataset(
        Column("cust", "int", 0, 10**6), Column("grp", "int", 0, 9), Column("amount", "float")
    )
    inp = SimpleNamespace(columns=roles, column_lists={})
    p = _proposal(protocol, {**PRF, **params})
    if ok:
        adm._check_join(p, inp, dataset, position, "shop/d")
    else:
        with pytest.raises(InvalidArgument, match="it gives"):
            adm._check_join(p, inp, dataset, position, "shop/d")


def test_a_group_column_that_is_not_an_int_code_is_refused_at_the_helper():
    dataset = _dataset(Column("cust", "int", 0, 10**6), Column("grp", "float", 0, 9.0, 1))
    inp = SimpleNamespace(columns={"key": "cust", "group": "grp", "value": "v"}, column_lists={})
    with pytest.raises(InvalidArgument, match="int column"):
        adm._check_join(_proposal("join_group_by", PRF), inp, dataset, 1, "shop/d")
