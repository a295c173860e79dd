"""Pacing for the watch streams (the coordinator's ``WatchJob``, a node's ``Watch``): a change
of state, and the stream's first and last message, go at once; a change of progress alone
waits out ``every_s`` since the last message and is then sent with the latest progress.

Why: a small job's worker passes half a dozen phases in a few ms, and each was a message of
its own at every hop (a read, a conversion, a send, a parse at the other end), about 8 per
node and 16 per analyst on a small job's path; a live display needs no more than 20 a
second. The interval is a constant, the same for every job: it adds nothing a watcher could
learn about the data (DESIGN §11).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

EVERY_S = 0.05  # the least time between two messages of progress alone


class Watched(Protocol):
    @property
    def version(self) -> int: ...


T = TypeVar("T", bound=Watched)


def paced(
    first: T,
    read: Callable[[], T],
    wait: Callable[[float], None],
    *,
    state: Callable[[T], object],
    final: Callable[[T], bool],
    active: Callable[[], bool],
    poll_s: float,
    every_s: float = EVERY_S,
) -> Iterator[T]:
    """The records to send, from ``first`` until a ``final`` one (sent too) or until the
    stream is no longer ``active``. ``wait(timeout)`` blocks until the record may have
    changed (a hub's wake) or the timeout ends; ``read()`` reads it again."""
    record, last_version, last_state, due = first, -1, None, 0.0
    while active():
        wait_s = poll_s
        if record.version != last_version:
            now = time.monotonic()
            if state(record) != last_state or final(record) or now >= due:
                last_version, last_state = record.version, state(record)
                due = now + every_s
                yield record
            else:  # progress alone, soon after the last message: sent when due
                wait_s = due - now
        if final(record):
            return
        wait(wait_s)
        record = read()
