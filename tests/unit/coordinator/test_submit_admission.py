"""A submission that may go at once is stored awaiting approval with its creation (every
step audited, the job's places in flight taken); one beyond the per-party limit is stored
validated and waits for its turn, as before.

Real store (file SQLite), real scheduler and admission, a real analyst signature; the
nodes are a stand-in that holds every proposal until the test ends (nothing here is about
their answers).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from coordinator.handlers import Coordinator
from coordinator.scheduler import Scheduler
from coordinator.store import Store
from ensnif_mpc.data.schema import Column, DatasetSchema, PrivacyPolicy
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.jobs.jobstate import JobState
from ensnif_mpc.security import pki
from ensnif_mpc.security.pki import Identity
from protocols import registry
from tests.helpers import sum_spec, wait_for

WAIT_S = 10.0
SPEC = sum_spec(privacy={"exact": True})
ANALYST = Identity("alice", "analyst")


class HeldNodes:
    """Every proposal waits until ``release`` is set (then the job is simply left)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.proposed = threading.Event()

    def propose_all(self, job: Any, order: Any, timeout: float) -> dict[str, Any]:
        self.proposed.set()
        self.release.wait(WAIT_S)
        return {}

    def abort(self, party: str, job_id: str, reason: str) -> None:
        pass


@pytest.fixture(scope="module")
def analyst(tmp_path_factory: pytest.TempPathFactory) -> pki.CertFiles:
    root = tmp_path_factory.mktemp("pki")
    pki.init_ca(root)
    return pki.issue(root, "alice", "analyst")


@pytest.fixture
def world(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path}/coordinator.db")
    for name in ("grocery", "logistics", "helper"):
        store.upsert_party(name, "party", "127.0.0.1:1", "pem")
    money = (Column("basket_total", "float", 0.0, 500.0, 2), Column("fee", "float", 0.0, 50.0, 2))
    exact = PrivacyPolicy(exact_protocols=("sum",))
    store.upsert_dataset(DatasetSchema("grocery", "orders", money[:1], 100, policy=exact))
    store.upsert_dataset(DatasetSchema("logistics", "deliveries", money[1:], 100, policy=exact))
    nodes = HeldNodes()
    scheduler = Scheduler(store, nodes, lambda _: None, max_jobs_per_party=1)  # type: ignore[arg-type]
    yield Coordinator(store, scheduler), nodes
    nodes.release.set()
    scheduler.stop()
    store.close()


def _submit(c: Coordinator, analyst: pki.CertFiles) -> Any:
    signed = jobspec.sign(SPEC, analyst.key.read_bytes(), registry.for_spec(SPEC).version)
    return c.submit(ANALYST, signed, analyst.cert.read_text())


def _steps(c: Coordinator, job_id: str) -> list[tuple[str, str]]:
    return [
        (r[3]["from"], r[3]["to"])
        for r in c.store.audit_rows()
        if r[2] == "job_state" and r[3]["job"] == job_id
    ]


def test_a_job_that_may_go_is_stored_awaiting_approval_with_every_step_audited(
    world, analyst
) -> None:
    c, nodes = world

    job = _submit(c, analyst)

    assert job.state is JobState.AWAITING_APPROVAL
    assert c.store.get_job(job.id).state is JobState.AWAITING_APPROVAL
    assert _steps(c, job.id) == [("submitted", "validated"), ("validated", "awaiting_approval")]
    assert nodes.proposed.wait(WAIT_S)  # its driver proposes with the places it was given
    assert [c.scheduler.admission.in_flight(p) for p in SPEC.party_order] == [1, 1, 1]


def test_a_job_beyond_the_limit_is_stored_validated_and_waits(world, analyst) -> None:
    c, nodes = world
    first = _submit(c, analyst)
    assert nodes.proposed.wait(WAIT_S)

    second = _submit(c, analyst)

    assert first.state is JobState.AWAITING_APPROVAL
    assert second.state is JobState.VALIDATED
    assert _steps(c, second.id) == [("submitted", "validated")]
    assert [c.scheduler.admission.in_flight(p) for p in SPEC.party_order] == [1, 1, 1]
    wait_for(lambda: c.scheduler.admission.waiting() == 1, WAIT_S, "its driver waiting")
    assert c.store.get_job(second.id).state is JobState.VALIDATED
