"""Job states and the one table of allowed transitions (docs/architecture.md, job lifecycle)."""

from __future__ import annotations

from enum import StrEnum

from ensnif_mpc.errors import InvalidTransition


class JobState(StrEnum):
    SUBMITTED = "submitted"
    VALIDATED = "validated"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        return not ALLOWED[self]


_STOP = frozenset({JobState.FAILED, JobState.CANCELLED})

# The only place transitions live. Any live job may fail or be cancelled.
ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.SUBMITTED: frozenset({JobState.VALIDATED, JobState.REJECTED}) | _STOP,
    JobState.VALIDATED: frozenset({JobState.AWAITING_APPROVAL}) | _STOP,
    JobState.AWAITING_APPROVAL: frozenset({JobState.APPROVED, JobState.REJECTED}) | _STOP,
    JobState.APPROVED: frozenset({JobState.SCHEDULED}) | _STOP,
    JobState.SCHEDULED: frozenset({JobState.RUNNING}) | _STOP,
    JobState.RUNNING: frozenset({JobState.SUCCEEDED}) | _STOP,
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
    JobState.REJECTED: frozenset(),
}

LIVE = frozenset(s for s in JobState if not s.final)


def check_transition(old: JobState, new: JobState) -> None:
    if new not in ALLOWED[old]:
        raise InvalidTransition(f"a job cannot go from {old.value} to {new.value}")
