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

δ is added up beside ρ, per dataset, on the same rows and through the same states: a
job's δ (the discrete Laplace sampler's error bound, group discovery's threshold δ;
:func:`ensnif_mpc.privacy.delta.job_delta`) is reserved with its ρ and refused the same
way when spent + reserved + δ would exceed the dataset's ``max_delta`` (default
:data:`DEFAULT_MAX_DELTA`). Composition adds δs (the guarantee of k releases holds
except with probability at most Σδ), so the sum is what the owner bounds. A database
made before δ was kept gains the column at start, every earlier charge with δ = 0.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from sqlalchemy import String, inspect, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ensnif_mpc.db import create_schema, utcnow
from ensnif_mpc.errors import BudgetExhausted, InvalidArgument

RESERVED, COMMITTED, RELEASED = "reserved", "committed", "released"
# The δ a dataset may spend over all its jobs when its policy names no max_delta: 1e-5 is
# ten group discoveries at their default δ (1e-6), or 10^5 Laplace jobs at theirs (1e-10).
DEFAULT_MAX_DELTA = Fraction(1, 10**5)


class _Base(DeclarativeBase):
    pass


class ChargeRow(_Base):
    __tablename__ = "budget_charges"
    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(128), primary_key=True)
    rho: Mapped[str] = mapped_column(String(200))  # an exact fraction "p/q"
    # The job's δ for this dataset, an exact fraction ("0" for a pure zCDP release).
    delta: Mapped[str] = mapped_column(String(200), default="0", server_default="0")
    state: Mapped[str] = mapped_column(String(16), index=True)
    updated_at: Mapped[str] = mapped_column(String(40))


@dataclass(frozen=True)
class BudgetLine:
    dataset: str
    cap: Fraction
    spent: Fraction
    reserved: Fraction
    delta_cap: Fraction = DEFAULT_MAX_DELTA
    delta_spent: Fraction = Fraction(0)
    delta_reserved: Fraction = Fraction(0)

    @property
    def remaining(self) -> Fraction:
        return self.cap - self.spent - self.reserved

    @property
    def delta_remaining(self) -> Fraction:
        return self.delta_cap - self.delta_spent - self.delta_reserved


@dataclass(frozen=True)
class _Totals:
    spent: Fraction
    reserved: Fraction
    delta_spent: Fraction
    delta_reserved: Fraction


def check_cost(rho: Fraction | float) -> Fraction:
    value = Fraction(rho)  # raises on NaN/inf floats
    if value <= 0:
        raise InvalidArgument(f"a privacy cost must be positive, got ρ = {rho}")
    return value


def check_delta(delta: Fraction | float) -> Fraction:
    value = Fraction(delta)  # raises on NaN/inf floats
    if not 0 <= value < 1:
        raise InvalidArgument(f"a job's δ must be in [0, 1), got δ = {delta}")
    return value


def _add_delta_column(engine: Engine) -> None:
    """A ledger made before δ was kept: add the column, every earlier charge at δ = 0."""
    columns = {c["name"] for c in inspect(engine).get_columns(ChargeRow.__tablename__)}
    if "delta" not in columns:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "ALTER TABLE budget_charges ADD COLUMN delta VARCHAR(200) NOT NULL DEFAULT '0'"
                )
            )


class Ledger:
    def __init__(
        self,
        engine: Engine,
        caps: dict[str, Fraction],
        delta_caps: Mapping[str, Fraction] | None = None,
    ) -> None:
        self.engine = engine
        self.caps = {k: Fraction(v) for k, v in caps.items()}
        # Per dataset, the δ all its jobs may add up to (DEFAULT_MAX_DELTA where unnamed).
        self.delta_caps = {k: Fraction(v) for k, v in (delta_caps or {}).items()}
        self._lock = threading.Lock()
        # Jobs this process reserved nothing for (an exact release): their commit or release
        # has no row to move, so it skips the database (lost on a restart, when the
        # database is asked instead, as before).
        self._free: set[str] = set()
        create_schema(_Base.metadata, engine)
        _add_delta_column(engine)

    def delta_cap(self, dataset: str) -> Fraction:
        return self.delta_caps.get(dataset, DEFAULT_MAX_DELTA)

    def _totals(self, session: Session, dataset: str) -> _Totals:
        spent, reserved = Fraction(0), Fraction(0)
        d_spent, d_reserved = Fraction(0), Fraction(0)
        rows = session.scalars(select(ChargeRow).where(ChargeRow.dataset == dataset))
        for row in rows:
            if row.state == COMMITTED:
                spent += Fraction(row.rho)
                d_spent += Fraction(row.delta or "0")
            elif row.state == RESERVED:
                reserved += Fraction(row.rho)
                d_reserved += Fraction(row.delta or "0")
        return _Totals(spent, reserved, d_spent, d_reserved)

    def _refuse_beyond(
        self, session: Session, dataset: str, rho: Fraction, delta: Fraction
    ) -> None:
        """BudgetExhausted when the job's ρ or δ would take the dataset past its cap."""
        cap = self.caps.get(dataset)
        if cap is None:
            raise BudgetExhausted(f"dataset {dataset!r} has no privacy budget configured")
        t = self._totals(session, dataset)
        if t.spent + t.reserved + rho > cap:
            remaining = cap - t.spent - t.reserved
            raise BudgetExhausted(
                f"dataset {dataset!r}: the job costs ρ = {float(rho):.6g} but only "
                f"{float(remaining):.6g} of {float(cap):.6g} remains "
                f"(spent {float(t.spent):.6g}, reserved {float(t.reserved):.6g})"
            )
        d_cap = self.delta_cap(dataset)
        if delta and t.delta_spent + t.delta_reserved + delta > d_cap:
            left = d_cap - t.delta_spent - t.delta_reserved
            raise BudgetExhausted(
                f"dataset {dataset!r}: the job's δ = {float(delta):.3g} but only "
                f"{float(left):.3g} of its max_delta {float(d_cap):.3g} remains "
                f"(spent {float(t.delta_spent):.3g}, reserved {float(t.delta_reserved):.3g})"
            )

    def check(
        self, charges: dict[str, Fraction], deltas: Mapping[str, Fraction] | None = None
    ) -> None:
        """Refuse (BudgetExhausted) as :meth:`reserve` would, reserving nothing: admission
        runs it among the checks that do not read data, before any that do."""
        with Session(self.engine) as session:
            for dataset, rho in charges.items():
                delta = Fraction((deltas or {}).get(dataset, 0))
                self._refuse_beyond(session, dataset, Fraction(rho), delta)

    def reserve(
        self,
        job_id: str,
        charges: dict[str, Fraction],
        deltas: Mapping[str, Fraction] | None = None,
    ) -> None:
        """Reserve every charge (ρ and, where given, δ) or none. Idempotent for a job that
        already reserved."""
        costs = {}
        for dataset, rho in charges.items():
            try:
                costs[dataset] = check_cost(rho)
            except (ValueError, OverflowError):
                raise InvalidArgument(f"invalid privacy cost for {dataset!r}: {rho!r}") from None
        spread = {}
        for dataset, delta in (deltas or {}).items():
            if dataset not in costs:
                raise InvalidArgument(f"a δ for {dataset!r} without a ρ charge")
            try:
                spread[dataset] = check_delta(delta)
            except (ValueError, OverflowError):
                raise InvalidArgument(f"invalid δ for {dataset!r}: {delta!r}") from None
        if not costs:  # nothing to reserve or to refuse (an exact release)
            with self._lock:
                self._free.add(job_id)
            return
        with self._lock, Session(self.engine) as session, session.begin():
            existing = session.scalars(select(ChargeRow).where(ChargeRow.job_id == job_id)).all()
            if existing:
                return
            for dataset, cost in costs.items():
                self._refuse_beyond(session, dataset, cost, spread.get(dataset, Fraction(0)))
            now = utcnow().isoformat()
            for dataset, cost in costs.items():
                session.add(
                    ChargeRow(
                        job_id=job_id,
                        dataset=dataset,
                        rho=str(cost),
                        delta=str(spread.get(dataset, Fraction(0))),
                        state=RESERVED,
                        updated_at=now,
                    )
                )

    def _move(self, job_id: str, to: str) -> int:
        with self._lock:
            if job_id in self._free:
                self._free.discard(job_id)
                return 0
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
                t = self._totals(session, dataset)
                out.append(
                    BudgetLine(
                        dataset,
                        cap,
                        t.spent,
                        t.reserved,
                        self.delta_cap(dataset),
                        t.delta_spent,
                        t.delta_reserved,
                    )
                )
            return out
