"""Jobs over an OUTSOURCED dataset through the coordinator, with real processes: a real
consortium (coordinator, grocery, logistics and the helper, production start() over mTLS,
MPyC workers as subprocesses), a member without a node (smallshop: an analyst certificate,
its BFV key) that encrypts its table, entrusts it to the helper (`ensnif outsource encrypt
--helper helper`, `upload`) and stays online with the real `ensnif outsource serve`.

The helper publishes the dataset in the catalog under smallshop's name; a `sum` over
grocery's live column plus smallshop's outsourced one is routed to the helper for
smallshop's position and equals numpy exactly (both policies allow an exact sum) and within
6σ of the stated noise (DP); the helper's ledger charges smallshop's signed budget; with
the owner offline the job ends owner_offline and nothing is charged."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ensnif_mpc.demo import sample_data
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import state_name
from ensnif_mpc.security import pki
from tests.consortium import Consortium
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.consortium(rows=300, connect_timeout_s=12.0)]
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = """
[[columns]]
name = "amount"
type = "float"
lower = 0
upper = 1000
decimals = 2
bins = [0, 250, 500, 750, 1000]

[policy]
protocols = ["sum", "mean", "histogram"]
exact_protocols = ["sum", "histogram"]
budget_rho = 1.0
max_rho = 0.6
"""


def _env(profile: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return env | {"ENSNIF_PROFILE": str(profile)}


def _cli(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ensnif_mpc.cli.main", *args],
        capture_output=True, text=True, env=_env(profile), timeout=180, cwd=ROOT,
    )  # fmt: skip


def owner_profile(consortium: Consortium, root: Path) -> Path:
    """smallshop, a member without a node: its consortium certificate and a CLI profile
    (no coordinator: it talks to the helper node only)."""
    files = pki.issue(consortium.lc.pki_dir, "smallshop", "analyst")
    profile = root / "profile.toml"
    profile.write_text(
        f'coordinator = "127.0.0.1:1"\n[tls]\nca = "{files.ca}"\n'
        f'cert = "{files.cert}"\nkey = "{files.key}"\n'
    )
    return profile


def entrust(
    consortium: Consortium, profile: Path, table: Path, name: str, schema: str
) -> tuple[str, str]:
    """The owner's real CLI: a BFV key made in its directory, ``table`` encrypted under it as
    dataset ``name`` with ``schema``, uploaded to the helper node; (key directory, helper's
    address)."""
    root = table.parent
    (root / "schema.toml").write_text(schema)
    key = str(root / "key")
    assert _cli(profile, "outsource", "keygen", "--key", key).returncode == 0
    enc = _cli(
        profile, "outsource", "encrypt", "--dataset", str(table),
        "--name", name, "--schema", str(root / "schema.toml"), "--key", key,
        "--out", str(root / "up"), "--helper", "helper",
    )  # fmt: skip
    assert enc.returncode == 0, enc.stderr
    node = f"127.0.0.1:{consortium.nodes['helper'].port}"
    up = _cli(profile, "outsource", "upload", "--dir", str(root / "up"), "--node", node,
              "--node-name", "helper")  # fmt: skip
    assert up.returncode == 0, up.stderr
    return key, node


@pytest.fixture(scope="module")
def owner(consortium: Consortium, tmp_path_factory: pytest.TempPathFactory):
    """smallshop's profile and key, its amounts, uploaded to the helper and published."""
    root = tmp_path_factory.mktemp("smallshop")
    profile = owner_profile(consortium, root)
    amounts = np.random.default_rng(11).integers(0, 100_000, size=700, endpoint=True)
    (root / "payments.csv").write_text(
        "amount\n" + "\n".join(f"{v / 100:.2f}" for v in amounts) + "\n"
    )
    key, node = entrust(consortium, profile, root / "payments.csv", "payments", SCHEMA)
    return profile, key, node, amounts


def _serve(owner) -> subprocess.Popen[str]:
    profile, key, node, _ = owner
    allowed = [a for p in ("sum", "mean", "histogram", "linear_regression")
               for a in ("--allow-protocol", p)]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "ensnif_mpc.cli.main", "outsource", "serve", "--node", node,
         "--node-name", "helper", "--key", key, *allowed, "--interval", "0.3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(profile), cwd=ROOT,
    )  # fmt: skip


def _spec(privacy: dict[str, object], protocol: str = "sum") -> jobspec.JobSpec:
    return jobspec.from_dict(
        {
            "protocol": protocol,
            "helpers": ["logistics"],
            "inputs": [
                {"party": "grocery", "dataset": "orders", "column": "basket_total"},
                {"party": "smallshop", "dataset": "payments", "column": "amount"},
            ],
            "privacy": privacy,
        }
    )


def _run(client, spec: jobspec.JobSpec):
    """Submit and wait; a job still running after the wait fails the test with its state."""
    job_id = client.submit(spec).id
    try:
        return client.wait(job_id, timeout_s=50)
    except Exception:
        job = client.job(job_id)
        raise AssertionError(str(job)) from None


def _grocery(consortium: Consortium) -> np.ndarray:
    assert consortium.lc.data is not None
    return sample_data.read_table(consortium.lc.data.orders, {"value": "basket_total"})["value"]


def _plaintext(consortium: Consortium, amounts: np.ndarray) -> Fraction:
    grocery = _grocery(consortium)
    cents = int(np.round(grocery * 100).astype(np.int64).sum()) + int(amounts.sum())
    return Fraction(cents, 100)


def _owner_line(consortium: Consortium):
    lines = {b.dataset: b for b in consortium.nodes["helper"].node.ledger.show()}
    return lines.get("smallshop/payments")


def test_the_helper_publishes_it_under_the_owners_name(consortium: Consortium, owner):
    with consortium.client() as client:
        # published at its upload (the registrar is woken), not at the next 10 s registration
        wait_for(lambda: any(d.party == "smallshop" for d in client.datasets()), 5, "published")
        (entry,) = [d for d in client.datasets() if (d.party, d.name) == ("smallshop", "payments")]
    assert (entry.name, entry.host, entry.row_count) == ("payments", "helper", 700)
    assert entry.policy.exact_protocols == ["sum", "histogram"]
    assert entry.policy.budget_rho == 1.0
    assert len(entry.outsourced_sha256) == 64


def test_exact_and_dp_sums_with_the_owner_online(consortium: Consortium, owner):
    want = _plaintext(consortium, owner[3])
    serving = _serve(owner)
    try:
        with consortium.client() as client:
            exact = _run(client, _spec({"exact": True}))
            assert state_name(exact) == "succeeded", exact.reason
            assert Fraction(client.result(exact.id, exact=True)["sum"]) == want
            assert _owner_line(consortium).spent == 0  # an exact release costs nothing

            noisy = _run(client, _spec({"rho": 0.5}))
            assert state_name(noisy) == "succeeded", noisy.reason
            details = client.result_details(noisy.id)

            mean = _run(client, _spec({"rho": 0.2}, "mean"))  # a noisy sum and count
            assert state_name(mean) == "succeeded", mean.reason
            averaged = client.result_details(mean.id)
    finally:
        serving.terminate()
        serving.wait(10)
    sd = details.noise_sd["sum"]
    got = float(details.values["sum"])
    assert got != float(want) and abs(got - float(want)) < 6 * sd  # 6σ: false alarm < 2e-9
    rows = 700 + len(_grocery(consortium))
    for name, truth in (("sum", float(want)), ("count", float(rows))):
        sd = averaged.noise_sd[name]
        assert abs(float(averaged.values[name]) - truth) < 6 * sd, name
    line = _owner_line(consortium)
    assert (line.spent, line.reserved, line.cap) == (Fraction(0.5) + Fraction(0.2), 0, 1)


def test_a_protocol_the_owner_did_not_sign_is_refused_at_the_helper(consortium, owner):
    with consortium.client() as client:
        job = _run(client, _spec({"rho": 0.1}, "count"))  # signed: sum and mean only
    assert state_name(job) == "rejected" and job.reason_code == "protocol_not_allowed"
    assert _owner_line(consortium).reserved == 0


def test_the_owner_offline_ends_the_job_and_nothing_is_charged(consortium: Consortium, owner):
    before = _owner_line(consortium)
    with consortium.client() as client:
        job = _run(client, _spec({"rho": 0.2}))
    assert state_name(job) == "failed", job.reason
    assert job.reason_code == "owner_offline"
    after = _owner_line(consortium)
    assert (after.spent, after.reserved) == (before.spent, 0)


# -- rows into a model, per-bin counts into a histogram ------------------------------------

TRIPS_SCHEMA = """
[[columns]]
name = "km"
type = "float"
lower = 0
upper = 80
decimals = 1

[[columns]]
name = "minutes"
type = "int"
lower = 5
upper = 240

[policy]
protocols = ["linear_regression"]
exact_protocols = ["linear_regression"]
budget_rho = 1.0
"""
EDGES = [0, 250, 500, 750, 1000]
TRIP_ROWS = 20_000


@pytest.fixture(scope="module")
def trips(consortium: Consortium, owner):
    """smallshop's second outsourced dataset: 20,000 trips (km, minutes), for a regression
    beside logistics' live deliveries (distance_km, delivery_minutes). That many rows make
    the conversion's masked batch (6 ciphertexts, about 2 MB) come in several of the node's
    1 MB stream messages, which the owner's client reassembles."""
    profile, key, node, _ = owner
    root = profile.parent
    rng = np.random.default_rng(12)
    km = rng.integers(1, 800, size=TRIP_ROWS, endpoint=True) / 10
    minutes = np.clip(np.rint(12 + 2.5 * km + rng.normal(0, 6, km.size)), 5, 240).astype(int)
    (root / "trips.csv").write_text(
        "km,minutes\n" + "\n".join(f"{a:.1f},{b}" for a, b in zip(km, minutes, strict=True))
    )
    (root / "trips.toml").write_text(TRIPS_SCHEMA)
    enc = _cli(
        profile, "outsource", "encrypt", "--dataset", str(root / "trips.csv"),
        "--name", "trips", "--schema", str(root / "trips.toml"), "--key", key,
        "--out", str(root / "up-trips"), "--helper", "helper",
    )  # fmt: skip
    assert enc.returncode == 0, enc.stderr
    up = _cli(profile, "outsource", "upload", "--dir", str(root / "up-trips"), "--node", node,
              "--node-name", "helper")  # fmt: skip
    assert up.returncode == 0, up.stderr
    with consortium.client() as client:
        wait_for(
            lambda: any(d.name == "trips" for d in client.datasets() if d.party == "smallshop"),
            5,
            "trips published",
        )
    return km, minutes


def _deliveries(consortium: Consortium) -> tuple[np.ndarray, np.ndarray]:
    assert consortium.lc.data is not None
    got = sample_data.read_table(
        consortium.lc.data.deliveries, {"value": "distance_km", "filter": "delivery_minutes"}
    )
    return got["value"], got["filter"]


def test_outsourced_rows_train_a_regression_with_a_live_owners(consortium, owner, trips):
    """logistics' live deliveries and smallshop's outsourced trips (converted row by row at
    the helper, its Gram computed in MPC): the coefficients are numpy's least squares on
    all rows, within the fixed-point solve's error (1e-6)."""
    spec = jobspec.from_dict(
        {
            "protocol": "linear_regression",
            "helpers": ["grocery"],
            "inputs": [
                {"party": "logistics", "dataset": "deliveries",
                 "features": ["distance_km"], "label": "delivery_minutes"},
                {"party": "smallshop", "dataset": "trips",
                 "features": ["km"], "label": "minutes"},
            ],
            "privacy": {"exact": True},
        }
    )  # fmt: skip
    serving = _serve(owner)
    try:
        with consortium.client() as client:
            job = _run(client, spec)
            assert state_name(job) == "succeeded", job.reason
            got = client.result(job.id, exact=True)
    finally:
        serving.terminate()
        serving.wait(10)
    x_live, y_live = _deliveries(consortium)
    x = np.concatenate([x_live, trips[0]])
    y = np.concatenate([y_live, trips[1].astype(float)])
    want = np.linalg.lstsq(np.column_stack([np.ones(x.size), x]), y, rcond=None)[0]
    coefs = [float(Fraction(got[f"coef[{j}]"])) for j in range(2)]
    np.testing.assert_allclose(coefs, want, rtol=1e-6, atol=1e-6)


def test_an_outsourced_histogram_adds_its_bins_to_a_live_owners(consortium, owner):
    spec = jobspec.from_dict(
        {
            "protocol": "histogram",
            "helpers": ["logistics"],
            "inputs": [
                {"party": "grocery", "dataset": "orders", "column": "basket_total"},
                {"party": "smallshop", "dataset": "payments", "column": "amount"},
            ],
            "params": {"edges": EDGES},
            "privacy": {"exact": True},
        }
    )
    serving = _serve(owner)
    try:
        with consortium.client() as client:
            job = _run(client, spec)
            assert state_name(job) == "succeeded", job.reason
            got = client.result(job.id, exact=True)
    finally:
        serving.terminate()
        serving.wait(10)
    values = np.concatenate([_grocery(consortium), owner[3] / 100])
    want, _ = np.histogram(values, bins=EDGES)  # the last bin closed, as the protocol's
    assert [int(Fraction(got[f"count[{i}]"])) for i in range(4)] == want.tolist()


def test_a_histogram_with_other_edges_than_the_owners_is_refused(consortium, owner):
    spec = jobspec.from_dict(
        {
            "protocol": "histogram",
            "helpers": ["logistics"],
            "inputs": [
                {"party": "grocery", "dataset": "orders", "column": "basket_total"},
                {"party": "smallshop", "dataset": "payments", "column": "amount"},
            ],
            "params": {"edges": [0, 500, 1000]},
            "privacy": {"exact": True},
        }
    )
    with consortium.client() as client:
        job = _run(client, spec)
    assert state_name(job) == "rejected", job.reason
    assert "declared" in job.reason or "edges" in job.reason
    assert _owner_line(consortium).reserved == 0
