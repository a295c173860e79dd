"""Files as a data owner's source: CSV and Parquet read through Arrow.

The semantics (checks, pre-aggregation, exact sums, errors that name a row and a column
but never a value) are those of :mod:`ensnif_mpc.data.sources`; split from it so that
each backend (files here, SQL in ``sql_source``, Spark in ``spark_source``) is one module.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ensnif_mpc.data.bounding import keep_first
from ensnif_mpc.data.schema import Column
from ensnif_mpc.data.sources import (
    Aggregate,
    Measure,
    Source,
    Where,
    _column_values,
    _group_arrays,
    _scale_values,
)
from ensnif_mpc.data.split import RowSplit, csv_slice, fail, parquet_slice, route
from ensnif_mpc.errors import DataError, EnsnifError, SourceFailed


def _first_failing_cast(arr: Any, to: Any) -> int | None:
    """Index of the first element of a string array Arrow cannot cast (bisection, vectorized)."""
    arr = pc.utf8_trim_whitespace(arr)
    lo, hi = 0, len(arr)
    try:
        pc.cast(arr, to)
        return None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            pc.cast(arr.slice(lo, mid - lo), to)
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
    return lo


class FileSource(Source):
    """CSV (``pyarrow.csv``) or Parquet (``pyarrow.parquet``); every call reads the file afresh.

    ``split``: set by a partitioned job's session (``ensnif_mpc.data.split``): then
    :meth:`aggregate` reads only this session's row slice and returns the groups of its
    key partition; the whole-column reads refuse (they do not split)."""

    split: RowSplit | None = None

    @property
    def _path(self) -> Path:
        return Path(self.spec.path)

    def _unreadable(self, exc: OSError) -> SourceFailed:
        return SourceFailed(f"{self.label}: cannot read the file ({exc.strerror or exc})")

    def header(self) -> list[str]:
        try:
            if self.spec.kind == "csv":
                with self._path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
                    return next(csv.reader(f), [])
            import pyarrow.parquet as pq

            return list(pq.read_schema(self._path).names)
        except OSError as exc:
            raise self._unreadable(exc) from exc
        except pa.ArrowException as exc:
            raise SourceFailed(
                f"{self.label}: not a readable Parquet file ({type(exc).__name__})"
            ) from exc

    def _present(self, names: Sequence[str]) -> list[str]:
        header = self.header()
        for n in names:
            if n not in header:
                # Never the header itself: a file without its header line has a data row there.
                raise DataError(f"{self.label}: no column {n!r} in the header line")
        return header

    def row_count(self) -> int:
        if self.spec.kind == "parquet":
            import pyarrow.parquet as pq

            self.header()  # the same errors as every other call for a missing file
            return int(pq.ParquetFile(self._path).metadata.num_rows)
        header = self.header()
        if not header:
            return 0
        return int(self._read([header[0]], {header[0]: pa.string()}).num_rows)

    # -- reading

    def _where_row(self, index: int) -> str:
        """'line N' (CSV: 1-based, the header is line 1) or 'row N' (Parquet) of a data row."""
        if self.spec.kind != "csv":
            return f"row {index + 1}"
        line = self._csv_lines(lambda k, rec, width: k == index)
        return f"line {line}" if line else f"row {index + 1}"

    def _csv_lines(self, stop: Callable[[int, list[str], int], bool]) -> int | None:
        """Scan the CSV as Arrow reads it (blank lines skipped) to the first data record
        for which ``stop(k, record, width)`` holds; its first line number."""
        with self._path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
            reader = csv.reader(f)
            width = len(next(reader, []))
            k, start = 0, reader.line_num + 1
            for rec in reader:
                blank = not rec or (width > 1 and len(rec) == 1 and not rec[0].strip())
                if not blank:
                    if stop(k, rec, width):
                        return start
                    k += 1
                start = reader.line_num + 1
        return None

    def _read(
        self, names: Sequence[str], types: dict[str, Any], part: tuple[int, int] | None = None
    ) -> Any:
        """An Arrow table of ``names`` with the given types; errors name line and column.
        ``part`` = (s, k): only row slice s of k (its errors' rows are the slice's: the
        caller re-reads the whole file to name them)."""
        bad_rows: list[int] = []
        try:
            if self.spec.kind == "parquet":
                import pyarrow.parquet as pq

                if part is not None:
                    table = parquet_slice(self.spec.path, names, *part)
                else:
                    table = pq.read_table(self._path, columns=list(names))
                return self._cast(table, types)
            import pyarrow.csv as pcsv

            def invalid(row: Any) -> str:
                if not row.text.strip():
                    return "skip"  # a whitespace-only line counts as blank, as a blank line does
                bad_rows.append(row.actual_columns)
                return "error"

            return pcsv.read_csv(
                self._path if part is None else pa.BufferReader(csv_slice(self.spec.path, *part)),
                parse_options=pcsv.ParseOptions(invalid_row_handler=invalid),
                convert_options=pcsv.ConvertOptions(
                    include_columns=list(names), column_types=types
                ),
            )
        except OSError as exc:
            raise self._unreadable(exc) from exc
        except pa.ArrowInvalid as exc:
            if self.spec.kind == "csv" and bad_rows:
                raise self._ragged() from exc
            if self.spec.kind == "csv" and any(t == pa.float64() for t in types.values()):
                raise self._not_a_number(names, types) from exc
            raise DataError(f"{self.label}: cannot read the file ({type(exc).__name__})") from exc
        except pa.ArrowException as exc:  # Arrow's text quotes the offending line: not shown
            raise DataError(f"{self.label}: cannot read the file ({type(exc).__name__})") from exc

    def _cast(self, table: Any, types: dict[str, Any]) -> Any:
        """Parquet columns to the declared types; a value that is not a number names its row."""
        for name, to in types.items():
            arr = table.column(name)
            if arr.type == to:
                continue
            try:
                arr = pc.cast(arr, to, safe=False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                strings = pc.cast(arr, pa.string()).combine_chunks()
                i = _first_failing_cast(strings, to)
                if i is None:
                    raise DataError(
                        f"{self.label}: column {name!r} of type {table.column(name).type} "
                        f"cannot be read as {to}"
                    ) from None
                raise DataError(
                    f"{self.label}: {self._where_row(i)}, column {name!r}: not a number"
                ) from None
            table = table.set_column(table.schema.get_field_index(name), name, arr)
        return table

    def _ragged(self) -> DataError:
        found: list[int] = []

        def ragged(k: int, rec: list[str], width: int) -> bool:
            if len(rec) == width:
                return False
            found[:] = [len(rec), width]
            return True

        line = self._csv_lines(ragged)
        if not found:
            return DataError(f"{self.label}: a line has the wrong number of fields")
        got, width = found
        if got < width:
            # Named only if declared: a file without its header line has a data row there.
            missing = self.header()[got]
            where = f", column {missing!r}" if any(c.name == missing for c in self.columns) else ""
            return DataError(
                f"{self.label}: line {line}{where}: missing "
                f"(the line has {got} fields, the header {width})"
            )
        return DataError(f"{self.label}: line {line} has {got} fields, the header {width}")

    def _not_a_number(self, names: Sequence[str], types: dict[str, Any]) -> DataError:
        """After a failed typed read: re-read the numeric columns as text, find the cell."""
        numeric = [n for n in names if types.get(n) == pa.float64()]
        table = self._read(numeric, dict.fromkeys(numeric, pa.string()))
        for n in numeric:
            i = _first_failing_cast(table.column(n).combine_chunks(), pa.float64())
            if i is not None:
                return DataError(f"{self.label}: {self._where_row(i)}, column {n!r}: not a number")
        return DataError(f"{self.label}: cannot read {', '.join(numeric)} as numbers")

    def _table(self, names: Sequence[str], part: tuple[int, int] | None = None) -> Any:
        """Declared columns with their types: numeric as float64 (checked later), strings."""
        names = list(dict.fromkeys(names))
        self._present(names)
        types = {n: pa.float64() if self._col(n).numeric else pa.string() for n in names}
        return self._read(names, types, part)

    # -- checking

    def _violation(self, arr: Any, col: Column) -> tuple[int, str] | None:
        """The first invalid value of a float64 column: (index, what is wrong), vectorized."""
        v = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
        bounds = not self.clamp
        if (
            arr.null_count == 0
            and v.size
            and np.isfinite(v).all()
            and (not bounds or (v.min() >= col.lower and v.max() <= col.upper))
            and (col.type != "int" or bool((v == np.rint(v)).all()))
        ):
            return None
        if not v.size:
            return None
        null = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        finite = np.isfinite(v)
        none = np.zeros(v.size, dtype=bool)
        outside = finite & ((v < col.lower) | (v > col.upper)) if bounds else none
        fraction = finite & (v != np.rint(v)) if col.type == "int" else none
        bad = null | ~finite | outside | fraction
        if not bad.any():
            return None
        i = int(np.argmax(bad))
        if null[i]:
            return i, "empty (null)"
        if not finite[i]:
            return i, "not a finite number"
        if outside[i]:
            return i, f"outside the declared bounds [{col.lower:g}, {col.upper:g}]"
        return i, "not an integer"

    def _validate(self, table: Any, names: Sequence[str]) -> None:
        for n in names:
            found = self._violation(table.column(n), self._col(n))
            if found is not None:
                i, what = found
                raise DataError(f"{self.label}: {self._where_row(i)}, column {n!r}: {what}")

    def check(self, names: Sequence[str]) -> int:
        self._present([c.name for c in self.columns])
        numeric = [n for n in dict.fromkeys(names) if self._col(n).numeric]
        if not numeric:
            return self.row_count()
        table = self._table(numeric)
        self._validate(table, numeric)
        return int(table.num_rows)

    def _whole(self) -> None:
        if self.split is not None:
            raise RuntimeError("a split read serves aggregate() only")

    def column(self, name: str, scale: int | None = None) -> np.ndarray:
        self._whole()
        col = self._col(name)
        table = keep_first(self._table([name, *self._person()]), self.bound, self.label)
        arr = table.column(name)
        if not col.numeric:
            if arr.null_count:
                i = int(np.argmax(arr.is_null().to_numpy(zero_copy_only=False)))
                raise DataError(f"{self.label}: {self._where_row(i)}, column {name!r}: empty")
            return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)
        self._validate(table, [name])
        return _column_values(self, col, arr.to_numpy(zero_copy_only=False), scale)

    def read_columns(self, names: Sequence[str], scale: int | None = None) -> list[np.ndarray]:
        """Numeric columns (a model's features) in one read of the file, not one per column:
        the same rows, checks and first offending row as :meth:`column` column by column."""
        self._whole()
        names = list(names)
        cols = [self._col(n) for n in names]
        if not all(c.numeric for c in cols):
            return super().read_columns(names, scale)
        table = keep_first(self._table([*names, *self._person()]), self.bound, self.label)
        self._validate(table, list(dict.fromkeys(names)))
        return [
            _column_values(self, c, table.column(c.name).to_numpy(zero_copy_only=False), scale)
            for c in cols
        ]

    def aggregate(
        self,
        by: Sequence[str],
        measures: Sequence[Measure],
        where: Sequence[Where] = (),
        scale: dict[str, int] | None = None,
    ) -> Aggregate:
        if self.split is not None:
            return self._split_aggregate(self.split, by, measures, where, scale)
        by_cols, scaled, checked = self._prepare(by, measures, where, scale)
        full = self._table([*by, *scaled, *(w.column for w in where), *self._person()])
        table = full
        if where:
            table = full.filter(_arrow_filter(where))
        table = keep_first(table, self.bound, self.label)
        for b in by_cols:
            if b.type == "string" and table.column(b.name).null_count:
                i = int(np.argmax(full.column(b.name).is_null().to_numpy(zero_copy_only=False)))
                raise DataError(f"{self.label}: {self._where_row(i)}, column {b.name!r}: empty")
        for n in checked:
            if self._violation(table.column(n), self._col(n)) is not None:
                self._validate(full, [n])  # names the first offending row of the whole file
        keys, xs = self._rows(table, by_cols, scaled)
        return _group_arrays(keys, xs, measures, by_cols, int(table.num_rows))

    def _rows(
        self, table: Any, by_cols: list[Column], scaled: dict[str, Any]
    ) -> tuple[list[Any], dict[str, tuple[Any, np.ndarray]]]:
        """The key columns (Arrow) and scaled measure columns of checked, filtered rows."""
        xs = {
            n: (s, _scale_values(s, table.column(n).to_numpy(zero_copy_only=False), self.clamp))
            for n, s in scaled.items()
        }
        keys = []
        for b in by_cols:
            arr = table.column(b.name)
            keys.append(pc.cast(arr, pa.int64()) if b.type == "int" else arr)
        return keys, xs

    def _split_aggregate(
        self,
        split: RowSplit,
        by: Sequence[str],
        measures: Sequence[Measure],
        where: Sequence[Where],
        scale: dict[str, int] | None,
    ) -> Aggregate:
        """:meth:`aggregate` of this session's key partition, from its row slice and the
        other sessions' rows of its partition (``ensnif_mpc.data.split``)."""
        if self.bound is not None or split.column not in by:
            raise RuntimeError("a split read needs the partition column and no row bound")
        by_cols, scaled, checked = self._prepare(by, measures, where, scale)
        try:
            part = (split.index, split.count)
            table = self._table([*by, *scaled, *(w.column for w in where)], part)
            if where:
                table = table.filter(_arrow_filter(where))
            bad = any(b.type == "string" and table.column(b.name).null_count for b in by_cols)
            if bad or any(self._violation(table.column(n), self._col(n)) for n in checked):
                raise DataError(f"{self.label}: a row fails its checks")  # named below
            keys, xs = self._rows(table, by_cols, scaled)
        except EnsnifError as exc:
            raise fail(split, self._canonical(exc, by, measures, where, scale)) from None
        first = by.index(split.column)  # the partition column leads the routed keys
        order = [first, *(i for i in range(len(by)) if i != first)]
        (routed, moved), n = route(
            split, [keys[i] for i in order], {m: x for m, (_, x) in xs.items()}
        )
        back = [routed[order.index(i)] for i in range(len(by))]
        return _group_arrays(
            back, {m: (s, moved[m]) for m, (s, _) in xs.items()}, measures, by_cols, n
        )

    def _canonical(
        self,
        exc: EnsnifError,
        by: Sequence[str],
        measures: Sequence[Measure],
        where: Sequence[Where],
        scale: dict[str, int] | None,
    ) -> EnsnifError:
        """The error an unsplit read gives (it names the file's first offending row)."""
        split, self.split = self.split, None
        try:
            self.aggregate(by, measures, where, scale)
        except EnsnifError as whole:
            return whole
        finally:
            self.split = split
        return exc


def _arrow_filter(where: Sequence[Where]) -> Any:
    ops: dict[str, Callable[[Any, Any], Any]] = {
        ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        "<": lambda a, b: a < b,
        "==": lambda a, b: a == b,
    }
    expr = None
    for w in where:
        term = ops[w.op](pc.field(w.column), w.value)
        expr = term if expr is None else expr & term
    return expr
