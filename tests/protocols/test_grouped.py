"""Group-by aggregates run by three real MPyC workers (two owners + a helper) against pandas.

Each owner holds a group column (string or int, CSV or Parquet) and a value column
with decimals. The list of groups names a group nobody has (it must come out as a
count of 0, a sum of 0 and a NaN mean) and leaves out groups that do occur (their
rows must be ignored). Counts, sums and ``group_by`` means are exact; ``group_mean``
divides in fixed point (relative error below 2^-30) and is compared within 1e-6.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from ensnif_mpc.data.schema import Column
from protocols import registry
from tests.protocols.harness import OwnerTable, exact, run_parties

pytestmark = pytest.mark.slow

ZIPS = np.array(["10115", "10117", "20095", "80331"], dtype=object)
GROUPS = ["10115", "20095", "99999", "80331"]  # 10117 occurs but is not listed; 99999 is empty


def owner(
    rng: np.random.Generator, rows: int, fmt: str, keys=ZIPS, key_type="string"
) -> OwnerTable:
    data = {
        "zip": rng.choice(keys, size=rows),
        "amount": rng.integers(-2000, 30000, size=rows) / 100,
    }
    key = Column("zip", key_type, 0, 1000) if key_type == "int" else Column("zip", key_type)
    columns = (key, Column("amount", "float", -20.0, 300.0, 2))
    return OwnerTable(data, columns, {"group": "zip", "value": "amount"}, fmt=fmt)


def pandas_exact(tables: list[OwnerTable]) -> pd.DataFrame:
    """count and exact sum per group by pandas, on the values in cents (integers: no rounding)."""
    frame = pd.concat(
        pd.DataFrame({"group": t.data["zip"], "cents": np.rint(t.data["amount"] * 100)})
        for t in tables
    )
    frame["group"] = frame["group"].astype(str)
    return frame.groupby("group")["cents"].agg(["count", "sum"])


def reference(protocol: str, tables: list[OwnerTable], params: dict) -> dict[str, float]:
    exact_tables = [{"group": t.data["zip"], "value": exact(t.data["amount"], 2)} for t in tables]
    return registry.get(protocol).reference(exact_tables, params)


def test_group_by_counts_sums_and_means_match_pandas_exactly(tmp_path):
    rng = np.random.default_rng(31)
    a, b = owner(rng, 700, "csv"), owner(rng, 1300, "parquet")

    got = run_parties(tmp_path, "group_by", [a, b, None], {"groups": GROUPS}, decimals=2)

    want = pandas_exact([a, b])
    assert set(got.outputs) == {f"{o}[{g}]" for o in ("count", "sum", "mean") for g in GROUPS}
    for g in ("10115", "20095", "80331"):
        count, cents = int(want.loc[g, "count"]), int(want.loc[g, "sum"])
        assert got.outputs[f"count[{g}]"] == count
        assert got.outputs[f"sum[{g}]"] == Fraction(cents, 100)
        assert got.outputs[f"mean[{g}]"] == Fraction(cents, 100 * count)
    assert got.outputs["count[99999]"] == 0 and got.outputs["sum[99999]"] == 0
    assert math.isnan(got.outputs["mean[99999]"])
    assert {k: float(v) for k, v in got.outputs.items() if "99999" not in k} == {
        k: v
        for k, v in reference("group_by", [a, b], {"groups": GROUPS}).items()
        if "99999" not in k
    }


def test_group_mean_hides_counts_and_matches_within_the_fixed_point_tolerance(tmp_path):
    rng = np.random.default_rng(32)
    a, b = owner(rng, 500, "parquet"), owner(rng, 900, "csv")

    got = run_parties(tmp_path, "group_mean", [a, None, b], {"groups": GROUPS}, decimals=2)

    want = reference("group_mean", [a, b], {"groups": GROUPS})
    assert set(got.outputs) == {f"mean[{g}]" for g in GROUPS}
    for g in ("10115", "20095", "80331"):
        assert float(got.outputs[f"mean[{g}]"]) == pytest.approx(want[f"mean[{g}]"], rel=1e-6)
    assert math.isnan(got.outputs["mean[99999]"])
    sent = {o.name for o in got.parts[0].outputs}
    # and the minimum cohort's marker per group (0: no owner sets a min_cohort here)
    assert sent == {f"{o}[{g}]" for o in ("mean", "empty", "withheld") for g in GROUPS}


def test_group_count_and_sum_over_an_int_group_column(tmp_path):
    rng = np.random.default_rng(33)
    keys = np.array([7, 8, 70, 700])
    a = owner(rng, 400, "parquet", keys=keys, key_type="int")
    b = owner(rng, 600, "csv", keys=keys, key_type="int")
    groups = [7, "70", 9]  # an int column's 70 matches 70 or "70"; nobody has 9; 8, 700 ignored
    counts_only = [OwnerTable(t.data, t.columns, {"group": "zip"}, fmt=t.fmt) for t in (a, b)]

    counted = run_parties(
        tmp_path,
        "group_count",
        [counts_only[0], counts_only[1], None],
        {"groups": groups},
        job_id="count",
    )
    summed = run_parties(
        tmp_path, "group_sum", [a, b, None], {"groups": groups}, decimals=2, job_id="sum"
    )

    want = pandas_exact([a, b])
    assert counted.outputs == {
        "count[7]": want.loc["7", "count"],
        "count[70]": want.loc["70", "count"],
        "count[9]": 0,
    }
    assert summed.outputs == {
        "sum[7]": Fraction(int(want.loc["7", "sum"]), 100),
        "sum[70]": Fraction(int(want.loc["70", "sum"]), 100),
        "sum[9]": 0,
    }
