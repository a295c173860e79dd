"""join_logistic with real workers (two owners and a helper: three MPyC processes), against
scikit-learn and the float64 mirror on the pandas join of the same rows.

Owner A (grocery) holds a customer id, the basket value and the items bought, several
rows per customer and customers the other does not have; owner B (logistics) a customer
id, the delivery distance and whether the delivery was late (the 0/1 label), one row per
customer. The plaintext side reduces each owner's rows per key as the protocol does (the
mean rounded half up to the grid; the majority label), joins them with pandas and fits.

Exact release: the coefficients within 1e-5 of the float64 mirror (weights at 2^-24, the
same cubic σ and Newton steps), accuracy within 1 point of scikit-learn's
LogisticRegression on the joined rows and log-loss within 0.02 of it, on the
tagged-helper route (per-key means) and the PRF route (sums). DP release: every opened
gradient within 6σ (the plan's noise) of the same step recomputed in the clear at the
public weights the parties computed, and the released coefficients exactly that public
trajectory's. With keep = "artifact" nothing is opened and the kept model is the
released one. Bad input: near-collinear rows with a tiny penalty make the weights leave the
fixed point's range (``model_out_of_range``), a feature constant over the matched keys
fails with ``singular_system``, a label of 2 with ``data_out_of_schema``, each with
nothing sealed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from ensnif_mpc.data.schema import Column
from ensnif_mpc.jobs.protocol import OwnerBounds
from ensnif_mpc.privacy import dp
from protocols.models import logistic as lr, vertical_logistic as vl, vertical_logistic_defs
from protocols.models.secure_math import unit_grid
from protocols.registry import catalog
from tests.protocols.harness import (
    OwnerTable,
    RunResult,
    Workers,
    make_consortium,
    run_parties,
    status_of,
    write_sessions,
)

pytestmark = pytest.mark.slow

DECIMALS = 1
BASKET, ITEMS, DISTANCE = 300.0, 40.0, 30.0
BOX = {"lower": [0.0, 0.0, 0.0], "upper": [BASKET, ITEMS, DISTANCE]}
REG = catalog()["join_logistic"]


def _owners(rng: np.random.Generator, *, constant: bool = False):
    ids = rng.permutation(800)[:300]
    visits = rng.integers(1, 4, len(ids))
    customer = np.repeat(ids, visits)
    basket = np.round(rng.uniform(10, 290, len(customer)), DECIMALS)
    items = np.round(rng.uniform(1, 39, len(customer)), DECIMALS)
    grocery = OwnerTable(
        {"customer": customer, "basket": basket, "items": items},
        (
            Column("customer", "int", 0, 1000),
            Column("basket", "float", 0, BASKET, DECIMALS),
            Column("items", "float", 0, ITEMS, DECIMALS),
        ),
        {"key": "customer"},
        lists={"features": ["basket", "items"]},
    )
    theirs = np.concatenate([ids[:240], rng.integers(800, 1000, 50)])  # 240 shared
    distance = np.round(rng.uniform(1, 29, len(theirs)), DECIMALS)
    mean_basket = {k: basket[customer == k].mean() for k in ids[:240]}
    b = np.array([mean_basket.get(k, 150.0) for k in theirs])
    if constant:
        distance = np.full(len(theirs), 12.5)
    score = 0.25 * (distance - 15) + 0.012 * (b - 150)
    late = (rng.uniform(size=len(theirs)) < 1 / (1 + np.exp(-score))).astype(np.int64)
    logistics = OwnerTable(
        {"customer": theirs, "distance": distance, "late": late},
        (
            Column("customer", "int", 0, 1000),
            Column("distance", "float", 0, DISTANCE, DECIMALS),
            Column("late", "int", 0, 1),
        ),
        {"key": "customer", "label": "late"},
        lists={"features": ["distance"]},
    )
    return grocery, logistics


def _near_collinear(rng: np.random.Generator) -> tuple[OwnerTable, OwnerTable]:
    """B's feature is A's basket ± 0.2 and the label says which sign: with l2 = 10^-4
    the first Newton step along that almost-flat direction is about 2000 (normalized)."""
    ids = rng.permutation(800)[:200]
    basket = np.round(rng.uniform(10, 290, len(ids)), DECIMALS)
    items = np.round(rng.uniform(1, 39, len(ids)), DECIMALS)
    grocery = OwnerTable(
        {"customer": ids, "basket": basket, "items": items},
        A.columns,
        {"key": "customer"},
        lists={"features": ["basket", "items"]},
    )
    late = rng.integers(0, 2, len(ids))
    logistics = OwnerTable(
        {"customer": ids, "distance": np.round(basket + np.where(late, 0.2, -0.2), 1)},
        (Column("customer", "int", 0, 1000), Column("distance", "float", 0, BASKET, DECIMALS)),
        {"key": "customer", "label": "late"},
        lists={"features": ["distance"]},
    )
    logistics.data["late"] = late.astype(np.int64)
    logistics = OwnerTable(
        logistics.data,
        (*logistics.columns, Column("late", "int", 0, 1)),
        logistics.roles,
        lists=logistics.lists,
    )
    return grocery, logistics


RNG = np.random.default_rng(31)
A, B = _owners(RNG)
SEP_A, SEP_B = _near_collinear(np.random.default_rng(32))
RANGE_BOX = {"lower": [0.0, 0.0, 0.0], "upper": [BASKET, ITEMS, BASKET]}
CONST_A, CONST_B = _owners(np.random.default_rng(33), constant=True)


def _tables(a: OwnerTable, b: OwnerTable) -> list[dict[str, Any]]:
    return [
        {
            "key": a.data["customer"],
            "features": np.column_stack([a.data["basket"], a.data["items"]]),
        },
        {"key": b.data["customer"], "features": b.data["distance"], "label": b.data["late"]},
    ]


def _plan(params: dict[str, Any], rho: float) -> dict[str, Any]:
    assert REG.dp_sensitivity is not None
    blocks = REG.dp_sensitivity([OwnerBounds(1), OwnerBounds(1)], params)
    return dp.plan(rho, blocks, 3, 1).to_dict()


EXACT = {**BOX, "steps": 8, "per_key": "mean"}
# Sums of up to three visits: a box that holds them (a sum beyond it would be clamped).
SUM_BOX = {"lower": [0.0, 0.0, 0.0], "upper": [3 * BASKET, 3 * ITEMS, DISTANCE]}
# l2 = 0.1: on the wider box the weights are larger in normalized units, and a penalty
# of 1 would pull them 2 points of accuracy away from scikit-learn's (C = 1, raw units).
SUMS = {**SUM_BOX, "steps": 8, "l2": 0.1, "per_key": "sum", "join_path": "prf-shuffle"}
DP = {**BOX, "steps": 6, "per_key": "mean", "learning_rate": 4.0}
RHO = 50.0
RUNS: dict[str, tuple[Any, Any, dict[str, Any], dict[str, Any] | None]] = {
    "exact": (A, B, EXACT, None),
    "prf": (A, B, SUMS, None),
    "dp": (A, B, DP, _plan(DP, RHO)),
    "kept": (A, B, {**EXACT, "keep": "artifact"}, None),
}
FAILING = {
    "range": (SEP_A, SEP_B, {**RANGE_BOX, "steps": 3, "l2": 1e-4}),
    "constant": (CONST_A, CONST_B, EXACT),
}


def _run(root: Path, kind: str) -> RunResult:
    a, b, params, release = RUNS[kind]
    return run_parties(
        root / kind,
        "join_logistic",
        [a, b, None],
        params,
        decimals=DECIMALS,
        job_id=f"vlog{kind}",
        timeout=400,
        release=release,
    )


def _failing(root: Path, kind: str) -> list[Path]:
    a, b, params = FAILING[kind]
    root = root / kind
    dirs = write_sessions(
        root,
        make_consortium(root, 3),
        job_id=f"vlog{kind}",
        protocol="join_logistic",
        owner_values=[a, b, None],
        params=params,
        decimals=DECIMALS,
    )
    with Workers(dirs) as workers:
        workers.start_all()
        codes = workers.wait(timeout=400)
    assert all(code != 0 for code in codes.values()), codes
    return dirs


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every job of this module (six consortia of three workers), two at a time."""
    root = tmp_path_factory.mktemp("join_logistic")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENSNIF_TRACE_OPENINGS", "1")  # every worker logs what it opens
        with ThreadPoolExecutor(2) as pool:
            done = {k: pool.submit(_run, root, k) for k in RUNS}
            done.update({k: pool.submit(_failing, root, k) for k in FAILING})
            return {k: f.result() for k, f in done.items()}


def _coefs(run: RunResult) -> tuple[np.ndarray, float]:
    return (
        np.array([float(run.outputs[f"coef[{j}]"]) for j in range(3)]),
        float(run.outputs["intercept"]),
    )


@pytest.mark.parametrize("kind", ["exact", "prf"])
def test_exact_fit_is_its_mirror_and_within_a_point_of_scikit_learn(runs, kind):
    params = RUNS[kind][2]
    x, y = vertical_logistic_defs.joined(_tables(A, B), params, DECIMALS)
    want = vertical_logistic_defs.reference_on_grid(_tables(A, B), params, DECIMALS)

    coef, intercept = _coefs(runs[kind])

    np.testing.assert_allclose(coef, [want[f"coef[{j}]"] for j in range(3)], atol=1e-5)
    assert intercept == pytest.approx(want["intercept"], abs=1e-5)
    sk = LogisticRegression(max_iter=1000).fit(x, y)
    ours = lr.predict_proba(coef, intercept, x)
    assert abs(((ours > 0.5) == y).mean() - sk.score(x, y)) <= 0.01
    assert log_loss(y, ours) <= log_loss(y, sk.predict_proba(x)[:, 1]) + 0.02
    assert len(y) == 240  # the matched customers, every one of them


@pytest.mark.parametrize("kind", ["exact", "dp"])
def test_the_sdk_reads_the_released_model_as_a_scikit_learn_estimator(runs, kind):
    from ensnif_mpc.sdk.models import from_values

    values = {k: float(v) for k, v in runs[kind].outputs.items()}
    coef, intercept = _coefs(runs[kind])
    x, _ = vertical_logistic_defs.joined(_tables(A, B), RUNS[kind][2], DECIMALS)

    estimator = from_values("join_logistic", values).to_sklearn()

    want = lr.predict_proba(coef, intercept, x)
    np.testing.assert_allclose(estimator.predict_proba(x)[:, 1], want)


def test_a_kept_model_opens_nothing_and_holds_the_released_weights(runs):
    kept, released = runs["kept"], runs["exact"]
    coef, intercept = _coefs(released)

    assert kept.outputs == {}
    model = [float(kept.artifacts[f"model[{i}]"]) for i in range(4)]  # [intercept, w…]
    np.testing.assert_allclose(model, [intercept, *coef], atol=1e-5)  # two runs: rounding


def test_the_reference_is_the_float_mirror_on_the_raw_join():
    x, y = vertical_logistic_defs.joined(_tables(A, B), SUMS, None)
    lower, upper = np.array(SUM_BOX["lower"]), np.array(SUM_BOX["upper"])
    w = lr.reference_fit(x, y, lower, upper, 0.1, 8)
    coef, intercept = lr.to_raw(w, lower, upper)

    ref = REG.reference(_tables(A, B), SUMS)

    np.testing.assert_allclose([ref[f"coef[{j}]"] for j in range(3)], coef, rtol=1e-12)
    assert ref["intercept"] == pytest.approx(intercept, rel=1e-12)


def test_dp_gradients_are_within_six_sigma_and_the_model_is_their_public_trajectory(runs):
    out = runs["dp"].outputs
    plan = dp.ReleasePlan.from_dict(RUNS["dp"][3])
    sd = [plan.block_sd(b) for b in plan.blocks]
    x, y = vertical_logistic_defs.joined(_tables(A, B), DP, DECIMALS)
    lower, upper = np.array(BOX["lower"]), np.array(BOX["upper"])
    grid = np.hstack([unit_grid(x, lower, upper, lr.FX), np.full((len(x), 1), 1 << lr.FX)])
    count = float(out["count[0]"])
    assert abs(count - len(x)) <= 6 * sd[0]

    noisy, w = [], np.zeros(4)
    for t in range(DP["steps"]):
        opened = np.array([float(out[f"gradient{t}[{i}]"]) for i in range(4)])
        exact, _ = vl.gradient_grid(grid, y.astype(np.int64), w)
        assert np.all(np.abs(opened - exact) <= 6 * sd[t + 1] + 2), (t, opened, exact)
        noisy.append(opened)
        w = vl.replay(grid, y, noisy, count, DP)
    coef, intercept = _coefs(runs["dp"])
    want, want_intercept = lr.to_raw(w, lower, upper)
    np.testing.assert_allclose(coef, want, atol=1e-6)
    assert intercept == pytest.approx(want_intercept, abs=1e-6)
    # With this budget the noise is small next to the gradients: the model is useful.
    sk = LogisticRegression(max_iter=1000).fit(x, y)
    assert ((lr.predict_proba(coef, intercept, x) > 0.5) == y).mean() >= sk.score(x, y) - 0.05


def test_dp_opens_the_count_the_noisy_gradients_and_masked_values_only(runs):
    """Per party: the noisy count first, one secure-integer vector of D per step (the
    noisy gradients), and otherwise only MPyC's masked openings (comparison and truncation
    masks: at most 132 random bits per gradient element), none of them a row's value:
    nothing is opened per row (B has 290 keys)."""
    for directory in runs["dp"].dirs:
        lines = [x for x in (directory / "openings.log").read_text().split("\n") if x]
        kinds = [(x.split()[0], int(x.split()[-1])) for x in lines]
        assert kinds[0] == ("ArraySecInt200", 1)
        secure = [size for kind, size in kinds if kind.startswith("ArraySecInt")]
        assert secure == [1] + [4] * DP["steps"]
        assert all(size in (1, 4, 200, 4 * 132) for _, size in kinds), kinds


def test_dp_count_and_steps_are_charged_as_blocks():
    assert REG.dp_sensitivity is not None
    blocks = REG.dp_sensitivity([OwnerBounds(2), OwnerBounds(1)], DP)
    assert [b.dims for b in blocks] == [1] + [4] * DP["steps"]
    assert blocks[0].l2 == 3
    assert blocks[1].l2 == pytest.approx(2 * 3 * 2 * (1 << lr.DP_GRID) + 4)


@pytest.mark.parametrize(
    ("kind", "reason"), [("range", "model_out_of_range"), ("constant", "singular_system")]
)
def test_bad_fits_fail_with_their_reason_and_nothing_sealed(runs, kind, reason):
    dirs = runs[kind]

    assert {status_of(d).reason_code for d in dirs} == {reason}
    assert not any((d / "result.sealed").exists() for d in dirs)


def test_the_near_collinear_rows_do_leave_the_range_in_the_mirror():
    """Why the guard fires above: after one step the float mirror's weights pass
    √D·‖w‖ ≥ 2^8 (D = 4), which the MPC fit checks before its second step."""
    params = FAILING["range"][2]
    x, y = vertical_logistic_defs.joined(_tables(SEP_A, SEP_B), params, DECIMALS)
    lower, upper = np.array(RANGE_BOX["lower"]), np.array(RANGE_BOX["upper"])
    w = lr.reference_fit(x, y, lower, upper, 1e-4, 1)
    assert np.linalg.norm(w) * 2 >= 2**lr.Z_BITS


def test_a_label_outside_zero_and_one_fails_without_quoting_it(tmp_path):
    data = dict(B.data)
    data["late"] = np.where(np.arange(len(data["late"])) == 5, 2, data["late"])
    columns = tuple(c if c.name != "late" else Column("late", "int", 0, 2) for c in B.columns)
    bad = OwnerTable(data, columns, B.roles, lists=B.lists)

    with pytest.raises(AssertionError, match="workers failed") as failure:
        run_parties(tmp_path, "join_logistic", [A, bad, None], EXACT, decimals=1, timeout=200)
    assert "other than 0 or 1" in str(failure.value)
