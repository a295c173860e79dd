"""SQL sources through SQLAlchemy: push-down pre-aggregation, bounds checks, timeouts.

Split from :mod:`ensnif_mpc.data.sources` so that SQLAlchemy is imported only by a process
that reads a SQL dataset (a worker on a CSV file starts about 0.5 s faster); the
semantics are those described there.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.sql.elements import ColumnElement

from ensnif_mpc.data.schema import Column
from ensnif_mpc.data.sources import (
    EXACT,
    Aggregate,
    Measure,
    Source,
    SourceSpec,
    Where,
    _column_values,
    _finish,
    _limbs,
    _Recipe,
    _Scaled,
    _sum_terms,
)
from ensnif_mpc.errors import DataError, SourceFailed, SourceTimeout

log = logging.getLogger("ensnif_mpc.data.sources")


_ENGINES: dict[tuple[str, float], Engine] = {}
_ENGINES_LOCK = threading.Lock()
ROW_BITS = 27  # push-down limbs assume fewer than 2**27 rows; checked against COUNT(*) after


def _engine(spec: SourceSpec, label: str) -> Engine:
    """One engine per URL per process. SQLite files open read-only and must exist."""
    key = (spec.url, spec.timeout_s)
    with _ENGINES_LOCK:
        hit = _ENGINES.get(key)
    if hit is not None:
        return hit
    try:
        url = make_url(os.path.expandvars(spec.url))  # ${VAR}s come from this process's env
        backend = url.get_backend_name()
        db = url.database or ""
        if backend == "sqlite" and db and db != ":memory:" and not db.startswith("file:"):
            if not Path(db).is_file():
                raise SourceFailed(f"{label}: database file {db} does not exist")
            uri = f"file:{urllib.parse.quote(str(Path(db).resolve()))}?mode=ro"

            def connect() -> sqlite3.Connection:
                return sqlite3.connect(uri, uri=True, check_same_thread=False)

            engine = sa.create_engine(url, creator=connect)
        elif backend == "postgresql":
            timeout = {"connect_timeout": max(1, math.ceil(spec.timeout_s))}
            engine = sa.create_engine(url, connect_args=timeout, pool_pre_ping=True)
        else:
            engine = sa.create_engine(url, pool_pre_ping=True)
    except ImportError as exc:
        raise SourceFailed(
            f"{label}: the database driver is not installed ({exc}); install it on this node"
        ) from exc
    except sa.exc.ArgumentError as exc:
        raise SourceFailed(f"{label}: not a usable database url ({type(exc).__name__})") from exc
    with _ENGINES_LOCK:
        return _ENGINES.setdefault(key, engine)


class _Session:
    """One connection with a deadline shared by every statement of one call."""

    def __init__(self, conn: Connection, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.backend = conn.dialect.name

    def execute(self, stmt: Any) -> Any:
        if self.backend == "postgresql":
            ms = max(1, int((self.deadline - time.monotonic()) * 1000))
            self.conn.exec_driver_sql(f"SET statement_timeout = {ms}")
        return self.conn.execute(stmt)


class SqlSource(Source):
    """A SELECT (or a table) in the owner's database; aggregation runs in the database."""

    row_bits = ROW_BITS

    # -- connections, timeouts and errors

    def _scrub(self, text: str) -> str:
        try:
            password = make_url(os.path.expandvars(self.spec.url)).password
        except Exception:
            return "(details hidden)"
        if password:
            text = text.replace(str(password), "***")
            text = text.replace(urllib.parse.quote(str(password), safe=""), "***")
        return text

    @contextmanager
    def _session(self) -> Iterator[_Session]:
        engine = _engine(self.spec, self.label)
        deadline = time.monotonic() + self.spec.timeout_s
        connected, fired = False, threading.Event()
        try:
            with engine.connect() as conn:
                connected = True
                raw = conn.connection.dbapi_connection
                timer = None
                if isinstance(raw, sqlite3.Connection):

                    def progress() -> int:
                        return 1 if time.monotonic() > deadline else 0

                    raw.set_progress_handler(progress, 10_000)
                elif conn.dialect.name != "postgresql" and hasattr(raw, "cancel"):

                    def cancel() -> None:
                        fired.set()
                        raw.cancel()  # type: ignore[union-attr]

                    timer = threading.Timer(self.spec.timeout_s, cancel)
                    timer.start()
                try:
                    yield _Session(conn, deadline)
                finally:
                    if isinstance(raw, sqlite3.Connection):
                        raw.set_progress_handler(None, 0)
                    if timer is not None:
                        timer.cancel()
        except sa.exc.DBAPIError as exc:
            raise self._failure(exc, connected, deadline, fired.is_set()) from exc
        except sa.exc.SQLAlchemyError as exc:
            log.warning("%s: %s", self.label, self._scrub(str(exc).splitlines()[0]))
            raise SourceFailed(
                f"{self.label}: the database layer failed ({type(exc).__name__}); see the "
                "node's log"
            ) from exc

    def _failure(
        self, exc: sa.exc.DBAPIError, connected: bool, deadline: float, fired: bool
    ) -> SourceFailed:
        orig = exc.orig
        detail = self._scrub(" ".join(str(orig).split()))
        code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
        interrupted = isinstance(orig, sqlite3.OperationalError) and "interrupt" in detail
        if connected and (fired or code == "57014" or interrupted or time.monotonic() >= deadline):
            return SourceTimeout(
                f"{self.label}: the query did not finish within {self.spec.timeout_s:g} s "
                "(raise timeout_seconds in the dataset config, or make the query cheaper)"
            )
        if not connected:
            return SourceFailed(
                f"{self.label}: cannot connect ({detail}); check the url and that the "
                "database is running"
            )
        if isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError):
            # The driver's text quotes data here (a value that failed a cast, a duplicate
            # key) and this message travels to the analyst: it stays in the node's log.
            log.warning("%s: query failed: %s", self.label, detail)
            return SourceFailed(
                f"{self.label}: the query failed on the data ({type(orig).__name__}"
                f"{f', SQLSTATE {code}' if code else ''}); the node's log has the database's "
                "message; check the dataset's query or column types"
            )
        return SourceFailed(
            f"{self.label}: the query failed ({detail}); check the dataset's query or table"
        )

    # -- statements

    def _from(self, names: Sequence[str]) -> Any:
        cols = [sa.column(n, _sql_type(self._col(n))) for n in dict.fromkeys(names)]
        if self.spec.table:
            *schema, table = self.spec.table.split(".")
            return sa.table(table, *cols, schema=".".join(schema) or None)
        query = self.spec.query.strip().rstrip(";").strip().replace(":", r"\:")  # no binds
        return sa.text(query).columns(*cols).subquery("src")

    def _bounded(self, src: Any, cond: list[Any]) -> tuple[Any, list[Any]]:
        """Contribution bounding pushed down: the rows passing ``cond``, numbered per person
        (ROW_NUMBER() OVER (PARTITION BY person)), at most ``bound.rows`` of each."""
        if self.bound is None:
            return src, cond
        rn = sa.func.row_number().over(partition_by=src.c[self.bound.person]).label("_rn")
        ranked = sa.select(*src.c, rn).select_from(src).where(*cond).subquery("bounded")
        return ranked, [ranked.c._rn <= self.bound.rows]

    def header(self) -> list[str]:
        stmt = sa.select(sa.text("*")).select_from(self._from([])).limit(0)
        with self._session() as s:
            return list(s.execute(stmt).keys())

    def _present(self, names: Sequence[str]) -> None:
        header = self.header()
        for n in names:
            if n not in header:
                raise DataError(f"{self.label}: no column {n!r} among the query's columns")

    def row_count(self) -> int:
        stmt = sa.select(sa.func.count()).select_from(self._from([]))
        with self._session() as s:
            return int(s.execute(stmt).scalar_one())

    def _bad(self, c: Any, col: Column, backend: str) -> ColumnElement[bool]:
        """SQL for 'this value is invalid' (null, not a number, not finite, bounds, fraction)."""
        terms: list[ColumnElement[bool]] = []
        if backend == "sqlite":  # dynamic typing: a REAL column may hold text; 'null' too
            terms.append(sa.func.typeof(c).not_in(["integer", "real"]))
        else:
            terms.append(c.is_(None))
        if self.clamp:  # infinities (and PostgreSQL's NaN, which sorts above them)
            big: ColumnElement[Any] = sa.literal_column("1.7976931348623157e308")
            terms += [c > big, c < -big]
        else:  # the bounds catch those too
            terms += [c < col.lower, c > col.upper]
        if col.type == "int":
            terms.append(c != sa.func.round(c))
        return sa.or_(*terms)

    def _raise_offender(self, s: _Session, names: Sequence[str]) -> NoReturn:
        for n in names:
            err = self._offender(s, n)
            if err is not None:
                raise err
        raise DataError(f"{self.label}: a value of {', '.join(names)} is invalid")

    def _offender(self, s: _Session, name: str) -> DataError | None:
        """The first invalid value of a column, in the order the database returns rows."""
        col = self._col(name)
        src = self._from([name])
        numbered = sa.select(
            sa.func.row_number().over().label("rn"), src.c[name].label("v")
        ).subquery("numbered")
        bad = self._bad(numbered.c.v, col, s.backend)
        rows = s.execute(
            sa.select(numbered.c.rn, numbered.c.v).where(bad).order_by(numbered.c.rn).limit(1)
        ).all()
        if not rows:
            return None
        rn, v = rows[0]
        return DataError(
            f"{self.label}: row {rn}, column {name!r}: {_what_is_wrong(v, col, self.clamp)}"
        )

    def check(self, names: Sequence[str]) -> int:
        self._present([c.name for c in self.columns])
        numeric = [n for n in dict.fromkeys(names) if self._col(n).numeric]
        src = self._from(numeric)
        with self._session() as s:
            counts = [sa.func.count().label("n")]
            for i, n in enumerate(numeric):
                bad = self._bad(src.c[n], self._col(n), s.backend)
                counts.append(sa.func.sum(sa.case((bad, 1), else_=0)).label(f"b{i}"))
            row = s.execute(sa.select(*counts).select_from(src)).one()
            offending = [n for i, n in enumerate(numeric) if row[i + 1]]
            if offending:
                self._raise_offender(s, offending)
            return int(row[0])

    def column(self, name: str, scale: int | None = None) -> np.ndarray:
        col = self._col(name)
        if col.numeric:
            self.check([name])
        else:
            self._present([name])
        src, cond = self._bounded(self._from([name, *self._person()]), [])
        with self._session() as s:
            values = s.execute(sa.select(src.c[name]).select_from(src).where(*cond)).scalars().all()
        if not col.numeric:
            if None in values:
                i = values.index(None)
                raise DataError(f"{self.label}: row {i + 1}, column {name!r}: empty (NULL)")
            return np.asarray([str(v) for v in values], dtype=object)
        return _column_values(self, col, np.asarray(values, dtype=np.float64), scale)

    def _scaled_sql(self, c: Any, s: _Scaled, backend: str) -> ColumnElement[Any]:
        """rint(value * 10^d) as a 64-bit integer, half to even, on SQLite and PostgreSQL.

        The value is clamped to the bounds first, always: with ``clamp`` unset an
        out-of-bounds row is reported by the validation column, and clamping here keeps
        the integer arithmetic of that row from overflowing before the report.
        """
        col = s.column
        c = sa.case((c < col.lower, col.lower), (c > col.upper, col.upper), else_=c)
        y = sa.cast(c, sa.Float) * sa.literal_column(repr(s.factor))
        if s.bound < 2**51:  # IEEE doubles round half to even when adding 1.5 * 2^52
            magic: ColumnElement[Any] = sa.literal_column("6755399441055744.0")
            return sa.cast((y + magic) - magic, sa.BigInteger)
        if backend == "sqlite":  # no FLOOR unless compiled in: floor = trunc - (y < trunc)
            t = sa.cast(y, sa.Integer)
            fl: ColumnElement[Any] = t - sa.case((y < t, 1), else_=0)
        else:
            fl = sa.cast(sa.func.floor(y), sa.BigInteger)
        f = y - fl
        up = sa.or_(f > 0.5, sa.and_(f == 0.5, fl.self_group().op("%")(2) != 0))
        return fl + sa.case((up, 1), else_=0)

    def _sql_terms(self, x: Any, s: _Scaled, square: bool, bits: int) -> list[tuple[int, Any]]:
        w, _ = _limbs(s.bound, bits, square)
        ax = sa.func.abs(x)

        def limb(i: int) -> Any:
            shifted = ax.op("/")(sa.literal_column(str(1 << (w * i)))) if i else ax
            return shifted.op("%")(sa.literal_column(str(1 << w)))

        out = []
        for weight, limbs in _sum_terms(s.bound, bits, square):
            if not limbs:
                term = x * x if square else x
            elif len(limbs) == 1:
                a = limb(limbs[0])
                term = sa.case((x < 0, -a), else_=a)
            else:
                term = limb(limbs[0]) * limb(limbs[1])
            out.append((weight, term))
        return out

    def aggregate(
        self,
        by: Sequence[str],
        measures: Sequence[Measure],
        where: Sequence[Where] = (),
        scale: dict[str, int] | None = None,
    ) -> Aggregate:
        by_cols, scaled, checked = self._prepare(by, measures, where, scale)
        with self._session() as s:
            rows, names, recipe = self._pushdown(s, by_cols, scaled, checked, measures, where)
            total = sum(int(r._mapping["count_all"]) for r in rows)
            if total >= 1 << self.row_bits:  # limbs sized for fewer rows: again, sized for these
                bits = total.bit_length() + 1
                rows, names, recipe = self._pushdown(
                    s, by_cols, scaled, checked, measures, where, bits
                )
                if sum(int(r._mapping["count_all"]) for r in rows) >= 1 << bits:
                    raise SourceFailed(f"{self.label}: the rows changed during aggregation")
        return _finish(_rows_table(rows, by_cols, names, self.label), by_cols, recipe)

    def _pushdown(
        self,
        s: _Session,
        by_cols: list[Column],
        scaled: dict[str, _Scaled],
        checked: list[str],
        measures: Sequence[Measure],
        where: Sequence[Where],
        row_bits: int | None = None,
    ) -> tuple[Sequence[Any], list[str], _Recipe]:
        """One GROUP BY statement: scaling, filtering, validation and exact limb sums."""
        bits = row_bits or self.row_bits
        by = [b.name for b in by_cols]
        src = self._from([*by, *scaled, *checked, *(w.column for w in where), *self._person()])
        cond = [_sql_compare(src.c[w.column], w) for w in where]
        src, cond = self._bounded(src, cond)  # the filter, then at most k rows per person
        inner_cols = [src.c[b].label(f"_k{i}") for i, b in enumerate(by)]
        inner_cols += [
            self._scaled_sql(src.c[n], sc, s.backend).label(f"_x{i}")
            for i, (n, sc) in enumerate(scaled.items())
        ]
        if checked:
            bad = sa.or_(*(self._bad(src.c[n], self._col(n), s.backend) for n in checked))
            inner_cols.append(sa.case((bad, 1), else_=0).label("_bad"))
        if not inner_cols:
            inner_cols.append(sa.literal_column("1").label("_one"))
        # OFFSET 0 keeps the database from inlining the subquery into every aggregate
        # (SQLite's flattener, PostgreSQL's pull-up): each row is scaled once.
        inner = sa.select(*inner_cols).select_from(src).where(*cond).offset(0).subquery("s")
        keys = [inner.c[f"_k{i}"] for i in range(len(by))]
        outs: list[Any] = [*keys, sa.func.count().label("count_all")]
        if checked:
            outs.append(sa.func.max(inner.c._bad).label("_bad"))
        recipe, xi = _Recipe(), {n: i for i, n in enumerate(scaled)}
        for m in measures:
            if m.func == "count" or m.column is None:
                recipe.add(m, [])
                continue
            x = inner.c[f"_x{xi[m.column]}"]
            if m.func in ("min", "max"):
                outs.append(getattr(sa.func, m.func)(x).label(f"_a{len(outs)}"))
                recipe.add(m, [(1, f"_a{len(outs) - 1}")])
                continue
            parts = []
            for weight, term in self._sql_terms(x, scaled[m.column], m.func == "sumsq", bits):
                outs.append(sa.func.sum(term).label(f"_a{len(outs)}"))
                parts.append((weight, f"_a{len(outs) - 1}"))
            recipe.add(m, parts)
        stmt = sa.select(*outs).select_from(inner)
        rows = s.execute(stmt.group_by(*keys) if keys else stmt).all()
        if checked and any(r._mapping["_bad"] for r in rows):
            self._raise_offender(s, checked)
        return rows, [o.name for o in outs], recipe


def _what_is_wrong(v: Any, col: Column, clamp: bool) -> str:
    """Why a value the database flagged is invalid (the value itself is never shown)."""
    if v is None:
        return "empty (NULL)"
    if isinstance(v, str | bytes | bool):
        return "not a number"
    try:
        f = float(v)  # int, float, or a Decimal from a NUMERIC column
    except (TypeError, ValueError):
        return "not a number"
    if not math.isfinite(f):
        return "not a finite number"
    if not clamp and not col.lower <= f <= col.upper:
        return f"outside the declared bounds [{col.lower:g}, {col.upper:g}]"
    return "not an integer"


def _sql_type(col: Column) -> Any:
    return {"int": sa.BigInteger(), "float": sa.Float()}.get(col.type, sa.String())


def _arrow_type(col: Column) -> Any:
    return {"int": pa.int64(), "float": pa.float64()}.get(col.type, pa.string())


def _sql_compare(c: Any, w: Where) -> ColumnElement[bool]:
    ops: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
        ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        "<": lambda a, b: a < b,
        "==": lambda a, b: a == b,
    }
    return ops[w.op](c, w.value)


def _int(v: Any) -> int | None:
    """A database integer (int, Decimal from PostgreSQL's SUM, integral float) as a Python int."""
    if v is None:
        return None
    if isinstance(v, float) and not (v.is_integer() and abs(v) < EXACT):
        raise DataError(
            "the database returned a non-integral or too large number where an exact "
            "integer sum was expected (is a column's type declared right?)"
        )
    return int(v)


def _rows_table(rows: Sequence[Any], by: list[Column], names: list[str], label: str) -> Any:
    """The database's aggregate rows as an Arrow table for :func:`_finish`."""
    cols: dict[str, Any] = {}
    for j, name in enumerate(names):
        values = [r[j] for r in rows]
        if j < len(by):
            if None in values:
                raise DataError(
                    f"{label}: column {by[j].name!r} has empty (NULL) values; "
                    "a group-by column needs a value in every row"
                )
            if by[j].type == "int":
                values = [_int(v) for v in values]
            elif by[j].type == "string":
                values = [str(v) for v in values]
            cols[name] = pa.array(values, _arrow_type(by[j]))
        else:
            cols[name] = pa.array([_int(v) for v in values], pa.int64())
    return pa.table(cols)


__all__ = ["SqlSource"]
