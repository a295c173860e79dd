"""intersection_sum with an outsourced side (protocols/he_join.py), through the real worker
(three ``python -m protocols.worker`` processes, real TenSEAL BFV, the owner's client in
this process: tests/protocols/he_rows_run.py), on the PRF route, against pandas exactly:
the outsourced owner second (its keys only, int keys) and first (keys and values, string
keys). The same through the coordinator and the owner's real `serve`:
tests/integration/test_outsourced_joins.py."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from ensnif_mpc.data.schema import Column
from tests.protocols.harness import OwnerTable
from tests.protocols.he_rows_run import OutsourcedTable, run

pytestmark = pytest.mark.slow

DECIMALS = 2
PRF = {"join_path": "prf-shuffle"}


def _pandas(live_first: pd.DataFrame, second_keys: pd.Series) -> dict[str, Fraction]:
    """The first side's rows whose key the second side holds: distinct keys, rows, sum
    (on the grid, exactly)."""
    hit = live_first[live_first["cust"].isin(set(second_keys))]
    grid = np.rint(hit["amount"].to_numpy() * 10**DECIMALS).astype(np.int64)
    return {
        "keys": Fraction(hit["cust"].nunique()),
        "rows": Fraction(len(hit)),
        "sum": Fraction(int(grid.sum()), 10**DECIMALS),
    }


AMOUNT = Column("amount", "float", 0.0, 1000.0, DECIMALS)


@pytest.mark.timeout(900)
def test_an_outsourced_second_side_s_keys_join_a_live_owner_as_pandas_does(tmp_path):
    rng = np.random.default_rng(14)
    # The live first side: 1,500 rows over 900 customers (repeats: pre-aggregated per key).
    cust = rng.integers(0, 900, size=1500) * 7 + 10**9  # ids far beyond 2^17
    amount = rng.integers(0, 100_000, size=1500) / 100
    live = OwnerTable(
        {"cust": cust, "amount": amount},
        (Column("cust", "int", 0, 2 * 10**9), AMOUNT),
        {"key": "cust", "value": "amount"},
    )
    # The outsourced second side: 1,200 distinct customers, about half of them live ones.
    out_keys = rng.permutation(np.arange(0, 1800) * 7 + 10**9)[:1200]
    outsourced = OutsourcedTable(
        {"cust": out_keys},
        (Column("cust", "int", 0, 2 * 10**9),),
        {"key": "cust"},
        keys=("cust",),
    )
    got = run(
        tmp_path, "intersection_sum", live, outsourced, PRF, decimals=DECIMALS,
        job_id="hejoin1", timeout=600.0, holder=1,
    )  # fmt: skip
    want = _pandas(pd.DataFrame({"cust": cust, "amount": amount}), pd.Series(out_keys))
    assert 300 < want["keys"] < 900
    for name in ("keys", "rows", "sum"):
        assert got.outputs[name] == want[name], name
    assert got.outputs["mean"] == want["sum"] / want["rows"]
    assert got.helper_mask_s > 0  # the holder converted under encryption


@pytest.mark.timeout(900)
def test_an_outsourced_first_side_s_string_keys_and_values_join_as_pandas_does(tmp_path):
    rng = np.random.default_rng(41)
    ids = np.array([f"C-{i:06d}" for i in rng.permutation(2000)[:1300]], dtype=object)
    amount = rng.integers(0, 100_000, size=len(ids)) / 100
    outsourced = OutsourcedTable(
        {"cust": ids, "amount": amount},
        (Column("cust", "string"), AMOUNT),
        {"key": "cust", "value": "amount"},
        keys=("cust",),
    )
    live_ids = np.array([f"C-{i:06d}" for i in rng.integers(0, 2000, size=1000)], dtype=object)
    live = OwnerTable(
        {"cust": live_ids, "minutes": rng.integers(0, 300, size=1000)},
        (Column("cust", "string"), Column("minutes", "int", 0, 300)),
        {"key": "cust"},
    )
    got = run(
        tmp_path, "intersection_sum", live, outsourced, PRF, decimals=DECIMALS,
        job_id="hejoin0", timeout=600.0, holder=0,
    )  # fmt: skip
    want = _pandas(pd.DataFrame({"cust": ids, "amount": amount}), pd.Series(live_ids))
    assert 200 < want["keys"] < 1300
    for name in ("keys", "rows", "sum"):
        assert got.outputs[name] == want[name], name


@pytest.mark.timeout(900)
def test_the_outsourced_owner_s_signed_min_cohort_withholds_a_small_matched_set(tmp_path):
    """The outsourced owner signed min_cohort = 60; 50 of its keys match: inside MPC the
    holder inputs 60 as that owner's minimum, every output opens as 0 with the marker set
    (the live owner's own minimum is 0, so before this rule the join was answered)."""
    from ensnif_mpc.results.shares import combine

    rng = np.random.default_rng(7)
    cust = rng.permutation(400)[:300] + 10**6
    live = OwnerTable(
        {"cust": cust, "amount": rng.integers(0, 100_000, size=300) / 100},
        (Column("cust", "int", 0, 2 * 10**6), AMOUNT),
        {"key": "cust", "value": "amount"},
    )
    out_keys = np.concatenate([cust[:50], np.arange(5000, 5400) + 10**6])
    outsourced = OutsourcedTable(
        {"cust": out_keys}, (Column("cust", "int", 0, 2 * 10**6),), {"key": "cust"}, keys=("cust",)
    )
    got = run(
        tmp_path, "intersection_sum", live, outsourced, PRF, decimals=DECIMALS,
        job_id="hejoinmc", timeout=600.0, holder=1, policy={"min_cohort": 60},
    )  # fmt: skip
    raw = combine(got.parts)
    assert raw["withheld"] == 1
    assert raw["keys"] == raw["rows"] == raw["sum"] == 0
