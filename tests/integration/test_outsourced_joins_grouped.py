"""join_correlation and join_group_by with an OUTSOURCED side through the coordinator, with real
processes (the coordinator, grocery, logistics and the helper over mTLS, MPyC workers as
subprocesses) and a member without a node (smallshop) that encrypts its customer table
with the real CLI (`ensnif outsource encrypt`: its key column `key = true`, an int segment
code and its visits), uploads it to the helper and answers with the real
`ensnif outsource serve` (the fixture of tests/integration/test_outsourced_joins.py, with a
policy that allows these joins). Exact releases against pandas; join_logistic with an
outsourced side is refused at submit (outsourced_join_unsupported) and nothing is
reserved."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import state_name
from tests.consortium import Consortium
from tests.helpers import wait_for
from tests.integration.test_outsourced_jobs import ROOT, _env, entrust, owner_profile
from tests.integration.test_outsourced_joins import _orders, _owner_line, _run

pytestmark = [pytest.mark.slow, pytest.mark.consortium(rows=300, connect_timeout_s=12.0)]
# join_logistic signed too: submit refuses it all the same (no conversion into it).
PROTOCOLS = ["join_correlation", "join_group_by", "join_logistic"]
SCHEMA = f"""
[[columns]]
name = "customer_id"
type = "string"
key = true

[[columns]]
name = "segment"
type = "int"
lower = 0
upper = 9

[[columns]]
name = "visits"
type = "int"
lower = 0
upper = 50

[[columns]]
name = "member"
type = "int"
lower = 0
upper = 1

[policy]
protocols = {PROTOCOLS}
exact_protocols = {PROTOCOLS}
budget_rho = 1.0
max_rho = 0.5
"""


@pytest.fixture(scope="module")
def owner(consortium: Consortium, tmp_path_factory: pytest.TempPathFactory):
    """smallshop's customers: about half of grocery's, and as many others, uploaded."""
    root = tmp_path_factory.mktemp("smallshop")
    profile = owner_profile(consortium, root)
    rng = np.random.default_rng(29)
    grocery = sorted(set(_orders(consortium)["customer_id"]))
    mine = [c for c in grocery if rng.random() < 0.5] + [f"X{i:07d}" for i in range(200)]
    ids = rng.permutation(np.array(mine, dtype=object))
    segment = rng.integers(1, 5, size=len(ids))
    visits = rng.integers(0, 50, size=len(ids))
    rows = zip(ids, segment, visits, visits % 2, strict=True)
    (root / "customers.csv").write_text(
        "customer_id,segment,visits,member\n" + "".join(f"{c},{s},{v},{m}\n" for c, s, v, m in rows)
    )
    key, node = entrust(consortium, profile, root / "customers.csv", "customers", SCHEMA)
    with consortium.client() as client:
        wait_for(lambda: any(d.party == "smallshop" for d in client.datasets()), 5, "published")
    table = pd.DataFrame({"segment": segment, "visits": visits}, index=ids.tolist())
    return profile, key, node, table


def _exact(consortium: Consortium, owner, spec: dict) -> dict:
    profile, key, node = owner[:3]
    allowed = [a for p in PROTOCOLS for a in ("--allow-protocol", p)]
    serving = subprocess.Popen(
        [sys.executable, "-m", "ensnif_mpc.cli.main", "outsource", "serve", "--node", node,
         "--node-name", "helper", "--key", key, *allowed, "--interval", "0.3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(profile), cwd=ROOT,
    )  # fmt: skip
    try:
        with consortium.client() as client:
            job = _run(client, jobspec.from_dict(spec))
            assert state_name(job) == "succeeded", (job.reason_code, job.reason)
            return dict(client.result(job.id, exact=True))
    finally:
        serving.terminate()
        serving.wait(10)


def _mean_cents(consortium: Consortium) -> pd.Series:
    """grocery's per-customer mean basket on the grid (cents, rounded half up)."""
    orders = _orders(consortium)
    cents = orders.assign(c=np.rint(orders["basket_total"] * 100).astype(np.int64))
    grouped = cents.groupby("customer_id")["c"]
    sums, counts = grouped.sum(), grouped.size()
    return (2 * sums + counts) // (2 * counts)


def _grocery(role: str = "value") -> dict:
    return {"party": "grocery", "dataset": "orders", "key": "customer_id", role: "basket_total"}


def test_an_exact_join_correlation_with_an_outsourced_side_equals_pandas(consortium, owner):
    """grocery's per-customer mean basket against smallshop's outsourced visits: r within
    1e-6 of numpy's on the pandas join, the pair count exactly."""
    table = owner[3]
    got = _exact(
        consortium, owner,
        {
            "protocol": "join_correlation",
            "helpers": ["logistics"],
            "params": {"join_path": "prf-shuffle", "per_key": "mean"},
            "inputs": [
                _grocery(),
                {"party": "smallshop", "dataset": "customers", "key": "customer_id",
                 "value": "visits"},
            ],
            "privacy": {"exact": True},
        },
    )  # fmt: skip
    joined = pd.concat([_mean_cents(consortium), table["visits"]], axis=1, join="inner")
    z = joined.to_numpy(dtype=float)
    assert 10 < len(joined) < len(table)
    assert int(got["pairs"]) == len(joined)
    assert float(got["r"]) == pytest.approx(np.corrcoef(z[:, 0], z[:, 1])[0, 1], abs=1e-6)


def test_an_exact_join_group_by_over_an_outsourced_second_side_equals_pandas(consortium, owner):
    """smallshop's visits by its segment code over the customers grocery holds."""
    table = owner[3]
    groups = ["1", "2", "3", "4"]
    got = _exact(
        consortium, owner,
        {
            "protocol": "join_group_by",
            "helpers": ["logistics"],
            "params": {"join_path": "prf-shuffle", "groups": groups},
            "inputs": [
                {"party": "grocery", "dataset": "orders", "key": "customer_id"},
                {"party": "smallshop", "dataset": "customers", "key": "customer_id",
                 "group": "segment", "value": "visits"},
            ],
            "privacy": {"exact": True},
        },
    )  # fmt: skip
    hit = table[table.index.isin(set(_orders(consortium)["customer_id"]))]
    assert 10 < len(hit) < len(table)
    for g in groups:
        rows = hit[hit["segment"] == int(g)]
        assert Fraction(got[f"count[{g}]"]) == len(rows), g
        assert Fraction(got[f"sum[{g}]"]) == int(rows["visits"].sum()), g


def test_join_logistic_with_an_outsourced_side_is_refused_at_submit(consortium, owner):
    from ensnif_mpc.errors import InvalidArgument

    spec = {
        "protocol": "join_logistic",
        "helpers": ["logistics"],
        "params": {"join_path": "prf-shuffle", "lower": [0], "upper": [500]},
        "inputs": [
            {"party": "grocery", "dataset": "orders", "key": "customer_id",
             "features": ["basket_total"]},
            {"party": "smallshop", "dataset": "customers", "key": "customer_id",
             "label": "member"},
        ],
        "privacy": {"exact": True},
    }  # fmt: skip
    with consortium.client() as client, pytest.raises(InvalidArgument) as err:
        client.submit(jobspec.from_dict(spec))
    assert err.value.reason == "outsourced_join_unsupported"
    assert "join_logistic cannot take an outsourced side" in str(err.value)
    line = _owner_line(consortium)
    assert line is None or line.reserved == 0
