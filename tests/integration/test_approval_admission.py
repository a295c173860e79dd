"""Jobs waiting for a person do not hold the coordinator's in-flight slots.

The coordinator runs at most N jobs per party at once (Admission); a job waiting for an
owner's manual approval holds nothing at the nodes, so it must not block the others.
With the limit at 1: while the first job waits for grocery's administrator, a second
one is still proposed; once both are approved, both finish with the right answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordinator.scheduler import Admission
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import state_name
from party_node import admin
from tests.integration.conftest import InProcess, start_in_process

pytestmark = pytest.mark.slow


def _manual_at_grocery(root: Path) -> None:
    path = root / "party-grocery.toml"
    text = path.read_text()
    marker = "[datasets.privacy]"
    path.write_text(text.replace(marker, '[datasets.policy]\napproval = "manual"\n\n' + marker, 1))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    e = start_in_process(tmp_path_factory.mktemp("adm"), rows=200, edit=_manual_at_grocery)
    e.coordinator.scheduler.admission = Admission(1)
    try:
        yield e
    finally:
        e.stop()


SUM = jobspec.from_dict(
    {
        "protocol": "sum",
        "helpers": ["helper"],
        "privacy": {"exact": True},
        "inputs": [
            {"party": "grocery", "dataset": "orders", "column": "basket_total"},
            {"party": "logistics", "dataset": "deliveries", "column": "fee"},
        ],
    }
)


def _waiting_at_grocery(env: InProcess, job_id: str, timeout: float = 30) -> bool:
    node = env.nodes["grocery"].node
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = node.store.find(job_id)
        if job is not None and job.state == "awaiting_approval":
            return True
        time.sleep(0.1)
    return False


def test_a_job_awaiting_approval_does_not_block_the_next(env: InProcess) -> None:
    node = env.nodes["grocery"].node
    with env.client() as c:
        first = c.submit(SUM)
        assert _waiting_at_grocery(env, first.id)
        second = c.submit(SUM)
        assert _waiting_at_grocery(env, second.id), "the second job was never proposed"
        for job in (first, second):
            admin.decide(node.cfg, node.store, job.id, "approved", "alice")
        results = [c.wait(j.id, timeout_s=120) for j in (first, second)]
        assert [state_name(r) for r in results] == ["succeeded", "succeeded"]
        assert c.result(first.id) == c.result(second.id)
