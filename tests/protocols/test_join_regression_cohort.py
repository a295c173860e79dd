"""join_regression holds the owners' joint minimum cohort on the matched set, with real
workers (two owners and a helper).

The per-owner cohort check at each node sees only its own keys; the matched set exists only
inside MPC, so the rule is held there (``protocols.models.vertical._hold_cohort``, and
``protocols.joint_cohort.on_noisy_n`` for a DP release). Owner A's ``min_cohort`` is 5 and
B's 3, written into the workers' sessions as their nodes write them:

- exact, 200 matched customers: answered, the coefficients scikit-learn's;
- exact, 3 matched customers (each owner's own side far above 5): the job fails with
  ``cohort_too_small`` after opening one bit, and nothing is sealed;
- DP, the same 3 with A's minimum at 60: the public ``withheld`` marker is set (decided on
  the noisy n, whose sd here is far below the gap to k), every block opened as 0, and the
  client's finalize makes every output NaN instead of solving zeros.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from ensnif_mpc.jobs.worker_session import RESULT_FILE
from ensnif_mpc.results.shares import combine
from protocols.registry import finalize
from tests.protocols.harness import (
    OwnerTable,
    Workers,
    sessions_with_minimums,
    status_of,
    unseal_all,
)
from tests.protocols.test_join_regression import DECIMALS, A, B, _joined, _plan

pytestmark = pytest.mark.slow

MINIMUMS = (5, 3)  # A's and B's min_cohort: the rule takes the larger
# Under DP the rule reads the noisy n (three parties' discrete Gaussian shares, sd about 3.5
# in all for n here): k = 60 puts 3 matched keys more than 15 sd below it.
DP_MINIMUMS = (60, 3)


def _few(b: OwnerTable, shared: int) -> OwnerTable:
    """B's rows of only ``shared`` of A's customers, plus its rows nobody else has."""
    a_ids = set(np.asarray(A.data["customer"]).tolist())
    ids = np.asarray(b.data["customer"])
    matched = sorted({int(c) for c in ids if int(c) in a_ids})[:shared]
    keep = np.array([(int(c) not in a_ids) or (int(c) in matched) for c in ids])
    return OwnerTable(
        {k: np.asarray(v)[keep] for k, v in b.data.items()}, b.columns, b.roles, lists=b.lists
    )


FEW_B = _few(B, 3)


def _run(
    root: Path, b: OwnerTable, release: dict[str, Any] | None, minimums: tuple[int, int]
) -> dict[str, Any]:
    consortium, dirs = sessions_with_minimums(
        root, "join_regression", [A, b], {"per_key": "mean"}, minimums,
        job_id="vregk", decimals=DECIMALS, release=release,
    )  # fmt: skip
    with Workers(dirs) as workers:
        workers.start_all()
        codes = workers.wait(timeout=240)
    out: dict[str, Any] = {"codes": codes, "statuses": [status_of(d) for d in dirs]}
    out["sealed"] = [(d / RESULT_FILE).exists() for d in dirs]
    if not any(codes.values()):
        raw = combine(unseal_all(dirs, consortium, "vregk"))
        out["raw"], out["out"] = raw, finalize("join_regression", dict(raw))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("vreg_cohort")
    cases = {
        "many": (B, None, MINIMUMS),
        "few": (FEW_B, None, MINIMUMS),
        "few_dp": (FEW_B, _plan().to_dict(), DP_MINIMUMS),
    }
    with ThreadPoolExecutor(2) as pool:
        futures = {k: pool.submit(_run, root / k, *case) for k, case in cases.items()}
        return {k: f.result() for k, f in futures.items()}


def test_a_matched_set_above_every_minimum_is_answered_as_scikit_learn(runs):
    run = runs["many"]
    assert not any(run["codes"].values()), run["statuses"]
    z = _joined(A, B, "mean")
    model = LinearRegression().fit(z[:, :2], z[:, 2])
    got = [float(run["out"][f"coef[{j}]"]) for j in range(3)]
    np.testing.assert_allclose(got, [model.intercept_, *model.coef_], rtol=1e-6, atol=1e-6)
    assert "withheld" not in run["out"]


def test_an_exact_join_of_three_keys_fails_cohort_too_small_and_seals_nothing(runs):
    run = runs["few"]
    assert all(code != 0 for code in run["codes"].values()), run["codes"]
    assert {s.reason_code for s in run["statuses"]} == {"cohort_too_small"}
    assert not any(run["sealed"])
    assert not any(c.isdigit() for s in run["statuses"] for c in s.message)  # no count


def test_a_dp_join_of_three_keys_is_withheld_and_nothing_is_solved(runs):
    run = runs["few_dp"]
    assert not any(run["codes"].values()), run["statuses"]
    assert run["raw"]["withheld"] == 1
    blocks = {k: v for k, v in run["raw"].items() if k != "withheld"}
    assert blocks and all(v == 0 for v in blocks.values())
    out = run["out"]
    assert "withheld" not in out
    assert all(math.isnan(float(out[f"coef[{j}]"])) for j in range(3))
    assert math.isnan(float(out["r2"]))
