"""Daemon threads the scheduler reuses across jobs: a job's driver and its Watch streams.

Why not a thread per task: a job's driver and its three watchers were four new threads per
job, and ``Thread.start`` waits until the new thread runs, which on a busy two-core
machine took about a millisecond each (the coordinator's Start and Propose went out
staggered by as much) and cost CPU. Why not ``concurrent.futures.ThreadPoolExecutor``: its
threads are joined when the interpreter exits, and a watcher blocked on a node's stream
would keep the coordinator from stopping; and its ``max_workers`` queues tasks once every
thread is busy, while a task here may block for a job's whole run (a watcher), so a queued
one could wait for a job to end. Here a task never waits for another: it runs on an idle
thread, or on a new one when none is idle. A thread left idle for ``idle_s`` ends, so a
burst of jobs leaves no crowd of threads behind.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class DaemonThreads:
    """Run each task at once on an idle daemon thread, or on a new one if none is idle."""

    def __init__(self, name: str, idle_s: float = 60.0) -> None:
        self.name = name
        self.idle_s = idle_s
        self._tasks: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        # Threads waiting for a task and not yet promised one: each task submitted takes
        # one of them, or starts a thread of its own, so a task never waits in the queue
        # for a busy thread.
        self._idle = 0
        self._started = 0

    def run(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            spawn = self._idle == 0
            if spawn:
                self._started += 1
                n = self._started
            else:
                self._idle -= 1
        self._tasks.put((fn, args))
        if spawn:
            threading.Thread(target=self._serve, name=f"{self.name}-{n}", daemon=True).start()

    @property
    def idle(self) -> int:
        """Threads waiting for a task now (for tests and metrics)."""
        with self._lock:
            return self._idle

    def _serve(self) -> None:
        while True:
            try:
                fn, args = self._tasks.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # nobody was promised this thread: it may end
                        self._idle -= 1
                        return
                continue  # a task is on its way to this thread
            try:
                fn(*args)
            except Exception:  # a task's failure ends the task, never the thread
                log.exception("%s: a task failed", self.name)
            with self._lock:
                self._idle += 1
