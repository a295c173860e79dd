"""Data owners' sources: CSV, Parquet, or a SQL query, read only by the owner's own processes.

Protocols never read rows. They ask a source for a local pre-aggregation —
``aggregate(by, measures, where)`` — which a SQL source runs in the owner's own
database (push-down: GROUP BY there, only the small result crosses into Python)
and a file source runs with Arrow's vectorized kernels. What reaches MPC is one
row per group, not per record.

Every numeric value is checked against its declared bounds (a violation is a
:class:`DataError` naming the row and column) unless the dataset declares
``clamp``, in which case it is clamped to the bounds: bounds fix secure-type
sizes and DP sensitivity, so an unchecked value would silently corrupt answers.
Nulls, non-numbers and non-finite values are errors either way. Messages name
the dataset, the file or database (never a password), the row and the column —
never the offending value, which is a piece of a row.

Numeric measures are exact: values are scaled to integers by ``10**scale[column]``
(round half to even) before summing, and sums come back as Python ints. Sums are
taken in 64-bit integers only where no overflow is possible: each scaled value
is split into limbs small enough that the sum of every limb (or limb product, for
sumsq) over all rows fits, and the limb sums are recombined in Python ints. A SQL
source runs those limb sums in the database.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ensnif_mpc.data.bounding import Bound
from ensnif_mpc.data.schema import Column
from ensnif_mpc.errors import DataError, InvalidArgument, UnknownColumn

log = logging.getLogger(__name__)

SOURCE_KINDS = ("csv", "parquet", "sql", "spark")
MEASURE_FUNCS = ("count", "sum", "sumsq", "min", "max")
WHERE_OPS = (">=", "<=", ">", "<", "==")
EXACT = 2**53  # scaled bounds must stay below this: every value is an exact float64 integer


@dataclass(frozen=True)
class SourceSpec:
    """Where a dataset's rows live. JSON-serializable: the node hands it to the job's worker."""

    kind: str  # csv | parquet | sql | spark
    path: str = ""  # csv, parquet: absolute file path
    url: str = ""  # sql: SQLAlchemy URL of the owner's database; spark: local[N] or sc://host:port
    query: str = ""  # sql, spark: a SELECT whose result columns are the dataset's columns
    timeout_s: float = 20.0  # sql, spark: statement timeout (below the 30 s propose timeout)
    table: str = ""  # sql, spark: a table (or view) name, instead of query; may be schema.table

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> SourceSpec:
        return SourceSpec(**raw)

    def describe(self) -> str:
        """For messages: never includes credentials from a URL."""
        if self.kind == "sql":
            from sqlalchemy.engine import make_url

            try:
                shown = make_url(self.url).render_as_string(hide_password=True)
            except Exception:  # an unparsable URL may still hold a password: show none of it
                shown = "(unparsable url)"
            return f"sql source {shown}"
        if self.kind == "spark":
            from ensnif_mpc.data.spark_source import describe_url

            return f"spark source {describe_url(self.url)}"
        return f"{self.kind} file {self.path}"


@dataclass(frozen=True)
class Measure:
    func: str  # count | sum | sumsq | min | max
    column: str | None = None  # None only for count

    @property
    def name(self) -> str:
        return self.func if self.column is None else f"{self.func}:{self.column}"


@dataclass(frozen=True)
class Where:
    """A row filter on a column's value as declared (unscaled), evaluated by the owner."""

    column: str
    op: str  # >= <= > < ==  (string columns: == only)
    value: float | int | str


@dataclass(frozen=True)
class Aggregate:
    """The result of a local pre-aggregation, one entry per group (one entry when ``by`` is empty).

    ``keys[c]`` holds the group values of by-column ``c`` (int64 for int columns,
    float64 for float columns, object array of str for string columns);
    ``values[m.name]`` the measure per group (object array of Python ints for
    sum/sumsq/min/max on the scaled integers, int64 for count). Groups are sorted by
    their keys. ``rows`` counts the rows that passed ``where``.

    With no ``by`` and no row passing ``where`` there is still one group: count 0,
    sum and sumsq 0, min and max ``None``. With ``by`` there are then zero groups.
    """

    keys: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    rows: int
    groups: int = field(default=0)


# -- scaling and exact sums, shared by both backends -------------------------------------


@dataclass(frozen=True)
class _Scaled:
    """A numeric column on an integer scale: x = rint(value * 10**decimals), within [lo, hi]."""

    column: Column
    decimals: int

    @property
    def factor(self) -> float:
        return float(10**self.decimals)

    @property
    def lo(self) -> int:
        return int(np.rint(self.column.lower * self.factor))

    @property
    def hi(self) -> int:
        return int(np.rint(self.column.upper * self.factor))

    @property
    def bound(self) -> int:
        return max(abs(self.lo), abs(self.hi))


def _limbs(bound: int, row_bits: int, square: bool) -> tuple[int, int]:
    """``(w, n)``: split |x| <= bound into n limbs of w bits so that every per-row term
    (a limb for sum, a product of two limbs for sumsq) summed over fewer than
    ``2**row_bits`` rows stays below 2**63."""
    w = (63 - row_bits) // 2 if square else 63 - row_bits
    if w < 1:
        raise DataError(f"too many rows ({row_bits}-bit count) for exact 64-bit partial sums")
    return w, max(1, -(-bound.bit_length() // w))


def _sum_terms(bound: int, row_bits: int, square: bool) -> list[tuple[int, tuple[int, ...]]]:
    """Recipe for an exact sum (or sum of squares): ``[(weight, limbs)]`` with
    result = sum(weight * sum over rows of term), where the term is ``x`` (or ``x*x``)
    for ``limbs == ()``, the signed limb ``sign(x) * a_i`` for ``(i,)`` and the limb
    product ``a_i * a_j`` for ``(i, j)``; ``a_i`` is the i-th w-bit limb of |x|."""
    w, n = _limbs(bound, row_bits, square)
    if n == 1:
        return [(1, ())]
    if not square:
        return [(1 << (w * i), (i,)) for i in range(n)]
    return [((1 if i == j else 2) << (w * (i + j)), (i, j)) for i in range(n) for j in range(i, n)]


def _np_terms(x: np.ndarray, bound: int, row_bits: int, square: bool) -> list[np.ndarray]:
    w, _ = _limbs(bound, row_bits, square)
    mask = (1 << w) - 1
    ax, out = np.abs(x), []
    for _, limbs in _sum_terms(bound, row_bits, square):
        if not limbs:
            out.append(x * x if square else x)
        elif len(limbs) == 1:
            out.append(np.sign(x) * ((ax >> (w * limbs[0])) & mask))
        else:
            i, j = limbs
            out.append(((ax >> (w * i)) & mask) * ((ax >> (w * j)) & mask))
    return out


def _objects(arr: Any, fill: int | None) -> np.ndarray:
    """An Arrow integer column as an object array of Python ints (nulls -> ``fill``)."""
    values = arr.to_pylist()
    out = np.empty(len(values), dtype=object)
    out[:] = [fill if v is None else int(v) for v in values]
    return out


@dataclass
class _Recipe:
    """How measures map to internal aggregate columns, so both backends share :func:`_finish`."""

    items: list[tuple[str, str, list[tuple[int, str]]]] = field(default_factory=list)

    def add(self, measure: Measure, parts: list[tuple[int, str]]) -> None:
        self.items.append((measure.name, measure.func, parts))


def _finish(res: Any, by: list[Column], recipe: _Recipe) -> Aggregate:
    """Aggregate from an Arrow table with ``_k{i}`` key columns and internal aggregate columns."""
    if by:
        res = res.sort_by([(f"_k{i}", "ascending") for i in range(len(by))])
    keys: dict[str, np.ndarray] = {}
    for i, c in enumerate(by):
        arr = res.column(f"_k{i}")
        if c.type == "string":
            keys[c.name] = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)
        else:
            kind = np.int64 if c.type == "int" else np.float64
            keys[c.name] = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=kind)
    counts = np.asarray(res.column("count_all").to_numpy(zero_copy_only=False), dtype=np.int64)
    values: dict[str, np.ndarray] = {}
    for name, func, parts in recipe.items:
        if func == "count":
            values[name] = counts.copy()
        elif func in ("sum", "sumsq"):
            total = np.zeros(len(counts), dtype=object)
            total[:] = 0
            for weight, col in parts:
                total = total + _objects(res.column(col), 0) * weight
            values[name] = total
        else:
            values[name] = _objects(res.column(parts[0][1]), None)
    return Aggregate(keys, values, int(counts.sum()), len(counts))


def _group_arrays(
    keys: list[Any],
    xs: dict[str, tuple[_Scaled, np.ndarray]],
    measures: Sequence[Measure],
    by: list[Column],
    n: int,
) -> Aggregate:
    """Exact grouped aggregation of scaled int64 arrays with Arrow's hash aggregation."""
    row_bits = max(1, n.bit_length())
    cols: dict[str, Any] = {f"_k{i}": k for i, k in enumerate(keys)}
    aggs: list[tuple[Any, str]] = [([], "count_all")]
    recipe = _Recipe()
    for m in measures:
        if m.func == "count" or m.column is None:
            recipe.add(m, [])
            continue
        s, x = xs[m.column]
        if m.func in ("min", "max"):
            name = f"_x{len(cols)}"
            cols[name] = pa.array(x, pa.int64())
            aggs.append((name, m.func))
            recipe.add(m, [(1, f"{name}_{m.func}")])
            continue
        square = m.func == "sumsq"
        parts = []
        weights = [w for w, _ in _sum_terms(s.bound, row_bits, square)]
        for weight, term in zip(weights, _np_terms(x, s.bound, row_bits, square), strict=True):
            name = f"_t{len(cols)}"
            cols[name] = pa.array(term, pa.int64())
            aggs.append((name, "sum"))
            parts.append((weight, f"{name}_sum"))
        recipe.add(m, parts)
    table = pa.table(cols) if cols else pa.table({"_n": pa.nulls(n)})
    res = table.group_by([f"_k{i}" for i in range(len(by))]).aggregate(aggs)
    return _finish(res, by, recipe)


def _scale_values(s: _Scaled, v: np.ndarray, clamp: bool) -> np.ndarray:
    """Checked float64 values -> int64 on the scale (clamped first when the dataset clamps)."""
    if clamp:
        v = np.clip(v, s.column.lower, s.column.upper)
    out: np.ndarray = np.rint(v * s.factor).astype(np.int64)
    return out


# -- the interface ------------------------------------------------------------------------


class Source(ABC):
    """A dataset's rows, read by the owner's own process only. Use :func:`open_source`."""

    def __init__(
        self, spec: SourceSpec, columns: tuple[Column, ...], clamp: bool = False, name: str = ""
    ) -> None:
        self.spec = spec
        self.columns = columns
        self.clamp = clamp
        self.name = name
        self.label = f"dataset {name!r} ({spec.describe()})" if name else spec.describe()
        # Contribution bounding (ensnif_mpc.data.bounding), set by a DP job's worker.
        self.bound: Bound | None = None

    def _person(self) -> list[str]:
        return [self.bound.person] if self.bound is not None else []

    @abstractmethod
    def header(self) -> list[str]:
        """Column names the source produces."""

    @abstractmethod
    def row_count(self) -> int:
        """Rows in the source (a file's data lines; a query's result rows)."""

    @abstractmethod
    def check(self, names: Sequence[str]) -> int:
        """Declared columns exist and every value of the named numeric columns is valid.

        Valid: non-null, a finite number, integral for int columns, within the declared
        bounds (unless the dataset clamps). Returns the row count; raises DataError
        naming the first offending row and its column.
        """

    @abstractmethod
    def aggregate(
        self,
        by: Sequence[str],
        measures: Sequence[Measure],
        where: Sequence[Where] = (),
        scale: dict[str, int] | None = None,
    ) -> Aggregate:
        """Local pre-aggregation: GROUP BY ``by`` over the rows passing every ``where``.

        Measure columns are scaled to integers by ``10**scale[column]`` (default: the
        declared decimals of a float column, 0 for an int column); ``where`` compares
        declared values. Every by and measure value of the selected rows is checked
        (rows filtered out by ``where`` are not).
        """

    @abstractmethod
    def column(self, name: str, scale: int | None = None) -> np.ndarray:
        """A whole checked column: int64 on the scale when given; else int64 for int
        columns, float64 for float columns, an object array of str for string columns."""

    def read_columns(self, names: Sequence[str], scale: int | None = None) -> list[np.ndarray]:
        """Several whole checked columns, as :meth:`column` gives each, from the same rows
        (a model's feature matrix). Sources that can read them in one pass override
        this; the default reads each on its own."""
        return [self.column(n, scale) for n in names]

    # -- request validation shared by both backends

    def _col(self, name: str) -> Column:
        col = next((c for c in self.columns if c.name == name), None)
        if col is None:
            where = f"dataset {self.name!r}" if self.name else self.spec.describe()
            raise UnknownColumn(f"{where} declares no column {name!r}")
        return col

    def _numeric(self, name: str, what: str) -> Column:
        col = self._col(name)
        if not col.numeric:
            raise InvalidArgument(f"{what}: column {name!r} is {col.type}, not numeric")
        return col

    def _scaled(self, col: Column, decimals: int | None) -> _Scaled:
        d = (col.decimals if col.type == "float" else 0) if decimals is None else decimals
        if not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= 15:
            raise InvalidArgument(f"scale of {col.name!r} must be an integer in 0..15, not {d!r}")
        s = _Scaled(col, d)
        if s.bound >= EXACT:
            raise DataError(
                f"{self.label}: column {col.name!r} at 10^{d} needs integers beyond 2^53; "
                "values would not be exact"
            )
        return s

    def _prepare(
        self,
        by: Sequence[str],
        measures: Sequence[Measure],
        where: Sequence[Where],
        scale: dict[str, int] | None,
    ) -> tuple[list[Column], dict[str, _Scaled], list[str]]:
        """(by columns, measure columns on their scale, columns to validate)."""
        by_cols = [self._col(b) for b in by]
        if len(set(by)) != len(by):
            raise InvalidArgument(f"group-by columns repeat: {', '.join(by)}")
        scaled: dict[str, _Scaled] = {}
        for m in measures:
            if m.func not in MEASURE_FUNCS:
                raise InvalidArgument(f"unknown measure {m.func!r} ({', '.join(MEASURE_FUNCS)})")
            if m.func == "count" or m.column is None:
                if m.column is not None:
                    self._col(m.column)  # count:col counts rows too: values are never null
                elif m.func != "count":
                    raise InvalidArgument(f"measure {m.func!r} needs a column")
                continue
            col = self._numeric(m.column, f"measure {m.name}")
            if col.name not in scaled:
                scaled[col.name] = self._scaled(col, (scale or {}).get(col.name))
        for w in where:
            col = self._col(w.column)
            if w.op not in WHERE_OPS:
                raise InvalidArgument(f"where on {w.column!r}: unknown operator {w.op!r}")
            if col.numeric and (isinstance(w.value, bool) or not isinstance(w.value, int | float)):
                raise InvalidArgument(f"where on {w.column!r}: compare with a number")
            if not col.numeric and (w.op != "==" or not isinstance(w.value, str)):
                raise InvalidArgument(f"where on string column {w.column!r}: only == a string")
        checked = [c.name for c in by_cols if c.numeric] + [n for n in scaled if n not in by]
        return by_cols, scaled, checked


def open_source(
    spec: SourceSpec, columns: tuple[Column, ...], clamp: bool = False, name: str = ""
) -> Source:
    """The source a spec describes; nothing is read until a method is called."""
    if spec.kind in ("csv", "parquet"):
        if not spec.path:
            raise InvalidArgument(f"{spec.kind} source needs a path")
        from ensnif_mpc.data.file_source import FileSource

        return FileSource(spec, columns, clamp, name)
    if spec.kind == "sql":
        if not spec.url or bool(spec.query) == bool(spec.table):
            raise InvalidArgument("sql source needs a url and either a query or a table")
        # Imported here: SQLAlchemy costs every worker ~0.5 s of start-up, and most
        # datasets are files.
        from ensnif_mpc.data.sql_source import SqlSource

        return SqlSource(spec, columns, clamp, name)
    if spec.kind == "spark":
        if not spec.url or bool(spec.query) == bool(spec.table):
            raise InvalidArgument("spark source needs a url and either a query or a table")
        # Imported here, and pyspark only when the source is first read.
        from ensnif_mpc.data.spark_source import SparkSource

        return SparkSource(spec, columns, clamp, name)
    raise InvalidArgument(f"unknown source kind {spec.kind!r} ({', '.join(SOURCE_KINDS)})")


def _column_values(src: Source, col: Column, v: Any, scale: int | None) -> np.ndarray:
    """Checked numeric values as the caller asked: scaled int64, int64 or float64."""
    values = np.asarray(v, dtype=np.float64)
    if scale is not None:
        return _scale_values(src._scaled(col, scale), values, src.clamp)
    if src.clamp:
        values = np.clip(values, col.lower, col.upper)
    return values.astype(np.int64) if col.type == "int" else values


__all__ = [
    "MEASURE_FUNCS",
    "SOURCE_KINDS",
    "WHERE_OPS",
    "Aggregate",
    "Column",
    "Measure",
    "Source",
    "SourceSpec",
    "Where",
    "open_source",
]
