"""A private join with an OUTSOURCED side through the coordinator, with real processes (the
coordinator, grocery, logistics and the helper over mTLS, MPyC workers as subprocesses), and
a member without a node (smallshop) that encrypts its customer table with the real CLI
(`ensnif outsource encrypt`, its key column declared `key = true`), uploads it to the
helper and answers with the real `ensnif outsource serve`.

An exact intersection_sum of grocery's baskets over the customers smallshop holds, on the
PRF route, equals pandas exactly; a job without `join_path = "prf-shuffle"` is refused at
submit (outsourced_join_path)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import state_name
from tests.consortium import Consortium
from tests.helpers import wait_for
from tests.integration.test_outsourced_jobs import ROOT, _env, entrust, owner_profile

pytestmark = [pytest.mark.slow, pytest.mark.consortium(rows=300, connect_timeout_s=12.0)]
SCHEMA = """
[[columns]]
name = "customer_id"
type = "string"
key = true

[[columns]]
name = "visits"
type = "int"
lower = 0
upper = 50

[policy]
protocols = ["intersection_sum", "join_regression"]
exact_protocols = ["intersection_sum", "join_regression"]
budget_rho = 1.0
max_rho = 0.5
"""


def _owner_line(consortium: Consortium):
    lines = {b.dataset: b for b in consortium.nodes["helper"].node.ledger.show()}
    return lines.get("smallshop/customers")


def _orders(consortium: Consortium) -> pd.DataFrame:
    assert consortium.lc.data is not None
    return pd.read_csv(consortium.lc.data.orders, dtype={"customer_id": str})


@pytest.fixture(scope="module")
def owner(consortium: Consortium, tmp_path_factory: pytest.TempPathFactory):
    """smallshop's customers: about half of grocery's, and as many others, uploaded."""
    root = tmp_path_factory.mktemp("smallshop")
    profile = owner_profile(consortium, root)
    rng = np.random.default_rng(23)
    grocery = sorted(set(_orders(consortium)["customer_id"]))
    mine = [c for c in grocery if rng.random() < 0.5] + [f"X{i:07d}" for i in range(200)]
    ids = rng.permutation(np.array(mine, dtype=object))
    visits = rng.integers(0, 50, size=len(ids))
    (root / "customers.csv").write_text(
        "customer_id,visits\n" + "".join(f"{c},{v}\n" for c, v in zip(ids, visits, strict=True))
    )
    key, node = entrust(consortium, profile, root / "customers.csv", "customers", SCHEMA)
    with consortium.client() as client:
        wait_for(lambda: any(d.party == "smallshop" for d in client.datasets()), 5, "published")
    return profile, key, node, ids, visits


def _serve(owner):
    import subprocess
    import sys

    profile, key, node = owner[:3]
    allowed = ["--allow-protocol", "intersection_sum", "--allow-protocol", "join_regression"]
    return subprocess.Popen(
        [sys.executable, "-m", "ensnif_mpc.cli.main", "outsource", "serve", "--node", node,
         "--node-name", "helper", "--key", key, *allowed, "--interval", "0.3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(profile), cwd=ROOT,
    )  # fmt: skip


def _spec(params: dict[str, object], privacy: dict[str, object] | None = None) -> jobspec.JobSpec:
    return jobspec.from_dict(
        {
            "protocol": "intersection_sum",
            "helpers": ["logistics"],
            "params": params,
            "inputs": [
                {
                    "party": "grocery",
                    "dataset": "orders",
                    "key": "customer_id",
                    "value": "basket_total",
                },
                {"party": "smallshop", "dataset": "customers", "key": "customer_id"},
            ],
            "privacy": privacy or {"exact": True},
        }
    )


def _run(client, spec: jobspec.JobSpec):
    job_id = client.submit(spec).id
    try:
        return client.wait(job_id, timeout_s=120)
    except Exception:
        raise AssertionError(str(client.job(job_id))) from None


def test_an_exact_intersection_sum_with_an_outsourced_side_equals_pandas(
    consortium: Consortium, owner
):
    profile, key, node, ids = owner[:4]
    orders = _orders(consortium)
    hit = orders[orders["customer_id"].isin(set(ids.tolist()))]
    cents = int(np.rint(hit["basket_total"].to_numpy() * 100).astype(np.int64).sum())
    serving = _serve(owner)
    try:
        with consortium.client() as client:
            job = _run(client, _spec({"join_path": "prf-shuffle"}))
            assert state_name(job) == "succeeded", (job.reason_code, job.reason)
            got = client.result(job.id, exact=True)
    finally:
        serving.terminate()
        serving.wait(10)
    assert 0 < hit["customer_id"].nunique() < len(ids)
    assert Fraction(got["keys"]) == hit["customer_id"].nunique()
    assert Fraction(got["rows"]) == len(hit)
    assert Fraction(got["sum"]) == Fraction(cents, 100)


def test_a_join_off_the_prf_route_is_refused_before_anything_runs(consortium, owner):
    """Without join_path the manifest would name the tagged route, which cannot serve an
    outsourced side: refused at submit, before any node is asked (the helper refuses it
    too, and a key column not encrypted as a key:
    tests/unit/ensnif_mpc/he_outsource/test_he_join_keys.py)."""
    from ensnif_mpc.errors import InvalidArgument

    with consortium.client() as client, pytest.raises(InvalidArgument) as err:
        client.submit(_spec({}))
    assert err.value.reason == "outsourced_join_path"
    line = _owner_line(consortium)
    assert line is None or line.reserved == 0


def test_the_owner_offline_ends_an_outsourced_join_and_nothing_is_charged(consortium, owner):
    """A DP join (ρ = 0.2) while smallshop's client is not serving: the helper's worker
    waits for it within the window, the job ends owner_offline, smallshop's reservation
    is released and nothing is spent."""
    with consortium.client() as client:
        job = _run(client, _spec({"join_path": "prf-shuffle"}, {"rho": 0.2}))
    assert (state_name(job), job.reason_code) == ("failed", "owner_offline")
    line = _owner_line(consortium)
    assert line is not None and (line.spent, line.reserved) == (0, 0)


def test_join_regression_with_an_outsourced_side_is_scikit_learn_s(consortium, owner):
    """grocery's per-key mean basket (A's feature) against smallshop's outsourced visits
    (B's label) over the customers both hold: the vertical ridge (λ = 2) through the
    coordinator, coefficients within 1e-6 of scikit-learn's Ridge on the pandas join."""
    from sklearn.linear_model import Ridge

    ids, visits = owner[3], owner[4]
    orders = _orders(consortium)
    cents = orders.assign(c=np.rint(orders["basket_total"] * 100).astype(np.int64))
    grouped = cents.groupby("customer_id")["c"]
    sums, counts = grouped.sum(), grouped.size()
    means = (2 * sums + counts) // (2 * counts) / 100  # half up on the grid, as the join
    joined = pd.DataFrame({"v": visits}, index=ids.tolist()).join(means, how="inner")
    model = Ridge(alpha=2.0).fit(joined[["c"]].to_numpy(), joined["v"].to_numpy())
    spec = jobspec.from_dict(
        {
            "protocol": "join_regression",
            "helpers": ["logistics"],
            "params": {"join_path": "prf-shuffle", "per_key": "mean", "ridge": 2.0},
            "inputs": [
                {
                    "party": "grocery",
                    "dataset": "orders",
                    "key": "customer_id",
                    "features": ["basket_total"],
                },
                {
                    "party": "smallshop",
                    "dataset": "customers",
                    "key": "customer_id",
                    "label": "visits",
                },
            ],
            "privacy": {"exact": True},
        }
    )
    serving = _serve(owner)
    try:
        with consortium.client() as client:
            job = _run(client, spec)
            assert state_name(job) == "succeeded", (job.reason_code, job.reason)
            got = client.result(job.id, exact=True)
    finally:
        serving.terminate()
        serving.wait(10)
    coefs = [float(Fraction(got[f"coef[{j}]"])) for j in range(2)]
    np.testing.assert_allclose(coefs, [model.intercept_, *model.coef_], rtol=1e-6, atol=1e-6)
