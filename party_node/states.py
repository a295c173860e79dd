"""A node's job states and the one table of their transitions.

The node's own lifecycle of a job, distinct from the coordinator's
(``ensnif_mpc.jobs.jobstate``): the node never schedules, it is asked, decides, runs a
worker and ends. States are a StrEnum so the store writes the same strings as before
(the database format does not change) and comparisons with a plain string still hold.
"""

from __future__ import annotations

from enum import StrEnum


class NodeState(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"  # waits for this node's administrator
    APPROVED = "approved"  # budget and a port reserved; waits for the session
    STARTING = "starting"  # session written; the monitor launches the worker
    RUNNING = "running"  # a worker runs the MPC
    SUCCEEDED = "succeeded"  # the worker's sealed share is ready for the coordinator
    FAILED = "failed"
    ABORTED = "aborted"  # by the coordinator, or timed out before it ran
    REJECTED = "rejected"  # by the node's checks, its policy or its administrator


S = NodeState
# A proposal is created awaiting_approval, approved or rejected (or aborted when the abort
# overtook it); awaiting_approval → approved|rejected; approved → starting → running →
# succeeded|failed; any live → aborted. The only place transitions live.
NODE_ALLOWED: dict[NodeState, frozenset[NodeState]] = {
    S.AWAITING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.ABORTED}),
    S.APPROVED: frozenset({S.STARTING, S.ABORTED, S.FAILED}),
    S.STARTING: frozenset({S.RUNNING, S.FAILED, S.ABORTED}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.ABORTED}),
    S.REJECTED: frozenset(),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.ABORTED: frozenset(),
}
# Live: the node still holds something for the job (a reservation, a port, a worker).
NODE_LIVE = frozenset(s for s, exits in NODE_ALLOWED.items() if exits)
# A worker was (or is about to be) launched: its inputs may have been shared.
WORKER_STARTED = frozenset({S.STARTING, S.RUNNING})
# Ended without running: what the coordinator reads as a refusal of its proposal.
REFUSED = frozenset({S.REJECTED, S.ABORTED, S.FAILED})
