"""The coordinator's admission queue: at most N jobs in flight per party, first come first served.

Why it exists: each job in flight holds an MPC port and a budget reservation at every node
it names, and soon a worker process. Without a limit, a burst of submissions is refused by
nodes with no free port (``resource_busy``) or started on machines too busy to connect their
workers in time. With it, a job beyond the limit waits at the coordinator (state
``validated``) before anything is proposed, and jobs sharing a party go in submission order.

Plain threads and one condition variable: the scheduler runs one driver thread per job
(coordinator/scheduler.py), and each driver blocks here until its job may go.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence


class Admission:
    """At most ``limit`` jobs in flight per party; the others wait their turn, in order.

    In flight means proposed and not ended: each such job holds an MPC port and a budget
    reservation at every node, and soon a worker process. A job beyond the limit waits at
    the coordinator (state ``validated``) before anything is proposed, instead of being
    refused by a node with no free port (``resource_busy``) or started on a machine too
    busy to connect its workers within the connect timeout.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"admission limit must be at least 1, got {limit}")
        self.limit = limit
        self._cond = threading.Condition()
        self._active: Counter[str] = Counter()
        self._queue: list[tuple[str, frozenset[str]]] = []

    def acquire(self, key: str, parties: Sequence[str], give_up: Callable[[], bool]) -> bool:
        """Wait until every party has room and no earlier waiter for one of them is left;
        False if ``give_up()`` says so first (checked about once a second)."""
        mine = frozenset(parties)
        with self._cond:
            self._queue.append((key, mine))
            try:
                while not self._may_go(key, mine):
                    if give_up():
                        return False
                    self._cond.wait(1.0)
                self._active.update(mine)
                return True
            finally:
                self._queue.remove((key, mine))
                self._cond.notify_all()

    def force(self, parties: Sequence[str]) -> None:
        """Count a job that already holds resources at the nodes (resumed after a restart)."""
        with self._cond:
            self._active.update(frozenset(parties))

    def release(self, parties: Sequence[str]) -> None:
        with self._cond:
            self._active.subtract(frozenset(parties))
            self._cond.notify_all()

    def in_flight(self, party: str) -> int:
        with self._cond:
            return self._active[party]

    def waiting(self) -> int:
        """How many jobs wait for their turn now (the metrics' queue length)."""
        with self._cond:
            return len(self._queue)

    def _may_go(self, key: str, mine: frozenset[str]) -> bool:
        for other, parties in self._queue:
            if other == key:
                break
            if parties & mine:
                return False
        return all(self._active[p] < self.limit for p in mine)
