"""The owners' minimum cohort holds inside MPC for every number a job opens (real workers).

Two owners and a helper (three MPyC worker processes per job). Each owner's node writes
its policy's ``min_cohort`` into its worker's session (here: written as the node does);
the worker inputs it as a secret, and an output whose joint count is below the largest
minimum opens as 0 with its ``withheld`` marker set, which the analyst's side reads as
withheld (NaN). The cohorts are ones no owner's own check sees: a join whose matched set
is one key, a bin and a group with one row in all, a group of six rows split three and
three. Every other output is exact against pandas; under DP the marker is decided by the
noisy count (groups sitting exactly at the minimum fall on either side of it).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ensnif_mpc.data.schema import Column
from ensnif_mpc.privacy import dp, withheld
from ensnif_mpc.results.shares import combine
from protocols.registry import catalog, finalize
from tests.protocols.harness import (
    OwnerTable,
    Workers,
    sessions_with_minimums,
    unseal_all,
)

pytestmark = pytest.mark.slow

K = 5  # owner A's min_cohort (owner B's is 3: the rule takes the larger)
DP_K = 30
rng = np.random.default_rng(1111)


def run(
    root: Path,
    protocol: str,
    tables: list[OwnerTable],
    params: dict[str, Any],
    minimums: tuple[int, int] = (K, 3),
    release: dict[str, Any] | None = None,
    decimals: int = 0,
) -> dict[str, Any]:
    """One job with the owners' minimums in their sessions; (raw combined, finalized)."""
    consortium, dirs = sessions_with_minimums(
        root, protocol, tables, params, minimums,
        job_id="cohort1", decimals=decimals, release=release,
    )  # fmt: skip
    with Workers(dirs) as workers:
        workers.start_all()
        codes = workers.wait(timeout=240)
        assert not any(codes.values()), workers.diagnose()
    raw = combine(unseal_all(dirs, consortium, "cohort1"))
    return {"raw": raw, "out": finalize(protocol, dict(raw))}


# -- the owners' data ---------------------------------------------------------------------------
def grouped(labels: list[str], values: np.ndarray) -> OwnerTable:
    data = {"g": np.array(labels, dtype=object), "v": values}
    columns = (Column("g", "string"), Column("v", "int", 0, 100))
    return OwnerTable(data, columns, {"group": "g", "value": "v"})


def column(values: np.ndarray) -> OwnerTable:
    return OwnerTable({"v": values}, (Column("v", "int", 0, 100),), {"value": "v"})


def keyed(keys: np.ndarray, values: np.ndarray | None = None, groups: Any = None) -> OwnerTable:
    data: dict[str, Any] = {"k": keys}
    columns = [Column("k", "int", 0, 10**6)]
    roles = {"key": "k"}
    if values is not None:
        data["v"], roles["value"] = values, "v"
        columns.append(Column("v", "int", 0, 100))
    if groups is not None:
        data["g"], roles["group"] = np.array(groups, dtype=object), "g"
        columns.append(Column("g", "string"))
    return OwnerTable(data, tuple(columns), roles)


GROUP_A = ["big"] * 60 + ["mid"] * 3 + ["tiny"]  # tiny: one row, at A only
GROUP_B = ["big"] * 40 + ["mid"] * 3 + ["other"] * 10
JOIN_GROUPS = ["many"] * 40 + ["one"] + ["few"] * 20  # B's, in JOIN_B's order
GROUPS = {"groups": ["big", "mid", "tiny"]}
VALS_A, VALS_B = rng.integers(0, 100, len(GROUP_A)), rng.integers(0, 100, len(GROUP_B))
HIST_A, HIST_B = rng.integers(0, 50, 80), np.array([*rng.integers(0, 50, 70), 95])
EDGES = {"edges": [0, 25, 50, 100]}  # [50, 100]: B's one row of 95
# The joins: A's keys; B_ONE shares exactly one of them (7). B shares 21: 7 (its group
# "one"), and 100..119 (group "few"); its 40 others (group "many") match nothing.
JOIN_A = np.array([*range(100, 160), 7, 7])
JOIN_B_ONE = np.array([*range(300, 340), 7])
JOIN_B = np.array([*range(300, 340), 7, *range(100, 120)])
JOIN_B_VALUES = rng.integers(0, 100, len(JOIN_B))


def dp_owners() -> tuple[list[OwnerTable], list[str]]:
    """30 groups of exactly DP_K rows (split between the owners), 4 big, 4 of one row."""
    at_k = [f"k{i:02d}" for i in range(30)]
    big, one = [f"big{i}" for i in range(4)], [f"one{i}" for i in range(4)]
    a = [g for g in at_k for _ in range(DP_K // 2)] + [g for g in big for _ in range(150)] + one
    b = [g for g in at_k for _ in range(DP_K - DP_K // 2)] + [g for g in big for _ in range(150)]
    tables = [grouped(a, rng.integers(0, 100, len(a))), grouped(b, rng.integers(0, 100, len(b)))]
    return tables, at_k + big + one


def dp_plan(groups: list[str]) -> dict[str, Any]:
    blocks = catalog()["group_sum"].dp_sensitivity([(1, 100), (1, 100)], {"groups": groups})
    return dp.plan(1.0, blocks, 3, 1).to_dict()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    dp_tables, dp_groups = dp_owners()
    jobs = {
        "group_mean": (
            [grouped(GROUP_A, VALS_A), grouped(GROUP_B, VALS_B)],
            GROUPS,
            {},
        ),
        "histogram": ([column(HIST_A), column(HIST_B)], EDGES, {}),
        "intersection_sum": (
            [keyed(JOIN_A, np.arange(len(JOIN_A)) % 100), keyed(JOIN_B_ONE)],
            {"join_path": "prf-shuffle"},
            {},
        ),
        "join_group_by": (
            [keyed(JOIN_A), keyed(JOIN_B, JOIN_B_VALUES, JOIN_GROUPS)],
            {"groups": ["one", "many", "few"]},
            {},
        ),
        "group_sum": (dp_tables, {"groups": dp_groups}, {"release": dp_plan(dp_groups)}),
    }
    jobs["group_sum"][2]["minimums"] = (DP_K, 0)

    def one(name: str) -> dict[str, Any]:
        tables, params, extra = jobs[name]
        return run(tmp_path_factory.mktemp(name), name, tables, params, **extra)

    with ThreadPoolExecutor(3) as pool:
        return dict(zip(jobs, pool.map(one, jobs), strict=True))


def test_a_group_of_one_row_is_withheld_and_a_joint_group_of_six_is_answered(runs):
    got, raw = runs["group_mean"]["out"], runs["group_mean"]["raw"]
    rows = pd.DataFrame({"g": GROUP_A + GROUP_B, "v": np.concatenate([VALS_A, VALS_B])})
    want = rows.groupby("g")["v"].mean()

    assert math.isnan(got["mean[tiny]"])  # before the rule: answered, the one row's value
    assert raw["withheld[tiny]"] == 1 and raw["mean[tiny]"] == 0  # zeroed inside MPC
    assert raw["withheld[mid]"] == raw["withheld[big]"] == 0  # six rows: three at each owner
    for g in ("big", "mid"):
        assert float(got[f"mean[{g}]"]) == pytest.approx(want[g], rel=1e-6)


def test_a_histogram_bin_of_one_row_is_withheld_the_others_exact(runs):
    got, raw = runs["histogram"]["out"], runs["histogram"]["raw"]
    values = np.concatenate([HIST_A, HIST_B])
    want = np.histogram(values, bins=EDGES["edges"])[0]

    assert math.isnan(got["count[2]"])  # before the rule: answered, 1
    assert raw["count[2]"] == 0 and [raw[f"withheld[{i}]"] for i in range(3)] == [0, 0, 1]
    assert [got["count[0]"], got["count[1]"]] == [want[0], want[1]]


def test_a_join_whose_matched_set_is_one_key_is_withheld(runs):
    got, raw = runs["intersection_sum"]["out"], runs["intersection_sum"]["raw"]

    assert len(set(JOIN_A) & set(JOIN_B_ONE)) == 1
    assert len(set(JOIN_A)) > K < len(set(JOIN_B_ONE))  # each owner's own side passes
    assert all(math.isnan(got[name]) for name in ("keys", "rows", "sum", "mean"))
    assert raw["withheld"] == 1
    assert raw["keys"] == raw["rows"] == raw["sum"] == 0


def test_a_joined_group_of_one_key_is_withheld_the_others_exact(runs):
    got, raw = runs["join_group_by"]["out"], runs["join_group_by"]["raw"]
    b = pd.DataFrame({"k": JOIN_B, "g": JOIN_GROUPS, "v": JOIN_B_VALUES})
    hit = b[b["k"].isin(set(JOIN_A))].groupby("g")["v"].agg(["count", "sum"])

    assert hit.loc["one", "count"] == 1 and hit.loc["few", "count"] == 20
    assert math.isnan(got["count[one]"]) and math.isnan(got["sum[one]"])
    assert (raw["withheld[one]"], raw["withheld[many]"], raw["withheld[few]"]) == (1, 1, 0)
    assert math.isnan(got["count[many]"])  # no matched row: 0 < k, withheld too
    assert (got["count[few]"], got["sum[few]"]) == (20, hit.loc["few", "sum"])
    assert got["mean[few]"] == Fraction(int(hit.loc["few", "sum"]), 20)


def test_under_dp_the_marker_is_decided_by_the_noisy_count(runs):
    raw = runs["group_sum"]["raw"]
    _, groups = dp_owners()
    sd = dp.ReleasePlan.from_dict(dp_plan(groups)).output_sigmas()[0]
    at_k = [g for g in groups if g.startswith("k")]
    held = sum(int(raw[f"withheld[{g}]"]) for g in at_k)

    assert 1 + 6 * sd < DP_K < 300 - 6 * sd  # one row: far below; big: far above
    assert all(raw[f"withheld[one{i}]"] == 1 for i in range(4))
    assert all(raw[f"withheld[big{i}]"] == 0 for i in range(4))
    # Exactly at the minimum: an exact rule keeps all 30; the noisy count drops about half.
    assert 3 <= held <= 27, held
    for g in groups:  # every withheld group opens as zeros; the others carry noisy counts
        if raw[f"withheld[{g}]"]:
            assert raw[f"count[{g}]"] == raw[f"sum[{g}]"] == 0
        else:
            assert float(raw[f"count[{g}]"]) >= DP_K
    for i in range(4):
        assert abs(float(raw[f"count[big{i}]"]) - 300) <= 6 * sd
    assert set(withheld.split(raw)[0]) == {f"{o}[{g}]" for o in ("count", "sum") for g in groups}
