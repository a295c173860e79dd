"""Which report names a failed job's cause: one fault, one reason code.

When a party's worker dies, its node reports ``worker_failed`` and the survivors'
workers report ``peer_lost`` (their link to it closed) a moment later or earlier: the
first report heard used to be the job's reason, so one fault read two ways. Reports
are ranked instead:

1. a party's own failure (its worker failed, its data, its source, its limits, its
   node restarting): the root cause;
2. a party the coordinator cannot reach (``party_unreachable``): it names the party
   whose node is gone, which its peers cannot (they see only a closed link);
3. a consequence seen by a survivor (``peer_lost``, ``peer_stalled``, peers that never
   connected: ``peer_connect_timeout``) or an abort.

The scheduler waits a short settling time after a report that is not a cause for a
better one, then reports the best-ranked report, the first heard within its rank. So a
killed worker reads ``worker_failed`` (its node saw it die) whatever order the reports
arrived in, and a killed node ``party_unreachable`` when the coordinator's watch of it
gave up within the settling time (``peer_lost`` otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CONSEQUENCES = frozenset({"peer_lost", "peer_stalled", "peer_connect_timeout", "aborted"})
UNREACHABLE = frozenset({"party_unreachable"})


def rank(code: str) -> int:
    """0 for a party's own failure, 1 for an unreachable party, 2 for a consequence."""
    if code in UNREACHABLE:
        return 1
    if code in CONSEQUENCES:
        return 2
    return 0


@dataclass
class Reports:
    """The failure reports of one job, as they arrive (message, reason code)."""

    heard: list[tuple[str, str]] = field(default_factory=list)

    def add(self, message: str, code: str) -> None:
        self.heard.append((message, code))

    @property
    def failed(self) -> bool:
        return bool(self.heard)

    @property
    def has_cause(self) -> bool:
        """A party reported a failure of its own: nothing better will come."""
        return any(rank(code) == 0 for _, code in self.heard)

    def verdict(self) -> tuple[str, str] | None:
        """The job's reason: the best-ranked report, the first heard of its rank."""
        if not self.heard:
            return None
        return min(self.heard, key=lambda r: rank(r[1]))  # min keeps the first of equals
