"""Models over an OUTSOURCED dataset through the coordinator, with real processes (issue
14): a real consortium (coordinator, grocery, logistics and the helper over mTLS, MPyC
workers as subprocesses) and a member without a node (smallshop) that encrypts its rows,
entrusts them to the helper and stays online with the real `ensnif outsource serve`.

k-means (exact) over smallshop's rows alone, grocery and logistics computing only, equals
scikit-learn's KMeans from the same initial centroids within the box grid; the DP logistic
regression runs, the helper's ledger charges smallshop's signed budget its ρ, and a run
beyond the rest of it is refused before anything starts (budget_exhausted, nothing
reserved); predict over it is refused at submit (outsourced_not_served)."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from sklearn.cluster import KMeans

from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import state_name
from tests.consortium import Consortium
from tests.integration.test_outsourced_jobs import ROOT, _env, entrust, owner_profile

pytestmark = [pytest.mark.slow, pytest.mark.consortium(rows=300, connect_timeout_s=12.0)]
SCHEMA = """
[[columns]]
name = "x0"
type = "float"
lower = 0
upper = 100
decimals = 1

[[columns]]
name = "x1"
type = "float"
lower = 0
upper = 100
decimals = 1

[[columns]]
name = "y"
type = "int"
lower = 0
upper = 1

[policy]
protocols = ["kmeans", "logistic_regression"]
exact_protocols = ["kmeans"]
budget_rho = 1.0
max_rho = 0.6
"""
ROWS = 300
BOX = {"lower": [0, 0], "upper": [100, 100]}
START = [[20.0, 20.0], [50.0, 80.0], [80.0, 30.0]]


@pytest.fixture(scope="module")
def shop(consortium: Consortium, tmp_path_factory: pytest.TempPathFactory):
    """smallshop's profile, key and rows (three clusters; a label from a logistic model),
    encrypted, uploaded to the helper and published."""
    root = tmp_path_factory.mktemp("smallshop")
    profile = owner_profile(consortium, root)
    rng = np.random.default_rng(21)
    centers = np.array([[15.0, 25.0], [45.0, 85.0], [85.0, 35.0]])
    x = np.round(
        np.clip(centers[rng.integers(0, 3, ROWS)] + rng.normal(0, 5, (ROWS, 2)), 0, 100), 1
    )
    y = (rng.uniform(size=ROWS) < 1 / (1 + np.exp(-(x @ [0.06, -0.04] - 0.5)))).astype(int)
    lines = [f"{a:.1f},{b:.1f},{c}" for (a, b), c in zip(x, y, strict=True)]
    (root / "rows.csv").write_text("x0,x1,y\n" + "\n".join(lines) + "\n")
    key, node = entrust(consortium, profile, root / "rows.csv", "visits", SCHEMA)
    return profile, key, node, x, y


def _serve(shop) -> subprocess.Popen[str]:
    profile, key, node, *_ = shop
    return subprocess.Popen(
        [sys.executable, "-m", "ensnif_mpc.cli.main", "outsource", "serve", "--node", node,
         "--node-name", "helper", "--key", key, "--allow-protocol", "kmeans",
         "--allow-protocol", "logistic_regression", "--interval", "0.3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(profile), cwd=ROOT,
    )  # fmt: skip


def _spec(protocol: str, params: dict, privacy: dict, label: bool = False) -> jobspec.JobSpec:
    shop_input = {"party": "smallshop", "dataset": "visits", "features": ["x0", "x1"]}
    if label:
        shop_input["label"] = "y"
    return jobspec.from_dict(
        {
            "protocol": protocol,
            "helpers": ["grocery", "logistics"],
            "inputs": [shop_input],
            "params": params,
            "privacy": privacy,
        }
    )


def _run(client, spec: jobspec.JobSpec):
    """Submit and wait (models take longer than the totals: up to 300 s on a loaded machine);
    a job still running after the wait fails the test with its state."""
    job_id = client.submit(spec).id
    try:
        return client.wait(job_id, timeout_s=300)
    except Exception:
        raise AssertionError(str(client.job(job_id))) from None


def _line(consortium: Consortium):
    lines = {b.dataset: b for b in consortium.nodes["helper"].node.ledger.show()}
    return lines["smallshop/visits"]


@pytest.mark.timeout(1200)
def test_models_train_on_an_outsourced_owners_rows_and_charge_its_budget(consortium, shop):
    x = shop[3]
    kmeans = _spec(
        "kmeans", {**BOX, "k": 3, "iterations": 3, "initial": sum(START, [])}, {"exact": True}
    )
    logistic = _spec("logistic_regression", {**BOX, "steps": 5}, {"rho": 0.5}, label=True)
    over = _spec("logistic_regression", {**BOX, "steps": 5}, {"rho": 0.6}, label=True)
    serving = _serve(shop)
    try:
        with consortium.client() as client:
            exact = _run(client, kmeans)
            assert state_name(exact) == "succeeded", exact.reason
            got = client.result(exact.id, exact=True)
            noisy = _run(client, logistic)
            assert state_name(noisy) == "succeeded", noisy.reason
            details = client.result_details(noisy.id)
            refused = _run(client, over)  # 0.5 + 0.6 > the signed budget of 1.0
    finally:
        serving.terminate()
        serving.wait(10)
    centroids = np.array(
        [[float(Fraction(got[f"centroid[{j},{i}]"])) for i in range(2)] for j in range(3)]
    )
    sk = KMeans(3, init=np.array(START), n_init=1, max_iter=3, algorithm="lloyd", tol=0).fit(x)
    quantum = 100 / 2**12  # the box grid the rows are mapped onto
    assert np.allclose(centroids, sk.cluster_centers_, atol=2 * quantum)
    sizes = [int(Fraction(got[f"size[{j}]"])) for j in range(3)]
    assert sizes == np.bincount(sk.labels_, minlength=3).tolist()
    assert abs(float(details.values["count[0]"]) - ROWS) < 6 * details.noise_sd["count[0]"]
    assert {"coef[0]", "coef[1]", "intercept"} <= set(details.values)
    assert state_name(refused) == "rejected" and refused.reason_code == "budget_exhausted"
    line = _line(consortium)
    assert (line.spent, line.reserved, line.cap) == (Fraction(0.5), 0, 1)


def test_predict_over_an_outsourced_dataset_is_refused_at_submit(consortium, shop):
    spec = jobspec.from_dict(
        {
            "protocol": "predict",
            "helpers": ["grocery", "logistics"],
            "inputs": [{"party": "smallshop", "dataset": "visits", "features": ["x0", "x1"]}],
            "artifacts": ["0123456789ab/model"],  # never read: refused before any node is asked
            "privacy": {"exact": True},
        }
    )
    with consortium.client() as client, pytest.raises(Exception) as refused:
        client.submit(spec)
    assert getattr(refused.value, "reason", None) == "outsourced_not_served", refused.value
