"""The coordinator's admission queue: the per-party limit, first come first served, give_up,
and jobs counted without waiting (force) or handing back their slots (release).

Every waiter runs in its own thread. A test learns that a waiter is blocked from its
``give_up`` callback, which the queue calls each time it finds the job may not go yet: no
test sleeps to show that something did not happen.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from coordinator.admission import Admission

WAIT_S = 10.0


class Waiter:
    """``Admission.acquire`` in a thread, reporting each time it was found unable to go."""

    def __init__(self, admission: Admission, key: str, parties: Sequence[str]) -> None:
        self.key = key
        self.stop = threading.Event()
        self.result: bool | None = None
        self.done = threading.Event()
        self._checks = 0
        self._cond = threading.Condition()
        self._thread = threading.Thread(
            target=self._run, args=(admission, parties), name=f"waiter-{key}", daemon=True
        )

    def start(self) -> Waiter:
        self._thread.start()
        return self

    def _give_up(self) -> bool:
        with self._cond:
            self._checks += 1
            self._cond.notify_all()
        return self.stop.is_set()

    def _run(self, admission: Admission, parties: Sequence[str]) -> None:
        self.result = admission.acquire(self.key, parties, self._give_up)
        self.done.set()

    def checks(self) -> int:
        with self._cond:
            return self._checks

    def blocked_after(self, checks: int) -> bool:
        """Wait until the queue has found this job unable to go more than ``checks`` times."""
        with self._cond:
            return self._cond.wait_for(lambda: self._checks > checks, timeout=WAIT_S)

    def blocked(self) -> bool:
        return self.blocked_after(0)

    def admitted(self) -> bool:
        """Wait until acquire returned; True if it let the job in."""
        return self.done.wait(WAIT_S) and self.result is True


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Admission(0)


def test_a_job_within_the_limit_goes_at_once() -> None:
    admission = Admission(2)

    admitted = admission.acquire("j1", ["grocery", "helper"], give_up=lambda: True)

    assert admitted
    assert admission.in_flight("grocery") == 1
    assert admission.in_flight("helper") == 1
    assert admission.in_flight("logistics") == 0


def test_a_job_beyond_the_limit_waits_until_a_slot_is_released() -> None:
    admission = Admission(1)
    admission.acquire("j1", ["grocery", "helper"], give_up=lambda: True)

    second = Waiter(admission, "j2", ["grocery", "helper"]).start()
    assert second.blocked()
    assert not second.done.is_set()

    admission.release(["grocery", "helper"])

    assert second.admitted()
    assert admission.in_flight("grocery") == 1


def test_jobs_waiting_for_the_same_party_go_in_submission_order() -> None:
    admission = Admission(1)
    admission.acquire("j1", ["grocery"], give_up=lambda: True)
    second = Waiter(admission, "j2", ["grocery"]).start()
    assert second.blocked()
    third = Waiter(admission, "j3", ["grocery"]).start()
    assert third.blocked()

    checks = third.checks()
    admission.release(["grocery"])

    assert second.admitted()
    assert third.blocked_after(checks), "the third job was not woken to look again"
    assert not third.done.is_set()
    admission.release(["grocery"])
    assert third.admitted()


def test_a_later_job_does_not_overtake_an_earlier_waiter_that_shares_a_party() -> None:
    admission = Admission(1)
    admission.acquire("j1", ["helper"], give_up=lambda: True)
    # j2 waits for helper; grocery has room, but j2 is ahead of j3 there.
    second = Waiter(admission, "j2", ["grocery", "helper"]).start()
    assert second.blocked()

    third = Waiter(admission, "j3", ["grocery"]).start()

    assert third.blocked()
    assert admission.in_flight("grocery") == 0
    admission.release(["helper"])
    assert second.admitted()
    admission.release(["grocery", "helper"])
    assert third.admitted()


def test_a_job_for_other_parties_is_not_held_back_by_a_waiter() -> None:
    admission = Admission(1)
    admission.acquire("j1", ["grocery"], give_up=lambda: True)
    second = Waiter(admission, "j2", ["grocery"]).start()
    assert second.blocked()

    admitted = admission.acquire("j3", ["logistics", "helper"], give_up=lambda: True)

    assert admitted
    assert not second.done.is_set()
    second.stop.set()
    assert second.done.wait(WAIT_S)


def test_a_waiter_that_gives_up_returns_false_and_leaves_the_queue() -> None:
    admission = Admission(1)
    admission.acquire("j1", ["grocery"], give_up=lambda: True)
    second = Waiter(admission, "j2", ["grocery"]).start()
    assert second.blocked()
    third = Waiter(admission, "j3", ["grocery"]).start()
    assert third.blocked()

    second.stop.set()

    assert second.done.wait(WAIT_S)
    assert second.result is False
    assert admission.in_flight("grocery") == 1  # giving up took no slot
    admission.release(["grocery"])
    assert third.admitted()  # the one who gave up no longer holds its place in line


def test_give_up_is_asked_only_while_the_job_cannot_go() -> None:
    admission = Admission(1)
    asked: list[str] = []

    admitted = admission.acquire("j1", ["grocery"], give_up=lambda: bool(asked.append("j1")))

    assert admitted
    assert asked == []


def test_a_forced_job_counts_without_waiting_even_beyond_the_limit() -> None:
    admission = Admission(1)

    admission.force(["grocery", "helper"])
    admission.force(["grocery"])

    assert admission.in_flight("grocery") == 2
    assert admission.in_flight("helper") == 1


def test_a_new_job_waits_until_forced_jobs_are_below_the_limit() -> None:
    admission = Admission(1)
    admission.force(["grocery"])
    admission.force(["grocery"])
    waiter = Waiter(admission, "j3", ["grocery"]).start()
    assert waiter.blocked()

    checks = waiter.checks()
    admission.release(["grocery"])

    assert waiter.blocked_after(checks), "the waiter was not woken to look again"
    assert not waiter.done.is_set()  # one forced job still fills the only slot
    admission.release(["grocery"])
    assert waiter.admitted()


def test_release_hands_back_each_party_once() -> None:
    admission = Admission(2)
    admission.acquire("j1", ["grocery", "helper"], give_up=lambda: True)
    admission.acquire("j2", ["grocery"], give_up=lambda: True)

    admission.release(["grocery", "grocery", "helper"])  # a party named twice counts once

    assert admission.in_flight("grocery") == 1
    assert admission.in_flight("helper") == 0
