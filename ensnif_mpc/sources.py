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

Numeric measures are exact: values are scaled to integers by ``10**scale[column]``
(round half to even) before summing, and sums come back as Python ints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ensnif_mpc.schema import Column

SOURCE_KINDS = ("csv", "parquet", "sql")
MEASURE_FUNCS = ("count", "sum", "sumsq", "min", "max")
WHERE_OPS = (">=", "<=", ">", "<", "==")


@dataclass(frozen=True)
class SourceSpec:
    """Where a dataset's rows live. JSON-serializable: the node hands it to the job's worker."""

    kind: str  # csv | parquet | sql
    path: str = ""  # csv, parquet: absolute file path
    url: str = ""  # sql: SQLAlchemy URL of the owner's database
    query: str = ""  # sql: a SELECT whose result columns are the dataset's columns
    timeout_s: float = 60.0  # sql: statement timeout; files: ignored

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> SourceSpec:
        return SourceSpec(**raw)

    def describe(self) -> str:
        """For messages: never includes credentials from a URL."""
        if self.kind == "sql":
            from sqlalchemy.engine import make_url

            return f"sql source {make_url(self.url).render_as_string(hide_password=True)}"
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
    op: str  # >= <= > < ==
    value: float | int | str


@dataclass(frozen=True)
class Aggregate:
    """The result of a local pre-aggregation, one entry per group (one entry when ``by`` is empty).

    ``keys[c]`` holds the group values of by-column ``c`` (int64 for int columns,
    object array of str for string columns); ``values[m.name]`` the measure per group
    (object array of Python ints for sum/sumsq/min/max on the scaled integers,
    int64 for count). Groups are sorted by their keys. ``rows`` counts the rows that
    passed ``where``.
    """

    keys: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    rows: int
    groups: int = field(default=0)


__all__ = ["SOURCE_KINDS", "Aggregate", "Column", "Measure", "SourceSpec", "Where"]
