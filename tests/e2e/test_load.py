"""Load: a dozen small jobs submitted at once all succeed, each with its own answer,
and no two jobs live at the same time share an MPC port or a workspace at any node; beyond
the coordinator's admission limit they wait their turn.

The harness is ``bench/load.py`` (``make bench`` runs it with 50 jobs and prints the
figures); here it runs smaller and its checks are asserted. Not timed: the machine's load
decides how long it takes, and the nodes get a generous connect timeout for that reason.
"""

from __future__ import annotations

import inspect

import pytest

from bench.load import plan_jobs, run_load
from coordinator.scheduler import Scheduler
from ensnif_mpc.demo.localnet import LocalConsortium

pytestmark = [
    pytest.mark.slow,
    pytest.mark.consortium(rows=300, connect_timeout_s=60, job_timeout_s=240),
]

JOBS = 12
# The coordinator's default admission limit: jobs in flight per party at once.
LIMIT = inspect.signature(Scheduler).parameters["max_jobs_per_party"].default


@pytest.mark.timeout(240)
def test_concurrent_jobs_all_succeed_with_their_own_answers_ports_and_workspaces(
    lc: LocalConsortium,
) -> None:
    planned = plan_jobs(lc, JOBS, dp_every=4)  # sums, counts, exact means, 3 DP means

    report = run_load(lc, planned, timeout_s=200)

    assert report.states == {"succeeded": JOBS}, [
        (o.job_id, o.label, o.state, o.reason_code, o.reason) for o in report.outcomes
    ]
    assert report.wrong == []
    assert len({o.job_id for o in report.outcomes}) == JOBS
    assert report.clashes == [] and report.workspace == []
    assert report.orphans == []
    # They ran side by side, and no more at once than the coordinator admits (the others
    # waited their turn at the coordinator instead of being refused by a node).
    assert min(report.max_live_at_node.values()) > 1, report.max_live_at_node
    assert max(report.max_live_at_node.values()) <= LIMIT < JOBS, report.max_live_at_node
