"""join_group_by, join_correlation and join_moments with an outsourced side
(protocols/he_join.py), through the real worker (three ``python -m protocols.worker``
processes, real TenSEAL BFV, the owner's client in this process:
tests/protocols/he_rows_run.py), on the PRF route, against pandas on generated data:
exactly, and under DP within 6σ of the release plan's noise. The outsourced side holds one
row per key (distinct keys, as encryption requires); the live side repeats keys.
The same through the coordinator and the owner's real `serve`:
tests/integration/test_outsourced_joins_grouped.py."""

from __future__ import annotations

import math
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
KEY = Column("cust", "int", 0, 10**8)
AMOUNT = Column("amount", "float", 0.0, 500.0, DECIMALS)
GROUPS = ["1", "2", "3", "7", "x"]  # 7: no row has it; "x": no int column holds it


def _grid(values: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(values, dtype=float) * 10**DECIMALS).astype(np.int64)


def _group_by_pandas(
    a: pd.DataFrame, b: pd.DataFrame, threshold: float | None
) -> dict[str, Fraction]:
    """B's rows by group over A's keys (whose total filter exceeds the threshold), on the
    grid, exactly."""
    if threshold is None:
        keys = set(a["cust"])
    else:
        totals = a.assign(f=_grid(a["filter"])).groupby("cust")["f"].sum()
        keys = set(totals[totals > round(threshold * 10**DECIMALS)].index)
    b = b.assign(v=_grid(b["amount"]), g=b["grp"].astype(str))
    hit = b[b["cust"].isin(keys)]
    out: dict[str, Fraction] = {}
    for g in GROUPS:
        rows = hit[hit["g"] == g]
        out[f"count[{g}]"] = Fraction(len(rows))
        out[f"sum[{g}]"] = Fraction(int(rows["v"].sum()), 10**DECIMALS)
    return out


@pytest.mark.timeout(900)
@pytest.mark.parametrize("upper", [10, 100])
def test_join_group_by_with_an_outsourced_second_side_is_pandas_s(tmp_path, upper):
    """B outsourced (key, int group, value), one row per key; the live A thresholds its
    filter totals over repeated keys. Group codes declared within [0, 10]: the indicators
    by the Lagrange table; within [0, 100] (201 points > LAGRANGE_POINTS): by secure
    equalities."""
    rng = np.random.default_rng(140)
    b_keys = rng.permutation(3000)[:900] + 10**6
    grp = rng.choice([1, 2, 3, 4], size=len(b_keys))  # 4 is not listed
    amount = rng.integers(0, 50_000, size=len(b_keys)) / 100
    outsourced = OutsourcedTable(
        {"cust": b_keys, "grp": grp, "amount": amount},
        (KEY, Column("grp", "int", 0, upper), AMOUNT),
        {"key": "cust", "group": "grp", "value": "amount"},
        keys=("cust",),
    )
    a_keys = rng.integers(0, 3000, size=1100) + 10**6
    filt = rng.integers(0, 1000, size=len(a_keys)) / 100
    live = OwnerTable(
        {"cust": a_keys, "filter": filt},
        (KEY, Column("filter", "float", 0.0, 10.0, DECIMALS)),
        {"key": "cust", "filter": "filter"},
    )
    params = {**PRF, "groups": GROUPS, "threshold": 4.0}
    got = run(
        tmp_path, "join_group_by", live, outsourced, params, decimals=DECIMALS,
        job_id=f"hejgb1u{upper}", timeout=600.0, holder=1,
    )  # fmt: skip
    want = _group_by_pandas(
        pd.DataFrame({"cust": a_keys, "filter": filt}),
        pd.DataFrame({"cust": b_keys, "grp": grp, "amount": amount}),
        4.0,
    )
    assert 20 < want["count[1]"] < 300 and want["count[7]"] == 0
    for name, value in want.items():
        assert got.outputs[name] == value, name
    assert got.outputs["mean[2]"] == want["sum[2]"] / want["count[2]"]
    assert math.isnan(got.outputs["mean[x]"])


@pytest.mark.timeout(900)
def test_join_group_by_with_an_outsourced_first_side_thresholds_its_rows(tmp_path):
    """A outsourced (key, filter: its row is the key's total), B live with repeated keys
    across groups."""
    rng = np.random.default_rng(141)
    a_keys = rng.permutation(2000)[:800] + 10**6
    filt = rng.integers(0, 1000, size=len(a_keys)) / 100
    outsourced = OutsourcedTable(
        {"cust": a_keys, "filter": filt},
        (KEY, Column("filter", "float", 0.0, 10.0, DECIMALS)),
        {"key": "cust", "filter": "filter"},
        keys=("cust",),
    )
    b_keys = rng.integers(0, 2000, size=1200) + 10**6
    grp = rng.choice([1, 2, 3], size=len(b_keys))
    amount = rng.integers(0, 50_000, size=len(b_keys)) / 100
    live = OwnerTable(
        {"cust": b_keys, "grp": grp, "amount": amount},
        (KEY, Column("grp", "int", 0, 10), AMOUNT),
        {"key": "cust", "group": "grp", "value": "amount"},
    )
    params = {**PRF, "groups": GROUPS, "threshold": 6.5}
    got = run(
        tmp_path, "join_group_by", live, outsourced, params, decimals=DECIMALS,
        job_id="hejgb0", timeout=600.0, holder=0,
    )  # fmt: skip
    want = _group_by_pandas(
        pd.DataFrame({"cust": a_keys, "filter": filt}),
        pd.DataFrame({"cust": b_keys, "grp": grp, "amount": amount}),
        6.5,
    )
    assert 30 < want["count[3]"] < 400
    for name, value in want.items():
        assert got.outputs[name] == value, name


def _correlation_sides(rng: np.random.Generator, holder: int):
    """A (key, x) and B (key, y = 0.6 x + noise): the outsourced side one row per key,
    the live side 1–3 rows per key; about 500 shared keys."""
    ids = rng.permutation(2000)[:900] + 10**6
    x = rng.integers(0, 40_000, size=len(ids)) / 100
    live_keys = np.concatenate([ids[:500], rng.permutation(np.arange(2000, 2400))[:200] + 10**6])
    visits = rng.integers(1, 4, size=len(live_keys))
    repeated = np.repeat(live_keys, visits)
    by_id = dict(zip(ids, x, strict=True))
    base = np.array([by_id.get(k, 200.0) for k in repeated])
    y = np.round(np.clip(0.6 * base + rng.normal(0, 40, len(repeated)), 0, 500), DECIMALS)
    out = OutsourcedTable(
        {"cust": ids, "amount": x}, (KEY, AMOUNT), {"key": "cust", "value": "amount"},
        keys=("cust",),
    )  # fmt: skip
    live = OwnerTable(
        {"cust": repeated, "amount": y}, (KEY, AMOUNT), {"key": "cust", "value": "amount"}
    )
    frames = [
        pd.DataFrame({"cust": ids, "v": _grid(x)}),
        pd.DataFrame({"cust": repeated, "v": _grid(y)}),
    ]
    if holder == 1:
        frames.reverse()
    return live, out, frames


def _pairs(frames: list[pd.DataFrame], how: str) -> np.ndarray:
    """The per-key values on the grid (sums, or means rounded half up), inner-joined."""
    per_key = []
    for f in frames:
        g = f.groupby("cust")["v"]
        sums, counts = g.sum(), g.size()
        per_key.append(sums if how == "sum" else (2 * sums + counts) // (2 * counts))
    joined = pd.concat(per_key, axis=1, join="inner")
    return joined.to_numpy(dtype=np.int64).astype(object)


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("holder", "how"), [(0, "mean"), (1, "sum")])
def test_join_correlation_with_an_outsourced_side_is_pandas_pearson(tmp_path, holder, how):
    rng = np.random.default_rng(150 + holder)
    live, out, frames = _correlation_sides(rng, holder)
    got = run(
        tmp_path, "join_correlation", live, out, {**PRF, "per_key": how}, decimals=DECIMALS,
        job_id=f"hejcor{holder}", timeout=600.0, holder=holder,
    )  # fmt: skip
    z = _pairs(frames, how).astype(float)
    assert len(z) == 500
    want = float(np.corrcoef(z[:, 0], z[:, 1])[0, 1])
    assert 0.3 < want < 0.99
    assert got.outputs["pairs"] == 500
    assert abs(got.outputs["r"] - want) < 1e-6


def _moments_exact(z: np.ndarray) -> dict[str, Fraction]:
    x, y = z[:, 0], z[:, 1]
    unit = 10**DECIMALS
    grid = f"@decimals={2 * DECIMALS}"
    return {
        "pairs": Fraction(len(z)),
        "sum_x": Fraction(int(x.sum()), unit),
        "sum_y": Fraction(int(y.sum()), unit),
        f"sumsq_x{grid}": Fraction(int((x * x).sum())),
        f"sumsq_y{grid}": Fraction(int((y * y).sum())),
        f"sum_xy{grid}": Fraction(int((x * y).sum())),
    }


@pytest.mark.timeout(900)
def test_join_moments_with_an_outsourced_first_side_is_pandas_exactly(tmp_path):
    """Exact: the six sums of the matched pairs to the unit, and the statistics pandas
    computes from the per-key table (means, sample variances, covariance)."""
    rng = np.random.default_rng(160)
    live, out, frames = _correlation_sides(rng, 0)
    got = run(
        tmp_path, "join_moments", live, out, {**PRF, "per_key": "mean"}, decimals=DECIMALS,
        job_id="hejmom0", timeout=600.0, holder=0,
    )  # fmt: skip
    z = _pairs(frames, "mean")
    for name, value in _moments_exact(z).items():
        assert got.outputs[name] == value, name
    f = z.astype(float) / 10**DECIMALS
    assert got.outputs["pairs"] == len(f)
    assert got.outputs["mean_x"] == pytest.approx(f[:, 0].mean(), rel=1e-12)
    assert got.outputs["var_y"] == pytest.approx(f[:, 1].var(ddof=1), rel=1e-9)
    assert got.outputs["cov"] == pytest.approx(np.cov(f[:, 0], f[:, 1])[0, 1], rel=1e-9)


@pytest.mark.timeout(900)
def test_a_dp_join_moments_with_an_outsourced_second_side_is_within_six_sigma(tmp_path):
    """ρ = 8 over the six sums (join_correlation's blocks, per_key = mean, c = 1): each
    noisy sum within 6σ of the exact one, σ from the release plan (on the grid)."""
    from ensnif_mpc.jobs.protocol import OwnerBounds
    from ensnif_mpc.privacy import dp
    from protocols.registry import catalog

    rng = np.random.default_rng(161)
    live, out, frames = _correlation_sides(rng, 1)
    params = {**PRF, "per_key": "mean"}
    owners = [OwnerBounds(1, {"value": (50_000,)}), OwnerBounds(1, {"value": (50_000,)})]
    plan = dp.plan(8.0, catalog()["join_moments"].dp_sensitivity(owners, params), 3, 1)
    got = run(
        tmp_path, "join_moments", live, out, params, decimals=DECIMALS,
        job_id="hejmomdp", timeout=600.0, holder=1, release=plan.to_dict(),
    )  # fmt: skip
    exact = _moments_exact(_pairs(frames, "mean"))
    sigmas = {p.name: p.noise_sd for p in got.parts[0].outputs}
    assert any(got.outputs[name] != value for name, value in exact.items())
    for name, value in exact.items():
        unit = 10**DECIMALS if name in ("sum_x", "sum_y") else 1  # the rest opens raw
        off = abs(float(got.outputs[name]) - float(value)) * unit
        assert sigmas[name] > 0 and off <= 6 * sigmas[name], (name, off, sigmas[name])


@pytest.mark.timeout(900)
def test_a_dp_join_group_by_with_an_outsourced_second_side_is_within_six_sigma(tmp_path):
    """ρ = 4 over the counts and sums (the live join's blocks, c = 1, no threshold): every
    listed group's noisy count and sum within 6σ of pandas', σ from the release plan."""
    from ensnif_mpc.jobs.protocol import OwnerBounds
    from ensnif_mpc.privacy import dp
    from protocols.registry import catalog

    rng = np.random.default_rng(142)
    b_keys = rng.permutation(3000)[:1000] + 10**6
    grp = rng.choice([1, 2, 3], size=len(b_keys))
    amount = rng.integers(0, 50_000, size=len(b_keys)) / 100
    outsourced = OutsourcedTable(
        {"cust": b_keys, "grp": grp, "amount": amount},
        (KEY, Column("grp", "int", 0, 10), AMOUNT),
        {"key": "cust", "group": "grp", "value": "amount"},
        keys=("cust",),
    )
    a_keys = rng.integers(0, 3000, size=1200) + 10**6
    live = OwnerTable({"cust": a_keys}, (KEY,), {"key": "cust"})
    groups = ["1", "2", "3"]
    params = {**PRF, "groups": groups}
    owners = [OwnerBounds(1), OwnerBounds(1, {"value": (50_000,)})]
    plan = dp.plan(4.0, catalog()["join_group_by"].dp_sensitivity(owners, params), 3, 1)
    got = run(
        tmp_path, "join_group_by", live, outsourced, params, decimals=DECIMALS,
        job_id="hejgbdp", timeout=600.0, holder=1, release=plan.to_dict(),
    )  # fmt: skip
    frame = pd.DataFrame({"cust": b_keys, "grp": grp, "v": _grid(amount)})
    hit = frame[frame["cust"].isin(set(a_keys))]
    sigmas = {p.name: p.noise_sd for p in got.parts[0].outputs}
    exact = {}
    for g in groups:
        rows = hit[hit["grp"] == int(g)]
        exact[f"count[{g}]"] = (len(rows), 1)
        exact[f"sum[{g}]"] = (int(rows["v"].sum()), 10**DECIMALS)  # σ on the grid
    assert any(got.outputs[name] != Fraction(v, u) for name, (v, u) in exact.items())
    for name, (value, unit) in exact.items():
        off = abs(float(got.outputs[name]) * unit - value)
        assert sigmas[name] > 0 and off <= 6 * sigmas[name], (name, off, sigmas[name])


@pytest.mark.timeout(900)
def test_a_dp_join_correlation_with_an_outsourced_first_side_is_within_six_sigma(tmp_path):
    """ρ = 8 over the six moments (per_key = sum, c = 2: the live side's sums capped at two
    rows, its mean kept): every noisy moment within 6σ of the one on the capped pandas
    join; r from the noisy moments."""
    from ensnif_mpc.jobs.protocol import OwnerBounds
    from ensnif_mpc.privacy import dp
    from ensnif_mpc.results.shares import combine
    from protocols.join.correlation import MOMENTS
    from protocols.registry import catalog

    rng = np.random.default_rng(151)
    live, out, frames = _correlation_sides(rng, 0)
    params = {**PRF, "per_key": "sum", "max_rows_per_key": 2}
    owners = [OwnerBounds(1, {"value": (50_000,)}), OwnerBounds(1, {"value": (50_000,)})]
    plan = dp.plan(8.0, catalog()["join_correlation"].dp_sensitivity(owners, params), 3, 1)
    got = run(
        tmp_path, "join_correlation", live, out, params, decimals=DECIMALS,
        job_id="hejcordp", timeout=600.0, holder=0, release=plan.to_dict(),
    )  # fmt: skip
    a, b = frames
    g = b.groupby("cust")["v"]
    sums, counts = g.sum(), g.size()
    kept = np.minimum(counts, 2)
    capped = (2 * sums * kept + counts) // (2 * counts)  # s·a/n half up, as the live cap
    joined = pd.concat([a.set_index("cust")["v"], capped], axis=1, join="inner")
    z = joined.to_numpy(dtype=np.int64).astype(object)
    x, y = z[:, 0], z[:, 1]
    exact = [len(z), x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum()]
    assert len(z) == 500
    sigmas = {p.name: p.noise_sd for p in got.parts[0].outputs}
    opened = combine(got.parts)  # the noisy moments, on the grid
    for name, value in zip(MOMENTS, exact, strict=True):
        off = abs(float(opened[name]) - float(value))
        assert sigmas[name] > 0 and off <= 6 * sigmas[name], (name, off, sigmas[name])
    assert -1.0 <= got.outputs["r"] <= 1.0


@pytest.mark.timeout(900)
def test_the_outsourced_owner_s_min_cohort_withholds_its_small_groups(tmp_path):
    """The outsourced second side signed min_cohort = 60: of the groups over the matched
    keys, those with fewer joined rows open as 0 with their marker set, the others equal
    pandas (the live owner's own minimum is 0)."""
    from ensnif_mpc.results.shares import combine

    rng = np.random.default_rng(143)
    b_keys = rng.permutation(2000)[:600] + 10**6
    grp = rng.choice([1, 2, 3], size=len(b_keys), p=[0.7, 0.25, 0.05])
    amount = rng.integers(0, 50_000, size=len(b_keys)) / 100
    outsourced = OutsourcedTable(
        {"cust": b_keys, "grp": grp, "amount": amount},
        (KEY, Column("grp", "int", 0, 10), AMOUNT),
        {"key": "cust", "group": "grp", "value": "amount"},
        keys=("cust",),
    )
    a_keys = np.concatenate([b_keys[:400], rng.permutation(np.arange(3000, 3500)) + 10**6])
    live = OwnerTable({"cust": a_keys}, (KEY,), {"key": "cust"})
    groups = ["1", "2", "3"]
    got = run(
        tmp_path, "join_group_by", live, outsourced, {**PRF, "groups": groups},
        decimals=DECIMALS, job_id="hejgbmc", timeout=600.0, holder=1,
        policy={"min_cohort": 60},
    )  # fmt: skip
    raw = combine(got.parts)
    hit = pd.DataFrame({"cust": b_keys, "grp": grp, "v": _grid(amount)})[:400]
    sizes = {g: int((hit["grp"] == int(g)).sum()) for g in groups}
    assert sizes["1"] >= 60 > sizes["3"]  # one group answered, one withheld at least
    for g in groups:
        withheld = sizes[g] < 60
        assert raw[f"withheld[{g}]"] == int(withheld), g
        rows = hit[hit["grp"] == int(g)]
        assert raw[f"count[{g}]"] == (0 if withheld else len(rows)), g
        want_sum = 0 if withheld else Fraction(int(rows["v"].sum()), 10**DECIMALS)
        assert raw[f"sum[{g}]"] == want_sum, g
