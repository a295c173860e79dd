"""Local pre-aggregation speed of each source kind on generated data (prints rows/s).

    python bench/sources_bench.py [ROWS]        # default 1,000,000

Writes a CSV, a Parquet file and a SQLite database with the same rows in a temporary
directory, then times check() and aggregate() (GROUP BY store, count/sum/sumsq/min/max of a
2-decimal float, with a where filter) on each. Nothing is asserted: this is a measurement.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ensnif_mpc.data.schema import Column
from ensnif_mpc.data.sources import Measure, Source, SourceSpec, Where, open_source

COLUMNS = (
    Column("store", "string"),
    Column("basket_total", "float", 0, 500, 2),
    Column("items", "int", 0, 100),
)
MEASURES = [
    Measure("count"),
    Measure("sum", "basket_total"),
    Measure("sumsq", "basket_total"),
    Measure("min", "basket_total"),
    Measure("max", "items"),
]


def generate(directory: Path, rows: int) -> dict[str, SourceSpec]:
    rng = np.random.default_rng(7)
    table = pa.table(
        {
            "store": rng.choice(np.array(["north", "south", "east", "west"]), rows),
            "basket_total": rng.integers(0, 50_000, rows) / 100,
            "items": rng.integers(0, 101, rows),
        }
    )
    pcsv.write_csv(table, directory / "orders.csv")
    pq.write_table(table, directory / "orders.parquet")
    con = sqlite3.connect(directory / "orders.db")
    with con:
        con.execute("CREATE TABLE orders (store TEXT, basket_total REAL, items INTEGER)")
        records = zip(*table.to_pydict().values(), strict=True)
        con.executemany("INSERT INTO orders VALUES (?, ?, ?)", records)
    con.close()
    return {
        "csv": SourceSpec("csv", path=str(directory / "orders.csv")),
        "parquet": SourceSpec("parquet", path=str(directory / "orders.parquet")),
        "sqlite": SourceSpec("sql", url=f"sqlite:///{directory / 'orders.db'}", table="orders"),
    }


def bench(src: Source, rows: int) -> None:
    cases: list[tuple[str, Callable[[], object]]] = [
        ("check(basket_total, items)", partial(src.check, ["basket_total", "items"])),
        ("aggregate, no group", partial(src.aggregate, [], MEASURES)),
        ("aggregate, by store", partial(src.aggregate, ["store"], MEASURES)),
        (
            "aggregate, by store where items>=50",
            partial(src.aggregate, ["store"], MEASURES, [Where("items", ">=", 50)]),
        ),
    ]
    for label, call in cases:
        t0 = time.perf_counter()
        call()
        dt = time.perf_counter() - t0
        print(f"  {label:<36} {dt:7.3f} s  {rows / dt:>14,.0f} rows/s")


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        specs = generate(Path(tmp), rows)
        print(f"generated {rows:,} rows in {time.perf_counter() - t0:.1f} s")
        for kind, spec in specs.items():
            print(kind)
            bench(open_source(spec, COLUMNS, name="orders"), rows)


if __name__ == "__main__":
    main()
