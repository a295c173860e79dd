"""The Prometheus endpoints of the coordinator and the nodes, scraped over HTTP.

The consortium's servers are started with ``ENSNIF_METRICS_LISTEN=127.0.0.1:0`` (each
picks a free port); grocery approves by hand, so a job can be seen waiting for it. One DP
job runs; every figure scraped is checked against the store or the ledger it comes from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ensnif_mpc.jobs import jobspec
from ensnif_mpc.rpc.metrics import days_left
from ensnif_mpc.sdk.client import state_name
from ensnif_mpc.security.pki import load_cert
from party_node import admin
from party_node.states import NodeState
from tests.consortium import Consortium, OwnerPolicy
from tests.helpers import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.consortium(rows=200, owners={"grocery": OwnerPolicy(approval="manual")}),
]

SUM = {
    "protocol": "sum",
    "helpers": ["helper"],
    "privacy": {"rho": 0.1},
    "inputs": [
        {"party": "grocery", "dataset": "orders", "column": "basket_total"},
        {"party": "logistics", "dataset": "deliveries", "column": "fee"},
    ],
}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module", autouse=True)
def _metrics_on() -> Iterator[None]:
    """Every server of this module's consortium serves metrics (set before it starts)."""
    old = os.environ.get("ENSNIF_METRICS_LISTEN")
    os.environ["ENSNIF_METRICS_LISTEN"] = "127.0.0.1:0"
    yield
    if old is None:
        os.environ.pop("ENSNIF_METRICS_LISTEN", None)
    else:
        os.environ["ENSNIF_METRICS_LISTEN"] = old


def scrape(running: Any) -> Samples:
    assert running.metrics is not None, "metrics endpoint not started"
    with urllib.request.urlopen(running.metrics.url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_endpoints_listen_on_loopback_only(consortium: Consortium) -> None:
    assert consortium.coordinator is not None
    endpoints = [consortium.coordinator.metrics, *(n.metrics for n in consortium.nodes.values())]
    assert all(e is not None and e.host == "127.0.0.1" and e.port > 0 for e in endpoints)
    assert len({e.port for e in endpoints if e is not None}) == 4


def test_a_job_waiting_for_approval_shows_at_the_coordinator_and_the_node(
    consortium: Consortium,
) -> None:
    coordinator = consortium.coordinator
    assert coordinator is not None
    grocery = consortium.nodes["grocery"]
    with consortium.client() as c:
        job = c.submit(jobspec.from_dict(SUM))
        wait_for(
            lambda: value(scrape(grocery), "ensnif_node_approvals_pending") == 1,
            30,
            "the job pending at grocery's endpoint",
        )
        wait_for(
            lambda: (
                value(scrape(coordinator), "ensnif_coordinator_approvals_pending", party="grocery")
                == 1
            ),
            30,
            "the job pending for grocery at the coordinator's endpoint",
        )
        samples = scrape(coordinator)
        assert value(samples, "ensnif_coordinator_jobs", state="awaiting_approval") == 1
        assert value(samples, "ensnif_coordinator_approvals_pending", party="logistics") == 0
        # Waiting for a person holds no in-flight slot (coordinator/admission.py).
        assert value(samples, "ensnif_coordinator_admission_waiting") == 0
        assert value(samples, "ensnif_coordinator_admission_in_flight", party="grocery") == 0

        admin.decide(grocery.node.cfg, grocery.node.store, job.id, "approved", "alice")
        final = c.wait(job.id, timeout_s=120)
        assert state_name(final) == "succeeded", final.reason


def test_counts_durations_and_bytes_match_the_coordinators_store(consortium: Consortium) -> None:
    coordinator = consortium.coordinator
    assert coordinator is not None
    store = coordinator.store
    jobs = store.list_jobs(limit=1000)
    (job,) = [j for j in jobs if j.state.final]
    samples = scrape(coordinator)

    for state in ("succeeded", "awaiting_approval", "running", "failed"):
        want = sum(1 for j in jobs if j.state.value == state)
        assert value(samples, "ensnif_coordinator_jobs", state=state) == want
    duration = (job.updated_at - job.created_at).total_seconds()
    hist = {"protocol": "sum", "state": "succeeded"}
    assert value(samples, "ensnif_coordinator_job_duration_seconds_count", **hist) == 1
    assert value(samples, "ensnif_coordinator_job_duration_seconds_sum", **hist) == pytest.approx(
        duration, abs=1e-3
    )
    sent = {party: int(p["bytes_sent"]) for party, p in job.progress.items()}
    assert set(sent) == {"grocery", "logistics", "helper"}
    assert all(n > 0 for n in sent.values())  # the workers report real MPC traffic
    for party, n in sent.items():
        got = value(samples, "ensnif_coordinator_mpc_bytes_sent_total", protocol="sum", party=party)
        assert got == n
    assert value(samples, "ensnif_coordinator_job_mpc_bytes_sum", protocol="sum") == sum(
        sent.values()
    )
    # Messages and rounds, counted on MPyC's transport by each worker and relayed.
    messages = {party: int(p["messages_sent"]) for party, p in job.progress.items()}
    rounds = {party: int(p["rounds"]) for party, p in job.progress.items()}
    assert all(0 < rounds[p] <= messages[p] for p in messages)
    for party, n in messages.items():
        got = value(
            samples, "ensnif_coordinator_mpc_messages_sent_total", protocol="sum", party=party
        )
        assert got == n
    assert value(samples, "ensnif_coordinator_job_mpc_rounds_sum", protocol="sum") == max(
        rounds.values()
    )
    assert value(samples, "ensnif_coordinator_approvals_pending", party="grocery") == 0
    assert value(samples, "ensnif_coordinator_admission_in_flight", party="grocery") == 0


def test_budgets_and_jobs_match_each_nodes_ledger_and_store(consortium: Consortium) -> None:
    for name in ("grocery", "logistics"):
        running = consortium.nodes[name]
        samples = scrape(running)
        lines = running.node.ledger.show()
        assert lines, f"{name} has datasets"
        for line in lines:
            assert line.spent > 0  # the DP job committed its charge
            for metric, want in (
                ("budget", line.cap),
                ("spent", line.spent),
                ("reserved", line.reserved),
                ("remaining", line.remaining),
            ):
                got = value(samples, f"ensnif_node_privacy_{metric}_rho", dataset=line.dataset)
                assert got == pytest.approx(float(want))
        assert value(samples, "ensnif_node_jobs", state="succeeded") == len(
            running.node.store.by_state(NodeState.SUCCEEDED)
        )
        assert value(samples, "ensnif_node_approvals_pending") == 0
        assert value(samples, "ensnif_node_workers_running") == 0


def test_node_bytes_match_what_the_coordinator_relayed(consortium: Consortium) -> None:
    coordinator = consortium.coordinator
    assert coordinator is not None
    (job,) = [j for j in coordinator.store.list_jobs() if j.state.final]
    for name, running in consortium.nodes.items():
        got = value(scrape(running), "ensnif_node_mpc_bytes_sent_total", protocol="sum")
        assert got == job.progress[name]["bytes_sent"]


def test_certificate_days_to_expiry_are_read_from_the_files(consortium: Consortium) -> None:
    coordinator = consortium.coordinator
    assert coordinator is not None
    node = consortium.nodes["helper"]
    samples = scrape(node)
    own = days_left(load_cert(node.node.cfg.tls.cert).not_valid_after_utc)
    ca = days_left(load_cert(node.node.cfg.tls.ca).not_valid_after_utc)
    assert value(samples, "ensnif_certificate_expiry_days", certificate="own") == pytest.approx(
        own, abs=0.01
    )
    assert value(samples, "ensnif_certificate_expiry_days", certificate="ca") == pytest.approx(
        ca, abs=0.01
    )
    assert 0 < own <= ca
    parties = {p.name: p for p in coordinator.store.list_parties()}
    c_samples = scrape(coordinator)
    for name in ("grocery", "logistics", "helper"):
        cert = load_cert(consortium.nodes[name].node.cfg.tls.cert)
        got = value(c_samples, "ensnif_coordinator_party_certificate_expiry_days", party=name)
        assert got == pytest.approx(days_left(cert.not_valid_after_utc), abs=0.01)
        assert name in parties


def test_job_status_shows_the_merged_bytes_the_metrics_count(consortium: Consortium) -> None:
    coordinator = consortium.coordinator
    assert coordinator is not None
    (job,) = [j for j in coordinator.store.list_jobs() if j.state.final]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENSNIF_", "PYTEST"))}
    env["ENSNIF_PROFILE"] = str(consortium.lc.profile)
    proc = subprocess.run(
        [sys.executable, "-m", "ensnif_mpc.cli.main", "job", "status", job.id, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    mpc = json.loads(proc.stdout)["mpc"]
    samples = scrape(coordinator)
    for party, n in mpc["bytes_sent_by_party"].items():
        got = value(samples, "ensnif_coordinator_mpc_bytes_sent_total", protocol="sum", party=party)
        assert n == got == job.progress[party]["bytes_sent"]
    assert mpc["bytes_sent_total"] == value(
        samples, "ensnif_coordinator_job_mpc_bytes_sum", protocol="sum"
    )
    assert mpc["ended"] is True
    assert mpc["rounds_by_party"] == {p: e["rounds"] for p, e in job.progress.items()}
    assert all(c > 0 for c in mpc["cpu_seconds_by_party"].values())
    assert mpc["wall_seconds"] == pytest.approx(
        (job.updated_at - job.created_at).total_seconds(), abs=1e-3
    )
