"""The node administrator's side: jobs waiting for a person, and their signed decisions.

Runs in the administrator's CLI process on the node's host, against the node's own
state database and key (the same trust as running the node). It only records a
signed decision; the running node applies it: a rejection at its next monitor
tick, an approval when the coordinator next proposes the job, after re-checking
policy and reserving budget (so an approval can still end in a refusal, e.g.
when the budget ran out meanwhile).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ensnif_mpc.config import PartyConfig
from ensnif_mpc.errors import FailedPrecondition, InvalidArgument, UnknownJob
from ensnif_mpc.jobs import approvals
from party_node.states import NodeState
from party_node.store import NodeStore


@dataclass(frozen=True)
class Pending:
    job_id: str
    proposed_at: str
    analyst: str
    rule: str
    job_hash: str
    manifest: dict[str, Any]
    # A member program's hash and files ({"hash", "files"}); empty for a registry protocol.
    program: dict[str, Any] = field(default_factory=dict)


def pending(store: NodeStore) -> list[Pending]:
    out = []
    for job in store.by_state(NodeState.AWAITING_APPROVAL):
        if (d := store.approval(job.job_id)) is not None and d.decision == "approved":
            continue  # decided; admitted at the coordinator's next proposal
        data = job.data
        out.append(
            Pending(
                job.job_id,
                str(data.get("proposed_at", "")),
                str(data.get("analyst", "")),
                str(data.get("rule", "")),
                str(data.get("job_hash", "")),
                dict(data.get("manifest", {})),
                dict(data.get("program", {})),
            )
        )
    return sorted(out, key=lambda p: p.proposed_at)


def decide(
    cfg: PartyConfig,
    store: NodeStore,
    job_id: str,
    decision: str,
    approver: str,
    reason: str = "",
) -> approvals.Decision:
    """Sign and record the administrator's decision on a waiting job."""
    if decision not in approvals.DECISIONS:
        raise InvalidArgument(f"decision must be one of {', '.join(approvals.DECISIONS)}")
    if not approver:
        raise InvalidArgument("an approval needs the approver's name (--as)")
    job = store.find(job_id)
    if job is None:
        raise UnknownJob(f"node {cfg.name!r} has no job {job_id!r}")
    if job.state != NodeState.AWAITING_APPROVAL:
        raise FailedPrecondition(
            f"job {job_id} is {job.state} at {cfg.name}, not awaiting approval",
            reason="not_awaiting_approval",
        )
    job_hash = str(job.data.get("job_hash", ""))
    signed = approvals.decide(
        job_id, job_hash, decision, approver, reason, cfg.tls.key.read_bytes()
    )
    if not store.add_approval(signed):
        raise FailedPrecondition(f"job {job_id} was already decided", reason="already_decided")
    return signed
