"""A file source's pre-aggregation split over the k parallel sessions of one job at a node.

Why: in a partitioned job (``protocols.partitions``) each of an owner's k sessions needs
the pre-aggregation of its own key partition. Reading the whole file once and splitting
the result costs one session the whole aggregation (at a million keys, about 2 s of
hash grouping and sorting) while the others wait; reading it in every session costs the
read k times. Here the work itself is split, as a map and a reduce over the sessions at
one node:

1. session s reads only its row slice s of k (:func:`csv_slice`: a byte range of the file
   cut at line ends, the header line put in front; Parquet: its share of the row groups),
   applies the job's row filter, checks and scales its rows;
2. it computes each row's partition from the row's key (the partition function, a PRF
   under the job's partition key, runs once per distinct key of the slice) and hands the
   rows of partition t to session t (:attr:`RowSplit.exchange`, node-local pipes);
3. it groups the rows it received — those of its own partition, from every slice, in
   slice order — with the source's own exact aggregation.

A key's rows all reach one session, so each session's groups are exactly the groups of
the whole file whose key falls in its partition, with the same counts and sums
(``tests/unit/ensnif_mpc/data/test_split.py`` checks it against pandas). Nothing leaves
the node: the rows move between processes of the same owner. Each session's CPU for the
pre-aggregation is about 1/k of the whole (plus the routing).

Where the split is not sound, the source is read whole by session 0 (the caller's
fallback; :func:`splittable`): a CSV with a quote character (a quoted field may hold a
line break, so a byte offset cannot be known to start a record), contribution bounding
(``rows_per_person`` keeps a person's first rows in file order across the whole file),
and every non-file source (SQL and Spark push the aggregation down to their engine).

Errors: a slice whose rows fail a check does not report its own line numbers (they are
relative to the slice): that session re-runs the check over the whole file, which names
the first offending row of the file, and every session raises the same error (the one
of the lowest session that found one), so the job fails with the same reason and
message as an unpartitioned one.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class RowSplit:
    """This session's part of a split read: slice ``index`` of ``count``.

    ``column``: the partition column (the job's key). ``assign``: the partition of each of
    an Arrow array of distinct key values (int64 or string). ``exchange``: hands
    item t of a list of ``count`` items to session t and returns the item every session
    handed to this one, in session order (this session's own included)."""

    index: int
    count: int
    column: str
    assign: Callable[[Any], np.ndarray]
    exchange: Callable[[list[Any]], list[Any]]


def splittable(kind: str, path: str, bounded: bool) -> bool:
    """True when a source can be read as row slices (see the module docstring)."""
    if bounded or kind not in ("csv", "parquet"):
        return False
    if kind == "parquet":
        return True
    try:
        with open(path, "rb") as f:
            if Path(path).stat().st_size == 0:
                return False
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                return m.find(b'"') < 0
    except OSError:
        return False  # the whole read then reports the error as for an unpartitioned job


def csv_slice(path: str, index: int, count: int) -> bytes:
    """Row slice ``index`` of ``count`` of a CSV without quote characters: the header line,
    then the lines from the first line start at or after byte (index/count) of the data to
    the first line start at or after byte ((index + 1)/count); the slices cover every line
    once. Each slice reads only its own bytes (and the header)."""
    with open(path, "rb") as f:
        header = f.readline()
        begin, size = len(header), f.seek(0, 2)

        def line_start(offset: int) -> int:
            if offset <= begin:
                return begin
            if offset >= size:
                return size
            f.seek(offset - 1)  # the line that holds byte offset - 1 ends the slice before
            f.readline()
            return f.tell()

        data = size - begin
        lo = line_start(begin + data * index // count)
        hi = line_start(begin + data * (index + 1) // count)
        f.seek(lo)
        body = f.read(hi - lo)
    if not header.endswith(b"\n"):  # a file that is one header line without an end
        header += b"\n"
    return header + body


def parquet_slice(path: str, names: Sequence[str], index: int, count: int) -> Any:
    """Row slice ``index`` of ``count`` of a Parquet file's columns: a share of its row
    groups, or of its rows when it has fewer row groups than sessions."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    groups = f.metadata.num_row_groups
    if groups >= count:
        chosen = range(groups * index // count, groups * (index + 1) // count)
        return f.read_row_groups(list(chosen), columns=list(names))
    table = f.read(columns=list(names))
    n = table.num_rows
    lo, hi = n * index // count, n * (index + 1) // count
    return table.slice(lo, hi - lo)


def route(split: RowSplit, keys: list[Any], xs: dict[str, np.ndarray]) -> tuple[list[Any], int]:
    """Step 2 and the gather of step 3: this slice's rows (key columns ``keys`` as Arrow
    arrays, the first the partition column; scaled measure columns ``xs``) sent to their
    partitions' sessions; returns the key columns and measure columns of this session's
    partition (concatenated in slice order) and its row count, as ``[keys, xs]``."""
    keys = [k.combine_chunks() if isinstance(k, pa.ChunkedArray) else k for k in keys]
    part = partition_of(split, keys[0])
    frames = []
    for t in range(split.count):
        rows = np.flatnonzero(part == t)
        frames.append(
            (
                [pc.take(k, pa.array(rows)) for k in keys],
                {n: x[rows] for n, x in xs.items()},
            )
        )
    received = split.exchange(frames)
    errors = [r for r in received if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    key_cols = [
        pa.chunked_array([r[0][i] for r in received], type=k.type) for i, k in enumerate(keys)
    ]
    measure_cols = {n: np.concatenate([r[1][n] for r in received]) for n in xs}
    return [key_cols, measure_cols], sum(len(r[0][0]) for r in received)


def fail(split: RowSplit, error: BaseException) -> BaseException:
    """This session's check failed: it takes part in the exchange with the error in place
    of rows (so no session waits for it) and returns the error to raise, the lowest
    session's of those that failed."""
    received = split.exchange([error] * split.count)
    errors = [r for r in received if isinstance(r, BaseException)]
    return errors[0] if errors else error


def partition_of(split: RowSplit, column: Any) -> np.ndarray:
    """Each row's partition: the partition function once per distinct key, then spread to
    the rows through the dictionary encoding."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries().combine_chunks()
    parts = np.asarray(split.assign(encoded.dictionary), dtype=np.int64)
    indices = pc.fill_null(encoded.indices, 0).to_numpy(zero_copy_only=False)
    out: np.ndarray = parts[indices]
    return out
