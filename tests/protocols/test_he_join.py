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


# -- join_regression (the vertical ridge) with an outsourced side ---------------------------
REG_DECIMALS = 1


def _grid_frame(data: dict[str, np.ndarray], columns: list[str], how: str) -> pd.DataFrame:
    """An owner's per-key rows as the protocol reduces them: sums, or means rounded half
    up to the grid (exact integers), in units."""
    scale = 10**REG_DECIMALS
    frame = pd.DataFrame({"key": data["cust"]})
    for c in columns:
        frame[c] = np.round(np.asarray(data[c]) * scale).astype(np.int64)
    grouped = frame.groupby("key")
    sums, counts = grouped.sum(), grouped.size().to_numpy()[:, None]
    if how == "sum":
        return sums / scale
    means = (2 * sums.to_numpy() + counts) // (2 * counts)
    return pd.DataFrame(means / scale, index=sums.index, columns=columns)


def _regression_sides(rng: np.random.Generator, outsourced: int):
    """A (key, minutes) and B (key, items, basket): the outsourced side one row per key,
    the live side several rows for some keys, 200 keys shared."""
    ids = rng.permutation(600)[:260] + 10**5
    minutes = np.round(rng.uniform(10, 100, len(ids)), REG_DECIMALS)
    b_keys = np.concatenate([ids[:200], rng.permutation(np.arange(700, 900))[:60] + 10**5])
    visits = np.ones(len(b_keys), dtype=np.int64)
    if outsourced == 0:
        visits = rng.integers(1, 4, len(b_keys))  # the live B repeats keys
    customer = np.repeat(b_keys, visits)
    by_id = dict(zip(ids, minutes, strict=True))
    delivery = np.array([by_id.get(c, 50.0) for c in customer])
    items = np.round(rng.uniform(1, 30, len(customer)), REG_DECIMALS)
    basket = np.round(20 + 1.5 * delivery + 3.0 * items + rng.normal(0, 8, len(customer)), 1)
    key = Column("cust", "int", 0, 10**6)
    cols_a = (key, Column("minutes", "float", 0, 120.0, REG_DECIMALS))
    cols_b = (
        key,
        Column("items", "float", 0, 120.0, REG_DECIMALS),
        Column("basket", "float", 0, 800.0, REG_DECIMALS),
    )
    data_a = {"cust": ids, "minutes": minutes}
    data_b = {"cust": customer, "items": items, "basket": np.clip(basket, 0, 800)}
    kind_a = OutsourcedTable if outsourced == 0 else OwnerTable
    kind_b = OutsourcedTable if outsourced == 1 else OwnerTable
    extra_a = {"keys": ("cust",)} if outsourced == 0 else {}
    extra_b = {"keys": ("cust",)} if outsourced == 1 else {}
    a = kind_a(data_a, cols_a, {"key": "cust"}, lists={"features": ["minutes"]}, **extra_a)
    b = kind_b(
        data_b, cols_b, {"key": "cust", "label": "basket"}, lists={"features": ["items"]},
        **extra_b,
    )  # fmt: skip
    return a, b


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("outsourced", "how"), [(0, "sum"), (1, "mean")])
def test_join_regression_with_an_outsourced_side_is_scikit_learn_s_ridge(tmp_path, outsourced, how):
    """The vertical ridge (λ = 30) over the pandas join of the per-key rows: coefficients
    within 1e-6 of scikit-learn's Ridge, the outsourced owner first (sums per key) and
    second (means per key)."""
    from sklearn.linear_model import Ridge

    a, b = _regression_sides(np.random.default_rng(31 + outsourced), outsourced)
    live, out = (b, a) if outsourced == 0 else (a, b)
    params = {**PRF, "per_key": how, "ridge": 30.0}
    got = run(
        tmp_path, "join_regression", live, out, params, decimals=REG_DECIMALS,
        job_id=f"hejreg{outsourced}", timeout=600.0, holder=outsourced,
    )  # fmt: skip
    joined = _grid_frame(dict(a.data), ["minutes"], how).join(
        _grid_frame(dict(b.data), ["items", "basket"], how), how="inner"
    )
    z = joined.to_numpy()
    assert len(z) == 200
    model = Ridge(alpha=30.0).fit(z[:, :2], z[:, 2])
    coefs = np.array([float(got.outputs[f"coef[{j}]"]) for j in range(3)])
    np.testing.assert_allclose(coefs, [model.intercept_, *model.coef_], rtol=1e-6, atol=1e-6)


@pytest.mark.timeout(900)
def test_a_dp_intersection_sum_with_an_outsourced_first_side_is_within_six_sigma(tmp_path):
    """ρ = 2 over keys, rows and sum (the live join's blocks, c = 1): each noisy output
    within 6σ of pandas' exact value, σ from the release plan; the outsourced side's
    one row per key is its own capped contribution."""
    from ensnif_mpc.jobs.protocol import OwnerBounds
    from ensnif_mpc.privacy import dp
    from protocols.registry import catalog

    rng = np.random.default_rng(77)
    ids = rng.permutation(3000)[:1500] + 10**7
    amount = rng.integers(0, 100_000, size=len(ids)) / 100
    outsourced = OutsourcedTable(
        {"cust": ids, "amount": amount},
        (Column("cust", "int", 0, 2 * 10**7), AMOUNT),
        {"key": "cust", "value": "amount"},
        keys=("cust",),
    )
    live_ids = rng.integers(0, 3000, size=1200) + 10**7
    live = OwnerTable({"cust": live_ids}, (Column("cust", "int", 0, 2 * 10**7),), {"key": "cust"})
    owners = [OwnerBounds(1, {"value": (100_000,)}), OwnerBounds(1)]
    blocks = catalog()["intersection_sum"].dp_sensitivity(owners, PRF)
    plan = dp.plan(2.0, blocks, 3, 1)
    got = run(
        tmp_path, "intersection_sum", live, outsourced, PRF, decimals=DECIMALS,
        job_id="hejoindp", timeout=600.0, holder=0, release=plan.to_dict(),
    )  # fmt: skip
    want = _pandas(pd.DataFrame({"cust": ids, "amount": amount}), pd.Series(live_ids))
    sigmas = {p.name: p.noise_sd for p in got.parts[0].outputs}
    noisy = [name for name in ("keys", "rows", "sum") if got.outputs[name] != want[name]]
    assert noisy  # noise was added
    for name, unit in (("keys", 1), ("rows", 1), ("sum", 10**DECIMALS)):  # σ on the grid
        assert sigmas[name] > 0
        error = abs(float(got.outputs[name]) - float(want[name])) * unit
        assert error <= 6 * sigmas[name], name


@pytest.mark.timeout(900)
def test_a_dp_join_regression_with_an_outsourced_side_is_within_six_sigma(tmp_path):
    """ρ = 64 (the live test's), per-key means, the outsourced owner second: every noisy
    statistic (n, Σz, the triangle of ZᵀZ) within 6σ of the exact ones on the pandas join."""
    from ensnif_mpc.jobs.protocol import OwnerBounds
    from ensnif_mpc.privacy import dp
    from protocols.models.gram import triangle
    from protocols.models.regression import CROSS
    from protocols.registry import catalog

    a, b = _regression_sides(np.random.default_rng(44), 1)
    params = {**PRF, "per_key": "mean"}
    owners = [
        OwnerBounds(1, {"features": (1200,)}),
        OwnerBounds(1, {"features": (1200,), "label": (8000,)}),
    ]
    plan = dp.plan(64.0, catalog()["join_regression"].dp_sensitivity(owners, params), 3, 1)
    got = run(
        tmp_path, "join_regression", a, b, params, decimals=REG_DECIMALS,
        job_id="hejregdp", timeout=600.0, holder=1, release=plan.to_dict(),
    )  # fmt: skip
    joined = _grid_frame(dict(a.data), ["minutes"], "mean").join(
        _grid_frame(dict(b.data), ["items", "basket"], "mean"), how="inner"
    )
    z = np.round(joined.to_numpy() * 10**REG_DECIMALS).astype(np.int64).astype(object)
    exact = {"n": float(len(z))}
    exact |= {f"sum[{j}]": float(z[:, j].sum()) / 10**REG_DECIMALS for j in range(3)}
    gram = z.T @ z
    for j, col in triangle(3):
        exact[f"{CROSS}{2 * REG_DECIMALS}[{j},{col}]"] = float(gram[j, col])
    sigmas = {p.name: p.noise_sd for p in got.parts[0].outputs}
    assert any(float(got.outputs[name]) != value for name, value in exact.items())
    for name, value in exact.items():
        scale = 10**REG_DECIMALS if name.startswith("sum[") else 1
        off = abs(float(got.outputs[name]) - value) * scale
        assert sigmas[name] > 0 and off <= 6 * sigmas[name], (name, off, sigmas[name])


@pytest.mark.timeout(900)
def test_intersection_size_with_an_outsourced_first_side_is_pandas_s(tmp_path):
    rng = np.random.default_rng(5)
    ids = np.array([f"U{i:05d}" for i in rng.permutation(4000)[:1400]], dtype=object)
    outsourced = OutsourcedTable(
        {"cust": ids}, (Column("cust", "string"),), {"key": "cust"}, keys=("cust",)
    )
    live_ids = np.array([f"U{i:05d}" for i in rng.integers(0, 4000, 900)], dtype=object)
    live = OwnerTable({"cust": live_ids}, (Column("cust", "string"),), {"key": "cust"})
    got = run(
        tmp_path, "intersection_size", live, outsourced, PRF, decimals=0,
        job_id="hejoinsize", timeout=600.0, holder=0,
    )  # fmt: skip
    want = len(set(ids.tolist()) & set(live_ids.tolist()))
    assert 100 < want < 900
    assert got.outputs["count"] == want
