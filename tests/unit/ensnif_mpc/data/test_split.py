"""A file source's split pre-aggregation (ensnif_mpc.data.split) against pandas and the
unsplit read: k sessions, each reading one row slice, give exactly the groups of their key
partitions, and a bad row fails every session with the unsplit read's error."""

from __future__ import annotations

import hashlib
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ensnif_mpc.data.schema import Column
from ensnif_mpc.data.sources import Measure, SourceSpec, Where, open_source
from ensnif_mpc.data.split import RowSplit, csv_slice, splittable
from ensnif_mpc.errors import DataError

COLUMNS = (
    Column("customer", "string"),
    Column("zone", "int", 0, 9),
    Column("basket_total", "float", 0, 500, 2),
)
MEASURES = [
    Measure("count"),
    Measure("sum", "basket_total"),
    Measure("sumsq", "basket_total"),
    Measure("min", "basket_total"),
    Measure("max", "basket_total"),
]


def _orders(rows: int, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer": [f"C{i:06d}" for i in rng.integers(0, rows // 3 + 1, rows)],
            "zone": rng.integers(0, 10, rows),
            "basket_total": rng.integers(0, 50_001, rows) / 100,
        }
    )


def _write(kind: str, tmp_path: Any, df: pd.DataFrame, row_group: int = 0) -> str:
    if kind == "csv":
        path = tmp_path / "orders.csv"
        df.to_csv(path, index=False, lineterminator="\r\n")
    else:
        path = tmp_path / "orders.parquet"
        pq.write_table(pa.Table.from_pandas(df), path, row_group_size=row_group or None)
    return str(path)


def _partition(values: np.ndarray, count: int) -> np.ndarray:
    """A keyed hash of each key (the tests' stand-in for the job's PRF: any function of
    the key value alone partitions soundly)."""
    values = values.to_pylist() if isinstance(values, pa.Array) else list(values)
    return np.array(
        [
            int.from_bytes(hashlib.sha256(b"k" + str(v).encode()).digest()[:8], "little") % count
            for v in values
        ],
        dtype=np.int64,
    )


def _sessions(count: int) -> list[RowSplit]:
    """k splits whose exchange is a barrier over in-process queues (one per session)."""
    boxes = [[queue.Queue[Any]() for _ in range(count)] for _ in range(count)]

    def exchange_of(me: int) -> Any:
        def exchange(items: list[Any]) -> list[Any]:
            for t, item in enumerate(items):
                boxes[me][t].put(item)
            return [boxes[s][me].get(timeout=60) for s in range(count)]

        return exchange

    return [
        RowSplit(s, count, "customer", lambda v: _partition(v, count), exchange_of(s))
        for s in range(count)
    ]


def _run_split(path: str, kind: str, count: int, by: list[str], where: list[Where]) -> list[Any]:
    def one(split: RowSplit) -> Any:
        src = open_source(SourceSpec(kind=kind, path=path), COLUMNS)
        src.split = split  # type: ignore[attr-defined]
        try:
            return src.aggregate(by, MEASURES, where)
        except DataError as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, _sessions(count)))


def _frame(agg: Any, by: list[str]) -> pd.DataFrame:
    cols = {b: agg.keys[b] for b in by} | {m: list(v) for m, v in agg.values.items()}
    return pd.DataFrame(cols).sort_values(by).reset_index(drop=True)


@pytest.mark.parametrize(
    ("kind", "count", "row_group"),
    [
        ("csv", 1, 0),
        ("csv", 2, 0),
        ("csv", 3, 0),
        ("parquet", 4, 0),
        ("parquet", 3, 500),
    ],
)
@pytest.mark.parametrize("by", [["customer"], ["zone", "customer"]])
def test_split_partitions_equal_the_whole_files_groups(tmp_path, kind, count, row_group, by):
    df = _orders(3001)
    path = _write(kind, tmp_path, df, row_group)
    where = [Where("basket_total", ">=", 20.0)]
    parts = _run_split(path, kind, count, by, where)
    whole = open_source(SourceSpec(kind=kind, path=path), COLUMNS).aggregate(by, MEASURES, where)
    got = pd.concat([_frame(a, by) for a in parts]).sort_values(by).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, _frame(whole, by))
    # and each session holds exactly the keys of its partition
    for s, agg in enumerate(parts):
        assert (_partition(agg.keys["customer"], count) == s).all()
    kept = df[df.basket_total >= 20.0]
    ref = kept.groupby(by).agg(n=("basket_total", "size"), cents=("basket_total", "sum"))
    assert got["count"].sum() == ref["n"].sum() == sum(a.rows for a in parts)
    assert sum(got["sum:basket_total"]) == round(ref["cents"].sum() * 100)


def test_csv_slices_cover_every_line_once(tmp_path):
    df = _orders(997)
    path = _write("csv", tmp_path, df)
    with open(path, "rb") as f:
        header = f.readline()
        whole = header + f.read()
    for count in (1, 2, 5, 16):
        bodies = [csv_slice(path, s, count) for s in range(count)]
        assert all(b.startswith(header) for b in bodies)
        assert b"".join(b[len(header) :] for b in bodies) == whole[len(header) :]


def test_a_bad_row_fails_every_session_with_the_whole_files_error(tmp_path):
    df = _orders(2000)
    df.loc[1700, "basket_total"] = 900.0  # outside [0, 500], in the last slice
    path = _write("csv", tmp_path, df)
    with pytest.raises(DataError) as whole:
        open_source(SourceSpec(kind="csv", path=path), COLUMNS).aggregate(["customer"], MEASURES)
    got = _run_split(path, "csv", 3, ["customer"], [])
    assert all(isinstance(g, DataError) for g in got)
    assert {str(g) for g in got} == {str(whole.value)}
    assert "line 1702" in str(whole.value)


def test_quoted_csv_and_bounded_sources_are_read_whole(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("customer,zone\nC1,2\n")
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('customer,zone\n"C\n1",2\n')
    assert splittable("csv", str(plain), bounded=False)
    assert not splittable("csv", str(quoted), bounded=False)
    assert not splittable("csv", str(plain), bounded=True)
    assert not splittable("sql", "", bounded=False)
    assert not splittable("csv", str(tmp_path / "missing.csv"), bounded=False)


def test_a_split_source_refuses_whole_column_reads(tmp_path):
    path = _write("csv", tmp_path, _orders(30))
    src = open_source(SourceSpec(kind="csv", path=path), COLUMNS)
    src.split = _sessions(1)[0]  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        src.column("zone")


def test_sessions_never_wait_for_a_failed_one(tmp_path):
    """A session whose slice fails still takes part in the exchange: the others end."""
    df = _orders(900)
    df.loc[10, "basket_total"] = -1.0  # in the first slice only
    path = _write("csv", tmp_path, df)
    done = threading.Event()
    got: list[Any] = []

    def run() -> None:
        got.extend(_run_split(path, "csv", 4, ["customer"], []))
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(60)
    assert len(got) == 4 and all(isinstance(g, DataError) for g in got)
