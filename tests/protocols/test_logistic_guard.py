"""The exact logistic fit's |z| guard fires with real workers (three MPyC processes).

Near-collinear features (the second is the first ± 0.2 on a box of 300, the label says
which sign) and a penalty of 10^-4 make the first fixed-Hessian Newton step about 2000 in
normalized units along the almost-flat direction, so √D·‖w‖ passes 2^Z_BITS before the
second step: the job fails with ``model_out_of_range`` on every party and nothing is
sealed. The float mirror (``logistic.reference_fit``) shows the same growth.
"""

from __future__ import annotations

import numpy as np
import pytest

from ensnif_mpc.data.schema import Column
from protocols.models import logistic as lr
from tests.protocols.harness import OwnerTable, Workers, make_consortium, status_of, write_sessions

pytestmark = pytest.mark.slow

UPPER = 300.0
PARAMS = {"lower": [0.0, 0.0], "upper": [UPPER, UPPER], "steps": 3, "l2": 1e-4}


def _rows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    first = np.round(rng.uniform(10, 290, n), 1)
    y = rng.integers(0, 2, n)
    return np.column_stack([first, np.round(first + np.where(y, 0.2, -0.2), 1)]), y


def _owner(x: np.ndarray, y: np.ndarray) -> OwnerTable:
    return OwnerTable(
        {"x0": x[:, 0], "x1": x[:, 1], "y": y.astype(np.int64)},
        (
            Column("x0", "float", 0, UPPER, 1),
            Column("x1", "float", 0, UPPER, 1),
            Column("y", "int", 0, 1),
        ),
        {"label": "y"},
        lists={"features": ["x0", "x1"]},
    )


X, Y = _rows(np.random.default_rng(41), 200)


def test_the_mirror_leaves_the_range_after_one_step():
    w = lr.reference_fit(X, Y, np.zeros(2), np.full(2, UPPER), PARAMS["l2"], 1)
    assert np.linalg.norm(w) * np.sqrt(3) >= 2**lr.Z_BITS


def test_the_exact_fit_fails_with_model_out_of_range_and_nothing_sealed(tmp_path):
    dirs = write_sessions(
        tmp_path,
        make_consortium(tmp_path, 3),
        job_id="lrange",
        protocol="logistic_regression",
        owner_values=[_owner(X[:110], Y[:110]), _owner(X[110:], Y[110:]), None],
        params=PARAMS,
        decimals=1,
    )
    with Workers(dirs) as workers:
        workers.start_all()
        codes = workers.wait(timeout=300)

    assert all(code != 0 for code in codes.values()), codes
    assert {status_of(d).reason_code for d in dirs} == {"model_out_of_range"}
    assert not any((d / "result.sealed").exists() for d in dirs)
