"""Private joins with three real MPyC parties (two owners + helper) against pandas on the same data.

Keys are drawn so that the tables overlap partly and contain duplicate keys
(several orders per customer); every expected value comes from the plaintext
reference of the protocol, computed by pandas on the rows the owners hold.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from ensnif_mpc.data.schema import Column
from protocols.registry import catalog
from tests.protocols.harness import OwnerTable, run_parties

PROTOCOLS = catalog()

pytestmark = pytest.mark.slow

ZIPS = ["10115", "10243", "20095", "80331"]


def orders(
    rng: np.random.Generator, rows: int, customers: int, key_type: str = "int"
) -> OwnerTable:
    keys = rng.integers(0, customers, size=rows)
    data = {
        "customer": keys
        if key_type == "int"
        else np.array([f"c{k:06d}" for k in keys], dtype=object),
        "basket": rng.integers(100, 20000, size=rows) / 100,
    }
    return OwnerTable(
        data,
        (
            Column("customer", key_type, 0, 10**7 if key_type == "int" else 0),
            Column("basket", "float", 0, 500, 2),
        ),
        {"key": "customer", "value": "basket"},
    )


def deliveries(
    rng: np.random.Generator, rows: int, offset: int, customers: int, key_type: str = "int"
) -> OwnerTable:
    keys = rng.integers(offset, offset + customers, size=rows)
    data = {
        "customer": keys
        if key_type == "int"
        else np.array([f"c{k:06d}" for k in keys], dtype=object),
        "zip": rng.choice(ZIPS + ["99999"], size=rows).astype(object),
        "minutes": rng.integers(5, 240, size=rows),
    }
    return OwnerTable(
        data,
        (
            Column("customer", key_type, 0, 10**7 if key_type == "int" else 0),
            Column("zip", "string"),
            Column("minutes", "int", 0, 300),
        ),
        {"key": "customer"},
        fmt="parquet",
    )


def with_roles(table: OwnerTable, **roles: str) -> OwnerTable:
    return OwnerTable(table.data, table.columns, roles, table.fmt, table.clamp)


def reference(protocol: str, tables: list[OwnerTable], params: dict) -> dict[str, float]:
    return PROTOCOLS[protocol].reference([t.role_values() for t in tables], params)


def test_intersection_size_and_sum_match_pandas_with_duplicate_keys(tmp_path):
    rng = np.random.default_rng(11)
    a = orders(rng, 600, customers=300)
    b = deliveries(rng, 500, offset=150, customers=300)
    assert pd.Series(a.data["customer"]).duplicated().any()  # several orders per customer

    size = run_parties(tmp_path, "intersection_size", [with_roles(a, key="customer"), b, None])
    want = reference("intersection_size", [a, b], {})
    assert size.outputs["count"] == want["count"]
    assert 0 < want["count"] < 300

    params = {"min": 20.0}
    total = run_parties(
        tmp_path, "intersection_sum", [a, b, None], params, decimals=2, job_id="sum"
    )
    want = reference("intersection_sum", [a, b], params)
    assert total.outputs["keys"] == want["keys"]
    assert total.outputs["rows"] == want["rows"]
    exact = sum(
        Fraction(round(v * 100), 100)
        for k, v in zip(a.data["customer"], a.data["basket"], strict=True)
        if v >= 20 and k in set(b.data["customer"].tolist())
    )
    assert total.outputs["sum"] == exact
    assert float(total.outputs["mean"]) == pytest.approx(want["mean"], rel=1e-12)


def test_join_group_by_with_a_secret_threshold_matches_pandas(tmp_path):
    rng = np.random.default_rng(5)
    a = with_roles(
        orders(rng, 500, customers=200, key_type="string"), key="customer", filter="basket"
    )
    b = with_roles(
        deliveries(rng, 700, offset=80, customers=200, key_type="string"),
        key="customer",
        group="zip",
        value="minutes",
    )
    params = {"groups": ZIPS + ["00000"], "threshold": 250.0}
    run = run_parties(tmp_path, "join_group_by", [a, b, None], params)
    want = reference("join_group_by", [a, b], params)
    for g in params["groups"]:
        assert run.outputs[f"count[{g}]"] == want[f"count[{g}]"], g
        assert run.outputs[f"sum[{g}]"] == want[f"sum[{g}]"], g
        if want[f"count[{g}]"]:
            assert float(run.outputs[f"mean[{g}]"]) == pytest.approx(want[f"mean[{g}]"], rel=1e-12)
        else:
            assert math.isnan(run.outputs[f"mean[{g}]"])
    assert want["count[00000]"] == 0  # a listed group with no members
    assert sum(want[f"count[{g}]"] for g in ZIPS) > 0


def test_join_correlation_matches_numpy_on_per_key_sums(tmp_path):
    rng = np.random.default_rng(9)
    a = orders(rng, 400, customers=150)
    b = with_roles(deliveries(rng, 400, offset=40, customers=150), key="customer", value="minutes")
    # Make the two sides correlated through the key, so r is far from 0.
    b.data["minutes"][:] = np.clip(b.data["customer"] % 97 + rng.integers(0, 30, 400), 0, 300)
    a.data["basket"][:] = np.round(
        np.clip(a.data["customer"] % 97 * 2.5 + rng.integers(0, 50, 400), 0, 500), 2
    )
    params = {"per_key": "sum"}
    run = run_parties(tmp_path, "join_correlation", [a, b, None], params, decimals=2, timeout=90)
    want = reference("join_correlation", [a, b], params)
    assert run.outputs["pairs"] == want["pairs"]
    # r² = (num/vx)(num/vy) in fixed point with f = 2·bit_length + 32: each quotient is
    # within ~2^-(f-1) absolutely, far below 1e-12 here; |r| is then √r² in the clear.
    assert run.outputs["r"] == pytest.approx(want["r"], abs=1e-9)
    assert abs(want["r"]) > 0.3


def test_sql_owner_and_an_empty_or_disjoint_side_give_documented_results(tmp_path):
    rng = np.random.default_rng(21)
    a = orders(rng, 300, customers=100)
    a = OwnerTable(a.data, a.columns, a.roles, fmt="sqlite")  # pre-aggregated in SQLite
    disjoint = deliveries(rng, 200, offset=1000, customers=100)

    run = run_parties(
        tmp_path, "intersection_sum", [a, disjoint, None], decimals=2, job_id="disjoint"
    )
    assert run.outputs["keys"] == run.outputs["rows"] == run.outputs["sum"] == 0
    assert math.isnan(run.outputs["mean"])

    empty = OwnerTable(
        {"customer": np.zeros(0, dtype=np.int64), "minutes": np.zeros(0, dtype=np.int64)},
        (Column("customer", "int", 0, 10**7), Column("minutes", "int", 0, 300)),
        {"key": "customer", "value": "minutes"},
    )
    corr = run_parties(
        tmp_path,
        "join_correlation",
        [a, empty, None],
        {"per_key": "sum"},
        decimals=2,
        job_id="empty",
    )
    assert math.isnan(corr.outputs["r"]) and corr.outputs["pairs"] == 0
    assert math.isnan(reference("join_correlation", [a, empty], {"per_key": "sum"})["r"])
