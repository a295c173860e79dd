"""join_logistic holds the owners' joint minimum cohort on the matched set, with real
workers (two owners and a helper), as join_regression does (``vertical._hold_cohort``).

Owner A's ``min_cohort`` is 5 and B's 3, written into the workers' sessions as their nodes
write them:

- exact, 240 matched customers: answered, the float mirror's coefficients;
- exact, 3 matched customers (each owner's own side far above 5): the job fails with
  ``cohort_too_small`` after opening one bit, and nothing is sealed;
- DP, 240 matched: answered (the rule read on the noisy count passes);
- DP, the same 3 with A's minimum at 60: the job fails ``cohort_too_small`` on the noisy
  count (sd about 2 here, far below the gap to k) before any gradient is opened, and
  nothing is sealed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ensnif_mpc.jobs.worker_session import RESULT_FILE
from ensnif_mpc.results.shares import combine
from protocols.models import vertical_logistic_defs
from protocols.registry import finalize
from tests.protocols.harness import (
    OwnerTable,
    Workers,
    sessions_with_minimums,
    status_of,
    unseal_all,
)
from tests.protocols.test_join_logistic import DECIMALS, DP, EXACT, RHO, A, B, _plan, _tables

pytestmark = pytest.mark.slow

MINIMUMS = (5, 3)
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
    root: Path,
    b: OwnerTable,
    params: dict[str, Any],
    release: dict[str, Any] | None,
    minimums: tuple[int, int],
) -> dict[str, Any]:
    consortium, dirs = sessions_with_minimums(
        root, "join_logistic", [A, b], params, minimums,
        job_id="vlogk", decimals=DECIMALS, release=release,
    )  # fmt: skip
    with Workers(dirs) as workers:
        workers.start_all()
        codes = workers.wait(timeout=300)
    out: dict[str, Any] = {"codes": codes, "statuses": [status_of(d) for d in dirs]}
    out["sealed"] = [(d / RESULT_FILE).exists() for d in dirs]
    if not any(codes.values()):
        out["out"] = finalize("join_logistic", dict(combine(unseal_all(dirs, consortium, "vlogk"))))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("vlog_cohort")
    cases = {
        "many": (B, EXACT, None, MINIMUMS),
        "few": (FEW_B, EXACT, None, MINIMUMS),
        "many_dp": (B, DP, _plan(DP, RHO), MINIMUMS),
        "few_dp": (FEW_B, DP, _plan(DP, RHO), DP_MINIMUMS),
    }
    with ThreadPoolExecutor(2) as pool:
        futures = {k: pool.submit(_run, root / k, *case) for k, case in cases.items()}
        return {k: f.result() for k, f in futures.items()}


def test_a_matched_set_above_every_minimum_is_answered_as_the_mirror(runs):
    run = runs["many"]
    assert not any(run["codes"].values()), run["statuses"]
    want = vertical_logistic_defs.reference_on_grid(_tables(A, B), EXACT, DECIMALS)
    got = [float(run["out"][f"coef[{j}]"]) for j in range(3)]
    np.testing.assert_allclose(got, [want[f"coef[{j}]"] for j in range(3)], atol=1e-5)


def test_a_dp_matched_set_above_every_minimum_is_answered(runs):
    run = runs["many_dp"]
    assert not any(run["codes"].values()), run["statuses"]
    assert all(np.isfinite(float(run["out"][f"coef[{j}]"])) for j in range(3))


@pytest.mark.parametrize("kind", ["few", "few_dp"])
def test_a_join_of_three_keys_fails_cohort_too_small_and_seals_nothing(runs, kind):
    run = runs[kind]
    assert all(code != 0 for code in run["codes"].values()), run["codes"]
    assert {s.reason_code for s in run["statuses"]} == {"cohort_too_small"}
    assert not any(run["sealed"])
    assert not any(c.isdigit() for s in run["statuses"] for c in s.message)  # no count
