"""The DP logistic regression with an outsourced owner (protocols/he_logistic_dp.py) through
the real worker (tests/protocols/he_rows_run.py: three MPyC processes, real TenSEAL BFV,
the owner's client in this process): every step's noisy gradient sum against the plaintext
replay of the same public trajectory (the live owner's clipped sum plus the outsourced
rows' clipped sum in float64), within the noise; the model against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ensnif_mpc.data.schema import Column
from ensnif_mpc.privacy import dp
from protocols import he_logistic_dp as hdp
from protocols.models import logistic as lr
from protocols.registry import OwnerBounds, catalog
from tests.protocols.harness import OwnerTable
from tests.protocols.he_rows_run import OutsourcedTable, run

pytestmark = pytest.mark.slow

LOWER, UPPER, DECIMALS = -50.0, 120.0, 2
D = 3


def _rows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.round(rng.uniform(LOWER, UPPER, (n, D)), DECIMALS)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-((x - 35) @ [0.05, -0.04, 0.03])))).astype(int)
    return x, y


def _table(x: np.ndarray, y: np.ndarray, kind: type[OwnerTable] = OwnerTable) -> OwnerTable:
    names = [f"x{j}" for j in range(D)]
    data = {n: x[:, j] for j, n in enumerate(names)} | {"y": y.astype(np.int64)}
    columns = tuple(Column(n, "float", LOWER, UPPER, DECIMALS) for n in names)
    columns += (Column("y", "int", 0, 1),)
    return kind(data, columns, {"label": "y"}, lists={"features": names})


def test_the_newton_count_reaches_the_inverse_norm_for_every_row():
    for d in (2, 4, 11, 21):
        q = np.linspace(1.0, d, 257)
        y = np.full_like(q, 1 / np.sqrt(d))
        for _ in range(hdp.inverse_steps(d)):
            y = y * (3 - q * y * y) / 2
        assert np.max(np.abs(y * np.sqrt(q) - 1)) < 2.0**-14


@pytest.mark.timeout(900)
def test_outsourced_rows_join_the_dp_logistic_regression(tmp_path):
    rng = np.random.default_rng(2051)
    x, y = _rows(rng, 500)
    live_n, steps = 250, 4
    params = {"lower": [LOWER] * D, "upper": [UPPER] * D, "steps": steps, "clip": 1.0}
    blocks = catalog()["logistic_regression"].dp_sensitivity([OwnerBounds(1)] * 2, params)
    release = dp.plan(40.0, blocks, 3, 1).to_dict()

    got = run(
        tmp_path, "logistic_regression", _table(x[:live_n], y[:live_n]),
        _table(x[live_n:], y[live_n:], OutsourcedTable), params, decimals=DECIMALS,
        release=release, job_id="helogdp", timeout=600.0,
    )  # fmt: skip

    plan = dp.ReleasePlan.from_dict(release)
    sd = [plan.block_sd(b) for b in plan.blocks]
    lower, upper = np.array(params["lower"]), np.array(params["upper"])
    a = lr.design_matrix(x, lower, upper)
    n_hat = float(got.outputs["count[0]"])
    assert abs(n_hat - len(x)) <= 6 * sd[0]
    w = np.zeros(D + 1)
    outsourced = len(x) - live_n
    for t in range(steps):  # the public trajectory, replayed in the clear
        want = lr.clipped_gradient_sum(a[:live_n], y[:live_n].astype(float), w, 1.0).astype(float)
        want += hdp.reference_clipped_sum(a[live_n:], y[live_n:], w, 1.0)
        noisy = np.array([float(got.outputs[f"gradient{t}[{j}]"]) for j in range(D + 1)])
        # the noise, plus per outsourced row its features' truncation onto the unit grid in
        # MPC (2^-12 a coordinate: under 2^-12·√D·2^20 = 2^9 of the row's gradient) and the
        # sum's one rounding
        assert np.all(np.abs(noisy - want) <= 6 * sd[1 + t] + outsourced * 2**9 + 1)
        w = lr.descent_step(w, noisy, n_hat, 1.0, 1.0)
    coef = np.array([float(got.outputs[f"coef[{j}]"]) for j in range(D)])
    intercept = float(got.outputs["intercept"])
    want_coef, want_intercept = lr.to_raw(w, lower, upper)
    assert np.allclose(coef, want_coef, atol=1e-6)
    assert intercept == pytest.approx(want_intercept, abs=1e-6)
    sk = LogisticRegression().fit(x, y)
    ours = lr.predict_proba(coef, intercept, x)
    assert abs(((ours > 0.5) == y).mean() - sk.score(x, y)) <= 0.05
