"""The node's privacy-budget ledger: atomic reservations, commit/release, crash recovery."""

from __future__ import annotations

import math
import threading
from fractions import Fraction
from pathlib import Path

import pytest

from ensnif_mpc.db import make_engine
from ensnif_mpc.errors import BudgetExhausted, InvalidArgument
from party_node.ledger import COMMITTED, DEFAULT_MAX_DELTA, RELEASED, RESERVED, Ledger


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


# -- δ, added up per dataset beside ρ ---------------------------------------------------------
def test_delta_adds_up_per_dataset_and_a_job_beyond_max_delta_is_refused_whole(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'node.db'}")
    ledger = Ledger(
        engine, {"orders": Fraction(1), "stores": Fraction(1)}, {"orders": Fraction(3, 10**6)}
    )
    ledger.reserve("a", {"orders": Fraction(1, 100)}, {"orders": Fraction(1, 10**6)})
    ledger.reserve("b", {"orders": Fraction(1, 100)}, {"orders": Fraction(1, 10**6)})
    ledger.commit("a")

    with pytest.raises(BudgetExhausted, match=r"δ = 2e-06 but only 1e-06 of its max_delta 3e-06"):
        ledger.check({"orders": Fraction(1, 100)}, {"orders": Fraction(2, 10**6)})
    with pytest.raises(BudgetExhausted, match="max_delta"):
        ledger.reserve(
            "c",
            {"stores": Fraction(1, 100), "orders": Fraction(1, 100)},
            {"stores": Fraction(1, 10**6), "orders": Fraction(2, 10**6)},
        )
    assert ledger.state_of("c") == {}  # nothing reserved, not even where δ had room
    ledger.release("b")  # nothing opened: its δ comes back
    ledger.reserve("c", {"orders": Fraction(1, 100)}, {"orders": Fraction(2, 10**6)})

    lines = {line.dataset: line for line in ledger.show()}
    assert (lines["orders"].delta_spent, lines["orders"].delta_reserved) == (
        Fraction(1, 10**6),
        Fraction(2, 10**6),
    )
    assert lines["orders"].delta_remaining == 0
    assert lines["stores"].delta_cap == DEFAULT_MAX_DELTA  # no max_delta named: the default


def test_a_job_without_delta_never_touches_the_delta_cap(ledger: Ledger) -> None:
    ledger.reserve("a", {"orders": Fraction(1, 4)})

    (orders,) = [line for line in ledger.show() if line.dataset == "orders"]
    assert orders.delta_spent == orders.delta_reserved == 0


def test_a_ledger_made_before_delta_was_kept_gains_the_column(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the table as it was, with one committed charge
        db.execute(
            "CREATE TABLE budget_charges (job_id VARCHAR(64), dataset VARCHAR(128), "
            "rho VARCHAR(200), state VARCHAR(16), updated_at VARCHAR(40), "
            "PRIMARY KEY (job_id, dataset))"
        )
        db.execute("INSERT INTO budget_charges VALUES ('old', 'orders', '1/4', 'committed', '')")
    ledger = Ledger(make_engine(f"sqlite:///{path}"), {"orders": Fraction(1)})
    ledger.reserve("new", {"orders": Fraction(1, 4)}, {"orders": Fraction(1, 10**6)})

    (orders,) = ledger.show()
    assert (orders.spent, orders.delta_spent, orders.delta_reserved) == (
        Fraction(1, 4),
        0,
        Fraction(1, 10**6),
    )


def test_a_job_s_delta_is_the_laplace_sampler_s_and_discovery_s_threshold() -> None:
    from ensnif_mpc.privacy import dp
    from ensnif_mpc.privacy.delta import job_delta
    from protocols.registry import get

    gaussian = dp.plan(0.5, [(1.0, 1)], 3, 1)
    laplace = dp.laplace_plan(1.0, 1e-10, [(1.0, 1)], 3, 1)
    discovery = get("group_discovery").extra

    assert job_delta(dp.EXACT, discovery, {}) == 0
    assert job_delta(gaussian, {}, {}) == 0
    assert job_delta(laplace, {}, {}) == Fraction(1e-10)
    assert job_delta(gaussian, discovery, {}) == Fraction(1e-6)  # its default δ
    assert job_delta(laplace, discovery, {"delta": 1e-9}) == Fraction(1e-10) + Fraction(1e-9)


def test_an_exact_job_reserves_and_moves_nothing_and_leaves_the_others_alone(
    ledger: Ledger,
) -> None:
    ledger.reserve("dp", {"orders": Fraction(1, 4)})
    ledger.reserve("exact", {})

    assert ledger.commit("exact") == 0  # nothing reserved, nothing spent
    assert ledger.release("exact") == 0
    assert ledger.state_of("exact") == {}
    assert ledger.commit("dp") == 1  # a job with a charge still moves its row
    lines = {line.dataset: line for line in ledger.show()}
    assert lines["orders"].spent == Fraction(1, 4) and lines["orders"].reserved == 0
