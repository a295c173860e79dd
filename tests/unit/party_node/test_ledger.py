"""The node's privacy-budget ledger: atomic reservations, commit/release, crash recovery."""

from __future__ import annotations

import math
import threading
from fractions import Fraction
from pathlib import Path

import pytest

from ensnif_mpc.db import make_engine
from ensnif_mpc.errors import BudgetExhausted, InvalidArgument
from party_node.ledger import COMMITTED, RELEASED, RESERVED, Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    engine = make_engine(f"sqlite:///{tmp_path / 'node.db'}")
    return Ledger(engine, {"orders": Fraction(1), "stores": Fraction(1, 2)})


def test_reserve_commit_release_and_what_remains(ledger: Ledger) -> None:
    ledger.reserve("a", {"orders": Fraction(1, 4)})
    ledger.reserve("b", {"orders": Fraction(1, 4), "stores": Fraction(1, 10)})
    ledger.commit("a")
    ledger.release("b")

    lines = {line.dataset: line for line in ledger.show()}
    assert lines["orders"].spent == Fraction(1, 4)
    assert lines["orders"].reserved == 0
    assert lines["orders"].remaining == Fraction(3, 4)
    assert lines["stores"].remaining == Fraction(1, 2)
    assert ledger.state_of("a") == {"orders": COMMITTED}
    assert ledger.state_of("b") == {"orders": RELEASED, "stores": RELEASED}


def test_an_over_budget_job_is_refused_whole_and_says_what_remains(ledger: Ledger) -> None:
    ledger.reserve("a", {"orders": Fraction(9, 10)})
    with pytest.raises(BudgetExhausted, match=r"only 0\.1 of 1 remains") as info:
        ledger.reserve("b", {"stores": Fraction(1, 10), "orders": Fraction(1, 5)})
    assert info.value.code.name == "RESOURCE_EXHAUSTED"
    assert ledger.state_of("b") == {}  # nothing reserved on the dataset that had room either


def test_commit_is_irrevocable_and_release_after_commit_does_nothing(ledger: Ledger) -> None:
    ledger.reserve("a", {"orders": Fraction(1, 2)})
    assert ledger.commit("a") == 1
    assert ledger.release("a") == 0
    assert ledger.state_of("a") == {"orders": COMMITTED}


@pytest.mark.parametrize("bad", [0, -0.1, math.nan, math.inf])
def test_non_positive_nan_or_infinite_costs_are_rejected(ledger: Ledger, bad: float) -> None:
    with pytest.raises(InvalidArgument):
        ledger.reserve("x", {"orders": bad})


def test_a_dataset_without_a_budget_refuses(ledger: Ledger) -> None:
    with pytest.raises(BudgetExhausted, match="no privacy budget"):
        ledger.reserve("x", {"customers": Fraction(1, 100)})


def test_forty_concurrent_reservations_never_overspend(ledger: Ledger) -> None:
    barrier = threading.Barrier(40)
    won: list[str] = []

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            ledger.reserve(f"j{i}", {"orders": Fraction(1, 7)})
            won.append(f"j{i}")
        except BudgetExhausted:
            pass

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(won) == 7  # 7 × 1/7 = 1 exactly: the cap is reachable, never exceeded
    (orders,) = [line for line in ledger.show() if line.dataset == "orders"]
    assert orders.reserved == 1 and orders.remaining == 0


def test_after_a_crash_a_stale_reservation_counts_as_spent(tmp_path: Path, ledger: Ledger) -> None:
    ledger.reserve("live", {"orders": Fraction(1, 4)})
    ledger.reserve("dead", {"orders": Fraction(1, 4)})
    # The node restarts: only "live" is still a live job.
    again = Ledger(ledger.engine, ledger.caps)
    assert again.recover({"live"}) == 1
    assert again.state_of("dead") == {"orders": COMMITTED}
    assert again.state_of("live") == {"orders": RESERVED}


def test_reserving_twice_for_one_job_is_idempotent(ledger: Ledger) -> None:
    ledger.reserve("a", {"orders": Fraction(1, 2)})
    ledger.reserve("a", {"orders": Fraction(1, 2)})
    (orders,) = [line for line in ledger.show() if line.dataset == "orders"]
    assert orders.reserved == Fraction(1, 2)
