"""Spark sources through Spark SQL: push-down pre-aggregation, bounds checks, timeouts.

A data owner whose rows live in Spark declares ``kind = "spark"`` with a ``url`` —
``local[N]`` (a Spark inside the reading process: the node for its checks, the job's
worker for the aggregate) or ``sc://host:port`` (a Spark Connect server of the owner's
cluster) — and a ``query`` or a ``table``. Everything :mod:`ensnif_mpc.data.sources`
promises holds here too: the GROUP BY, the scaling, the exact limb sums and the checks
run in Spark; only one row per group reaches Python.

- Exact sums: each scaled value is split into limbs small enough that the BIGINT sum of
  every limb (or limb product) over all rows fits in 64 bits (the recipe of
  :func:`~ensnif_mpc.data.sources._sum_terms`, sized for fewer than 2**27 rows and redone
  for more); the session runs with ANSI mode, so an overflow would be an error, never a
  wrapped sum.
- Checks: one pushed-down statement counts the invalid values of each column; only when
  one is found, a second finds the first offending row's position (in the order Spark
  reads the rows) and what is wrong with it, computed in Spark: the value itself never
  reaches this process, a message or a log.
- Errors: an execution error's text quotes data (``The value 'x' cannot be cast``), so
  only its condition and SQLSTATE are shown; pyspark's own loggers that would print such
  text are silenced. Planning errors (a missing table or column, a syntax error) are shown.
- Contribution bounding: under a DP job's person bound, at most k rows per person enter
  the aggregate (the first in Spark's read order, after the job's filter), numbered in
  Spark with ROW_NUMBER() OVER (PARTITION BY person), as for SQL sources.
- Timeouts: every statement of one call shares the dataset's deadline; at the deadline
  the statement's job group (local) or operation tag (Connect) is cancelled, again until
  it stops, and the call raises
  :class:`~ensnif_mpc.errors.SourceTimeout`. An unreachable Connect server fails within
  about a second (bounded retries) as :class:`~ensnif_mpc.errors.SourceFailed`.

pyspark is imported only by a process that reads a Spark dataset (``ensnif[spark]``).
A local Spark costs that process a JVM start (seconds), once; Connect costs a gRPC
channel. One local Spark per process: the first ``local[N]`` opened wins.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ensnif_mpc.data.schema import Column
from ensnif_mpc.data.sources import (
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
from ensnif_mpc.errors import DataError, EnsnifError, SourceFailed, SourceTimeout

log = logging.getLogger("ensnif_mpc.data.sources")

T = TypeVar("T")
ROW_BITS = 27  # push-down limbs assume fewer than 2**27 rows; checked against COUNT(*) after
GRACE_S = 3.0  # after the deadline: how long interrupts are retried before giving up on a job
LOCAL = re.compile(r"local(\[(\d+|\*)\])?")
CONNECT_RETRIES = 3  # Connect's own default retries for ten minutes

_SESSIONS: dict[str, Any] = {}
_SESSIONS_LOCK = threading.Lock()

# What a value is wrong with, by the code the check statement computes in Spark.
_WRONG = {1: "empty (NULL)", 2: "not a number", 3: "not a finite number", 5: "not an integer"}


def is_spark_url(url: str) -> bool:
    return url.startswith("sc://") or LOCAL.fullmatch(url) is not None


def describe_url(url: str) -> str:
    """``local[N]``, or ``sc://host:port`` without the parameters (a token) that may follow."""
    if url.startswith("sc://"):
        netloc = url[len("sc://") :].split("/", 1)[0].split(";", 1)[0]
        return f"sc://{netloc.rsplit('@', 1)[-1]}"
    return url if LOCAL.fullmatch(url) else "(not a spark url)"


def _import_pyspark(label: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyspark warns about pandas versions on import
            from pyspark.logger import PySparkLogger
            from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SourceFailed(
            f"{label}: pyspark is not installed on this node ({exc}); pip install 'ensnif[spark]'"
        ) from exc
    # pyspark logs every SQL error with its message, which may quote a value: off.
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).disabled = True
    return SparkSession


def _session(spec: SourceSpec, label: str) -> Any:
    """One session per URL per process (a local JVM is started once)."""
    with _SESSIONS_LOCK:
        hit = _SESSIONS.get(spec.url)
        if hit is not None:
            return hit
        spark_session = _import_pyspark(label)
        url = os.path.expandvars(spec.url)  # ${VAR}s (a token) come from this process's env
        try:
            if url.startswith("sc://"):
                # Connect's own builder, not SparkSession.builder.remote(): that one marks
                # the whole process as Connect-only, which breaks a local Spark beside it.
                from pyspark.sql.connect.client.retries import DefaultPolicy
                from pyspark.sql.connect.session import SparkSession as ConnectSession

                session = ConnectSession.builder.remote(url).create()

                session.client.set_retry_policies(
                    [DefaultPolicy(max_retries=CONNECT_RETRIES, max_backoff=1000)]
                )
            elif LOCAL.fullmatch(url):
                session = (
                    spark_session.builder.master(url)
                    .appName("ensnif")
                    .config("spark.ui.enabled", "false")
                    .config("spark.ui.showConsoleProgress", "false")
                    .config("spark.driver.host", "127.0.0.1")
                    .config("spark.driver.bindAddress", "127.0.0.1")
                    .config("spark.sql.shuffle.partitions", "8")
                    .getOrCreate()
                )
                # A new JVM's first statement loads and compiles the planner (tens of
                # seconds on a busy machine): paid here, once, not from a statement's timeout.
                session.sql(
                    "SELECT id % 2 AS k, count(*), sum(id) FROM range(10) GROUP BY id % 2"
                ).collect()
            else:
                raise SourceFailed(f"{label}: a spark url is local[N] or sc://host:port")
        except SourceFailed:
            raise
        except Exception as exc:  # no Java, a JVM that did not start, a malformed sc:// url
            raise SourceFailed(
                f"{label}: cannot start Spark ({type(exc).__name__}: {_first_line(exc)}); "
                "check the url, and for local[N] that Java 17+ is installed (JAVA_HOME)"
            ) from exc
        _SESSIONS[spec.url] = session
        return session


def stop_sessions() -> None:
    """Stop every session this process opened (tests; a process that is done with Spark)."""
    with _SESSIONS_LOCK:
        sessions = list(_SESSIONS.values())
        _SESSIONS.clear()
    for s in sessions:
        try:
            s.stop()
        except Exception:  # a Connect server that is gone: nothing to stop
            log.debug("spark session stop failed", exc_info=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _dbl(x: float) -> str:
    """A double literal (Spark reads ``1.5`` as a DECIMAL)."""
    if np.isnan(x):
        return "CAST('NaN' AS DOUBLE)"
    if np.isinf(x):
        return f"CAST('{'-' if x < 0 else ''}Infinity' AS DOUBLE)"
    return f"{float(x)!r}D"


class _Run:
    """The statements of one call, with the deadline they share."""

    def __init__(self, src: SparkSource, spark: Any) -> None:
        self.src = src
        self.spark = spark
        self.deadline = time.monotonic() + src.spec.timeout_s
        self.connect = type(spark).__module__.startswith("pyspark.sql.connect")

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a thread tagged for this call; interrupted at the deadline."""
        tag = f"ensnif-{uuid.uuid4().hex}"
        out: dict[str, Any] = {}

        def body() -> None:
            try:
                if self.connect:
                    self.spark.addTag(tag)
                else:  # a local session's jobs are cancelled by group (tags do not reach them)
                    self.spark.sparkContext.setJobGroup(tag, "ensnif source", True)
                out["value"] = fn()
            except BaseException as exc:  # handed to the caller's thread
                out["error"] = exc

        worker = threading.Thread(target=body, name="ensnif-spark", daemon=True)
        worker.start()
        worker.join(max(0.0, self.deadline - time.monotonic()))
        if worker.is_alive():
            stop = time.monotonic() + GRACE_S

            def interrupt() -> None:
                while worker.is_alive() and time.monotonic() < stop + 30:
                    try:  # repeated: a job submitted after one interrupt is caught by the next
                        if self.connect:
                            self.spark.interruptTag(tag)
                        else:
                            self.spark.sparkContext.cancelJobGroup(tag)
                    except Exception:
                        log.debug("spark interrupt failed", exc_info=True)
                    worker.join(0.25)

            # In its own thread: an interrupt is itself a call to Spark, which may not answer.
            threading.Thread(target=interrupt, name="ensnif-spark-interrupt", daemon=True).start()
            worker.join(GRACE_S)
            if worker.is_alive():
                log.warning("%s: a Spark statement outlived its interrupt", self.src.label)
            raise self.src._timeout()
        if "error" in out:
            raise self.src._failure(out["error"])
        return out["value"]  # type: ignore[no-any-return]

    def sql(self, text: str, args: dict[str, Any] | None = None) -> Any:
        """The statement's result as an Arrow table."""
        return self.call(lambda: self.spark.sql(text, args=args or None).toArrow())

    def columns(self, text: str) -> list[str]:
        return self.call(lambda: list(self.spark.sql(text).columns))


class SparkSource(Source):
    """A Spark SQL query (or a table) of the owner's Spark; aggregation runs in Spark."""

    row_bits = ROW_BITS

    # -- sessions, timeouts and errors

    @contextmanager
    def _run(self) -> Iterator[_Run]:
        yield _Run(self, _session(self.spec, self.label))

    def _timeout(self) -> SourceTimeout:
        return SourceTimeout(
            f"{self.label}: the query did not finish within {self.spec.timeout_s:g} s "
            "(raise timeout_seconds in the dataset config, or make the query cheaper)"
        )

    def _failure(self, exc: BaseException) -> Exception:
        if isinstance(exc, EnsnifError):
            return exc
        from pyspark.errors import AnalysisException, PySparkException

        condition, state = None, None
        if isinstance(exc, PySparkException):
            condition, state = exc.getCondition(), exc.getSqlState()
        if _grpc_code(exc) == "UNAVAILABLE" or type(exc).__name__ in (
            "Py4JNetworkError",
            "ConnectionRefusedError",
        ):
            return SourceFailed(
                f"{self.label}: cannot reach Spark ({_first_line(exc)}); check the url and "
                "that Spark (Connect) is running"
            )
        if isinstance(exc, AnalysisException):
            # Planning errors name tables, columns and the query's own text, not rows.
            return SourceFailed(
                f"{self.label}: the query failed ({_first_line(exc)}); check the dataset's "
                "query or table"
            )
        # Execution errors quote data (a value that failed a cast): only the condition.
        log.warning(
            "%s: Spark failed: %s (%s)", self.label, condition or type(exc).__name__, state or ""
        )
        return SourceFailed(
            f"{self.label}: the query failed on the data ({condition or type(exc).__name__}"
            f"{f', SQLSTATE {state}' if state else ''}); check the dataset's query or column "
            "types"
        )

    # -- statements

    def _from(self) -> str:
        if self.spec.table:
            return self.spec.table
        return f"({self.spec.query.strip().rstrip(';').strip()}) AS src"

    def _rows(self, cond: str = "", ordered: bool = False) -> str:
        """The FROM clause of the rows an aggregate or a column reads: those passing
        ``cond``, and under a contribution bound (``ensnif_mpc.data.bounding``) at most
        ``bound.rows`` of each person — the first ones in the order Spark reads the rows
        (``monotonically_increasing_id``, the file order for a single file), numbered with
        ROW_NUMBER() OVER (PARTITION BY person), as the SQL backend does; ``ordered``: the
        rows in read order (for a whole column)."""
        where = f" WHERE {cond}" if cond else ""
        if self.bound is None:
            return f"{self._from()}{where}"
        person = _ident(self.bound.person)
        read = f"SELECT *, monotonically_increasing_id() AS _pos FROM {self._from()}{where}"
        ranked = (
            f"SELECT *, row_number() OVER (PARTITION BY {person} ORDER BY _pos) AS _rn "
            f"FROM ({read}) AS p"
        )
        kept = f"(SELECT * FROM ({ranked}) AS r WHERE _rn <= {int(self.bound.rows)}) AS b"
        # A column in read order, as without the bound (the window regroups the rows).
        return kept + (" ORDER BY _pos" if ordered else "")

    def header(self) -> list[str]:
        with self._run() as r:
            return r.columns(f"SELECT * FROM {self._from()} LIMIT 0")

    def _present(self, r: _Run, names: Sequence[str]) -> None:
        header = r.columns(f"SELECT * FROM {self._from()} LIMIT 0")
        for n in names:
            if n not in header:
                raise DataError(f"{self.label}: no column {n!r} (columns: {', '.join(header)})")

    def row_count(self) -> int:
        with self._run() as r:
            return int(r.sql(f"SELECT count(*) AS n FROM {self._from()}").column("n")[0].as_py())

    def _num(self, name: str) -> str:
        return f"TRY_CAST({_ident(name)} AS DOUBLE)"

    def _code(self, col: Column) -> str:
        """SQL: NULL for a valid value, else the code of what is wrong (1 null … 5 fraction)."""
        c = _ident(col.name)
        if not col.numeric:
            return f"CASE WHEN {c} IS NULL THEN 1 END"
        v = self._num(col.name)
        terms = [f"WHEN {c} IS NULL THEN 1", f"WHEN {v} IS NULL THEN 2"]
        terms.append(f"WHEN isnan({v}) OR abs({v}) = {_dbl(np.inf)} THEN 3")
        if not self.clamp:
            terms.append(f"WHEN {v} < {_dbl(col.lower)} OR {v} > {_dbl(col.upper)} THEN 4")
        if col.type == "int":
            terms.append(f"WHEN {v} != bround({v}, 0) THEN 5")
        return f"CASE {' '.join(terms)} END"

    def _what(self, code: int, col: Column) -> str:
        if code == 4:
            return f"outside the declared bounds [{col.lower:g}, {col.upper:g}]"
        return _WRONG.get(code, "invalid")

    def _raise_offender(self, r: _Run, names: Sequence[str]) -> NoReturn:
        """The first offending row (its position, never its value) of the first column."""
        for name in names:
            col = self._col(name)
            numbered = (
                f"SELECT row_number() OVER (ORDER BY _mid) AS rn, _code FROM (SELECT "
                f"monotonically_increasing_id() AS _mid, {self._code(col)} AS _code "
                f"FROM {self._from()}) AS t"
            )
            found = r.sql(
                f"SELECT rn, _code FROM ({numbered}) AS n WHERE _code IS NOT NULL "
                "ORDER BY rn LIMIT 1"
            ).to_pylist()
            if found:
                rn, code = found[0]["rn"], found[0]["_code"]
                raise DataError(
                    f"{self.label}: row {rn}, column {name!r}: {self._what(int(code), col)}"
                )
        raise DataError(f"{self.label}: a value of {', '.join(names)} is invalid")

    def check(self, names: Sequence[str]) -> int:
        numeric = [n for n in dict.fromkeys(names) if self._col(n).numeric]
        with self._run() as r:
            self._present(r, [c.name for c in self.columns])
            counts = ["count(*) AS n"] + [
                f"count({self._code(self._col(n))}) AS b{i}" for i, n in enumerate(numeric)
            ]
            row = r.sql(f"SELECT {', '.join(counts)} FROM {self._from()}").to_pylist()[0]
            offending = [n for i, n in enumerate(numeric) if row[f"b{i}"]]
            if offending:
                log.info(
                    "%s: invalid values: %s",
                    self.label,
                    ", ".join(f"{n} in {row[f'b{numeric.index(n)}']} rows" for n in offending),
                )
                self._raise_offender(r, offending)
            return int(row["n"])

    def column(self, name: str, scale: int | None = None) -> np.ndarray:
        col = self._col(name)
        if col.numeric:
            self.check([name])
        with self._run() as r:
            if not col.numeric:
                self._present(r, [name])
                arr = r.sql(
                    f"SELECT CAST({_ident(name)} AS STRING) AS v FROM {self._rows(ordered=True)}"
                )
                if arr.column("v").null_count:
                    self._raise_offender(r, [name])
                return np.asarray(arr.column("v").to_pylist(), dtype=object)
            arr = r.sql(f"SELECT {self._num(name)} AS v FROM {self._rows(ordered=True)}").column(
                "v"
            )
        values = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
        return _column_values(self, col, values, scale)

    def _scaled_sql(self, s: _Scaled) -> str:
        """rint(value * 10^d) as BIGINT (``bround`` rounds half to even, as numpy does).

        Clamped to the bounds first, always: with ``clamp`` unset an out-of-bounds row is
        reported by the check column, and clamping here keeps its arithmetic in range.
        """
        col = s.column
        v = f"least(greatest({self._num(col.name)}, {_dbl(col.lower)}), {_dbl(col.upper)})"
        return f"CAST(bround({v} * {_dbl(s.factor)}, 0) AS BIGINT)"

    def _terms(self, x: str, s: _Scaled, square: bool, bits: int) -> list[tuple[int, str]]:
        w, _ = _limbs(s.bound, bits, square)

        def limb(i: int) -> str:
            return f"(shiftright(abs({x}), {w * i}) & {(1 << w) - 1})"

        out = []
        for weight, limbs in _sum_terms(s.bound, bits, square):
            if not limbs:
                term = f"{x} * {x}" if square else x
            elif len(limbs) == 1:
                a = limb(limbs[0])
                term = f"CASE WHEN {x} < 0 THEN -{a} ELSE {a} END"
            else:
                term = f"{limb(limbs[0])} * {limb(limbs[1])}"
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
        checked += [b.name for b in by_cols if not b.numeric]  # a group key must not be null
        with self._run() as r:
            res, recipe = self._pushdown(r, by_cols, scaled, checked, measures, where)
            total = int(pc.sum(res.column("count_all")).as_py() or 0)
            if total >= 1 << self.row_bits:  # limbs sized for fewer rows: again, for these
                bits = total.bit_length() + 1
                res, recipe = self._pushdown(r, by_cols, scaled, checked, measures, where, bits)
                if int(pc.sum(res.column("count_all")).as_py() or 0) >= 1 << bits:
                    raise SourceFailed(f"{self.label}: the rows changed during aggregation")
        return _finish(res, by_cols, recipe)

    def _pushdown(
        self,
        r: _Run,
        by_cols: list[Column],
        scaled: dict[str, _Scaled],
        checked: list[str],
        measures: Sequence[Measure],
        where: Sequence[Where],
        row_bits: int | None = None,
    ) -> tuple[Any, _Recipe]:
        """One GROUP BY statement: scaling, filtering, validation and exact limb sums."""
        bits = row_bits or self.row_bits
        inner = [
            f"{self._num(b.name) if b.numeric else f'CAST({_ident(b.name)} AS STRING)'} AS _k{i}"
            for i, b in enumerate(by_cols)
        ]
        inner += [f"{self._scaled_sql(s)} AS _x{i}" for i, s in enumerate(scaled.values())]
        inner += [f"{self._code(self._col(n))} AS _c{i}" for i, n in enumerate(checked)]
        cond, args = self._where(where)
        keys = [f"_k{i}" for i in range(len(by_cols))]
        outs = [*keys, "count(*) AS count_all"]
        outs += [f"count(_c{i}) AS _bad{i}" for i in range(len(checked))]
        recipe, xi = _Recipe(), {n: i for i, n in enumerate(scaled)}
        for m in measures:
            if m.func == "count" or m.column is None:
                recipe.add(m, [])
                continue
            x = f"_x{xi[m.column]}"
            if m.func in ("min", "max"):
                outs.append(f"{m.func}({x}) AS _a{len(outs)}")
                recipe.add(m, [(1, f"_a{len(outs) - 1}")])
                continue
            parts = []
            for weight, term in self._terms(x, scaled[m.column], m.func == "sumsq", bits):
                outs.append(f"sum({term}) AS _a{len(outs)}")
                parts.append((weight, f"_a{len(outs) - 1}"))
            recipe.add(m, parts)
        stmt = (
            f"SELECT {', '.join(outs)} FROM (SELECT {', '.join(inner) or '1 AS _one'} "
            f"FROM {self._rows(cond)}) AS s"
        )
        if keys:
            stmt += f" GROUP BY {', '.join(keys)}"
        res = r.sql(stmt, args)
        bad = [n for i, n in enumerate(checked) if pc.sum(res.column(f"_bad{i}")).as_py()]
        if bad:
            self._raise_offender(r, bad)
        for i, b in enumerate(by_cols):
            if b.type == "int":
                arr = res.column(f"_k{i}")
                res = res.set_column(i, f"_k{i}", pc.cast(arr, pa.int64()))
        return res, recipe

    def _where(self, where: Sequence[Where]) -> tuple[str, dict[str, Any]]:
        terms, args = [], {}
        for i, w in enumerate(where):
            op = "=" if w.op == "==" else w.op
            if self._col(w.column).numeric:
                terms.append(f"{self._num(w.column)} {op} {_dbl(float(w.value))}")
            else:
                args[f"w{i}"] = str(w.value)
                terms.append(f"CAST({_ident(w.column)} AS STRING) {op} :w{i}")
        return " AND ".join(terms), args


def _grpc_code(exc: BaseException) -> str | None:
    """The gRPC status name of a Spark Connect error (UNAVAILABLE for an unreachable server)."""
    getter = getattr(exc, "getGrpcStatusCode", None)
    code = getter() if callable(getter) else None
    if code is not None and code.name != "UNKNOWN":
        return str(code.name)
    found = re.search(r"StatusCode\.([A-Z_]+)", str(exc))
    return found.group(1) if found else None


__all__ = ["SparkSource", "describe_url", "is_spark_url", "stop_sessions"]
