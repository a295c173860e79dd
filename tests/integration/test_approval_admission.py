"""Jobs waiting for a person do not hold the coordinator's in-flight slots.

The coordinator runs at most N jobs per party at once (Admission); a job waiting for an
owner's manual approval holds nothing at the nodes, so it must not block the others.
With the limit at 1: while the first job waits for grocery's administrator, a second
one is still proposed; once both are approved, both finish with the right answer.
"""

from __future__ import annotations

import pytest

from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import state_name
from party_node import admin
from tests.consortium import Consortium, OwnerPolicy
from tests.helpers import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.consortium(
        rows=200, owners={"grocery": OwnerPolicy(approval="manual")}, max_jobs_per_party=1
    ),
]


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


def _waiting_at_grocery(consortium: Consortium, job_id: str, what: str) -> None:
    node = consortium.nodes["grocery"].node

    def waiting() -> bool:
        job = node.store.find(job_id)
        return job is not None and job.state == "awaiting_approval"

    wait_for(waiting, 30, what, interval=0.1)


def test_a_job_awaiting_approval_does_not_block_the_next(consortium: Consortium) -> None:
    node = consortium.nodes["grocery"].node
    with consortium.client() as c:
        first = c.submit(SUM)
        _waiting_at_grocery(consortium, first.id, "the first job awaiting approval at grocery")
        second = c.submit(SUM)
        _waiting_at_grocery(consortium, second.id, "the second job was never proposed")
        for job in (first, second):
            admin.decide(node.cfg, node.store, job.id, "approved", "alice")
        results = [c.wait(j.id, timeout_s=120) for j in (first, second)]
        assert [state_name(r) for r in results] == ["succeeded", "succeeded"]
        assert c.result(first.id) == c.result(second.id)
