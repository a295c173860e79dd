"""Wakes watch streams when a job changes (in-process; the store stays the source of truth)."""

from __future__ import annotations

import threading


class Hub:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ticks: dict[str, int] = {}

    def notify(self, job_id: str) -> None:
        with self._cond:
            self._ticks[job_id] = self._ticks.get(job_id, 0) + 1
            self._cond.notify_all()

    def wait(self, job_id: str, seen: int, timeout: float) -> int:
        """Block until the job's tick passes ``seen`` or the timeout ends; return the tick."""
        with self._cond:
            self._cond.wait_for(lambda: self._ticks.get(job_id, 0) != seen, timeout=timeout)
            return self._ticks.get(job_id, 0)
