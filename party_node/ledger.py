"""The privacy-budget ledger a data owner's node keeps for its own datasets (authoritative).

Budgets are zero-concentrated DP ρ, kept as exact fractions (text) so repeated
charges never drift. A job's charge moves through

    RESERVED  --(anything opened to anyone)-->  COMMITTED   (irrevocable)
    RESERVED  --(nothing was opened)-------->  RELEASED

Reservation is atomic across all datasets a job touches: spent + reserved +
cost ≤ cap for each, else nothing is reserved and the job is refused with what
remains. After a crash, a reservation whose job is no longer live counts as
spent (:meth:`Ledger.recover`): the node cannot prove nothing was opened.
An over-budget job is refused — never answered with more noise.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from fractions import Fraction

from sqlalchemy import String, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ensnif_mpc.db import create_schema, utcnow
from ensnif_mpc.errors import BudgetExhausted, InvalidArgument

RESERVED, COMMITTED, RELEASED = "reserved", "committed", "released"


class _Base(DeclarativeBase):
    pass


class ChargeRow(_Base):
    __tablename__ = "budget_charges"
    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(128), primary_key=True)
    rho: Mapped[str] = mapped_column(String(200))  # an exact fraction "p/q"
    state: Mapped[str] = mapped_column(String(16), index=True)
    updated_at: Mapped[str] = mapped_column(String(40))


@dataclass(frozen=True)
class BudgetLine:
    dataset: str
    cap: Fraction
    spent: Fraction
    reserved: Fraction

    @property
    def remaining(self) -> Fraction:
        return self.cap - self.spent - self.reserved


def check_cost(rho: Fraction | float) -> Fraction:
    value = Fraction(rho)  # raises on NaN/inf floats
    if value <= 0:
        raise InvalidArgument(f"a privacy cost must be positive, got ρ = {rho}")
    return value


class Ledger:
    def __init__(self, engine: Engine, caps: dict[str, Fraction]) -> None:
        self.engine = engine
        self.caps = {k: Fraction(v) for k, v in caps.items()}
        self._lock = threading.Lock()
        create_schema(_Base.metadata, engine)

    def _totals(self, session: Session, dataset: str) -> tuple[Fraction, Fraction]:
        spent, reserved = Fraction(0), Fraction(0)
        rows = session.scalars(select(ChargeRow).where(ChargeRow.dataset == dataset))
        for row in rows:
            if row.state == COMMITTED:
                spent += Fraction(row.rho)
            elif row.state == RESERVED:
                reserved += Fraction(row.rho)
        return spent, reserved

    def check(self, charges: dict[str, Fraction]) -> None:
        """Refuse (BudgetExhausted) as :meth:`reserve` would, reserving nothing: admission
        runs it among the checks that do not read data, before any that do."""
        with Session(self.engine) as session:
            for dataset, rho in charges.items():
                cap = self.caps.get(dataset)
                if cap is None:
                    raise BudgetExhausted(f"dataset {dataset!r} has no privacy budget configured")
                spent, reserved = self._totals(session, dataset)
                if spent + reserved + Fraction(rho) > cap:
                    remaining = cap - spent - reserved
                    raise BudgetExhausted(
                        f"dataset {dataset!r}: the job costs ρ = {float(rho):.6g} but only "
                        f"{float(remaining):.6g} of {float(cap):.6g} remains "
                        f"(spent {float(spent):.6g}, reserved {float(reserved):.6g})"
                    )

    def reserve(self, job_id: str, charges: dict[str, Fraction]) -> None:
        """Reserve every charge or none. Idempotent for a job that already reserved."""
        costs = {}
        for dataset, rho in charges.items():
            try:
                costs[dataset] = check_cost(rho)
            except (ValueError, OverflowError):
                raise InvalidArgument(f"invalid privacy cost for {dataset!r}: {rho!r}") from None
        with self._lock, Session(self.engine) as session, session.begin():
            existing = session.scalars(select(ChargeRow).where(ChargeRow.job_id == job_id)).all()
            if existing:
                return
            for dataset, cost in costs.items():
                cap = self.caps.get(dataset)
                if cap is None:
                    raise BudgetExhausted(f"dataset {dataset!r} has no privacy budget configured")
                spent, reserved = self._totals(session, dataset)
                if spent + reserved + cost > cap:
                    remaining = cap - spent - reserved
                    raise BudgetExhausted(
                        f"dataset {dataset!r}: the job costs ρ = {float(cost):.6g} but only "
                        f"{float(remaining):.6g} of {float(cap):.6g} remains "
                        f"(spent {float(spent):.6g}, reserved {float(reserved):.6g})"
                    )
            now = utcnow().isoformat()
            for dataset, cost in costs.items():
                session.add(
                    ChargeRow(
                        job_id=job_id,
                        dataset=dataset,
                        rho=str(cost),
                        state=RESERVED,
                        updated_at=now,
                    )
                )

    def _move(self, job_id: str, to: str) -> int:
        with self._lock, Session(self.engine) as session, session.begin():
            result = session.execute(
                update(ChargeRow)
                .where(ChargeRow.job_id == job_id, ChargeRow.state == RESERVED)
                .values(state=to, updated_at=utcnow().isoformat())
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def commit(self, job_id: str) -> int:
        """Something was opened: the charge is spent for good."""
        return self._move(job_id, COMMITTED)

    def release(self, job_id: str) -> int:
        """Nothing was opened to anyone: give the reservation back."""
        return self._move(job_id, RELEASED)

    def recover(self, live_jobs: set[str]) -> int:
        """After a restart: reservations of jobs no longer live count as spent."""
        with self._lock, Session(self.engine) as session, session.begin():
            stale = session.scalars(select(ChargeRow).where(ChargeRow.state == RESERVED)).all()
            moved = 0
            for row in stale:
                if row.job_id not in live_jobs:
                    row.state = COMMITTED
                    moved += 1
            return moved

    def state_of(self, job_id: str) -> dict[str, str]:
        with Session(self.engine) as session:
            rows = session.scalars(select(ChargeRow).where(ChargeRow.job_id == job_id))
            return {r.dataset: r.state for r in rows}

    def show(self) -> list[BudgetLine]:
        with Session(self.engine) as session:
            out = []
            for dataset, cap in sorted(self.caps.items()):
                spent, reserved = self._totals(session, dataset)
                out.append(BudgetLine(dataset, cap, spent, reserved))
            return out
