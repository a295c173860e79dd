"""ensnif_mpc.rpc.pacing: what a watch stream sends of a record's successive versions."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ensnif_mpc.rpc.pacing import paced


@dataclass(frozen=True)
class Rec:
    version: int
    state: str
    fraction: float = 0.0


def run(versions: list[Rec], every_s: float) -> list[Rec]:
    """Stream ``versions`` as a store would show them: each ``wait`` lets the next one in."""
    pending = list(versions[1:])
    current = [versions[0]]
    waits: list[float] = []

    def wait(timeout: float) -> None:
        waits.append(timeout)
        if pending:
            current[0] = pending.pop(0)
        else:
            time.sleep(timeout)  # nothing new: the timeout runs out

    return list(
        paced(
            versions[0],
            lambda: current[0],
            wait,
            state=lambda r: r.state,
            final=lambda r: r.state == "done",
            active=lambda: len(waits) < 50,
            poll_s=0.01,
            every_s=every_s,
        )
    )


def test_state_changes_go_at_once_and_progress_alone_is_dropped_until_due() -> None:
    versions = [
        Rec(1, "running", 0.1),
        Rec(2, "running", 0.2),  # progress alone, within the interval: dropped
        Rec(3, "running", 0.3),
        Rec(4, "delivering", 0.9),  # a new state: at once
        Rec(5, "done", 1.0),  # the final one ends the stream
    ]
    sent = run(versions, every_s=3600.0)
    assert [r.version for r in sent] == [1, 4, 5]


def test_the_latest_progress_is_sent_once_the_interval_is_over() -> None:
    versions = [Rec(1, "running", 0.1), Rec(2, "running", 0.2), Rec(3, "running", 0.3)]
    sent = run(versions, every_s=0.05)
    assert sent[0].version == 1
    assert sent[-1].version == 3  # the last progress arrives, with no later change to carry it
    assert [r.version for r in sent] == sorted({r.version for r in sent})  # in order, once each
