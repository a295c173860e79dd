"""Contribution bounding: at most k rows per person reach an owner's pre-aggregation, in
files (Arrow) and pushed down to SQL (ROW_NUMBER() OVER (PARTITION BY person))."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from ensnif_mpc.data.bounding import Bound
from ensnif_mpc.data.schema import Column
from ensnif_mpc.data.sources import Measure, SourceSpec, Where, open_source
from protocols.io import LocalData

COLUMNS = (Column("person", "string"), Column("v", "int", 0, 100), Column("g", "string"))
ROWS = [
    ("a", 10, "x"),
    ("a", 20, "x"),
    ("a", 30, "y"),
    ("b", 1, "x"),
    ("c", 5, "y"),
    ("a", 40, "x"),
]


def source(tmp_path, kind):
    if kind == "csv":
        path = tmp_path / "t.csv"
        path.write_text("person,v,g\n" + "".join(f"{p},{v},{g}\n" for p, v, g in ROWS))
        return open_source(SourceSpec("csv", path=str(path)), COLUMNS, name="t")
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE t (person TEXT, v INT, g TEXT)")
        con.executemany("INSERT INTO t VALUES (?, ?, ?)", ROWS)
    con.close()
    return open_source(SourceSpec("sql", url=f"sqlite:///{path}", table="t"), COLUMNS, name="t")


@pytest.mark.parametrize("kind", ["csv", "sql"])
def test_at_most_k_rows_per_person_are_aggregated(tmp_path, kind):
    src = source(tmp_path, kind)
    src.bound = Bound("person", 2)

    agg = src.aggregate([], [Measure("count"), Measure("sum", "v")])

    assert int(agg.values["count"][0]) == 4  # a: 2 of 4, b: 1, c: 1
    if kind == "csv":
        assert int(agg.values["sum:v"][0]) == 10 + 20 + 1 + 5  # the first two of a's rows


@pytest.mark.parametrize("kind", ["csv", "sql"])
def test_the_bound_applies_after_the_filter_and_per_group(tmp_path, kind):
    src = source(tmp_path, kind)
    src.bound = Bound("person", 1)

    agg = src.aggregate(["g"], [Measure("count")], [Where("v", ">=", 5)])

    counts = dict(zip(agg.keys["g"].tolist(), agg.values["count"].tolist(), strict=True))
    assert sum(counts.values()) == 2  # a once (of 10, 20, 30, 40), c once; b filtered out


@pytest.mark.parametrize("kind", ["csv", "sql"])
def test_a_whole_column_is_bounded_too(tmp_path, kind):
    src = source(tmp_path, kind)
    src.bound = Bound("person", 1)

    values = sorted(src.column("v").tolist())
    assert len(values) == 3 and values[:2] == [1, 5]  # a's one row: whichever comes first


@pytest.mark.parametrize("kind", ["csv", "sql"])
def test_no_bound_reads_every_row(tmp_path, kind):
    assert int(source(tmp_path, kind).aggregate([], [Measure("count")]).values["count"][0]) == 6


def test_withheld_local_data_is_an_empty_selection_of_the_same_shape(tmp_path):
    data = LocalData(source(tmp_path, "csv"), {"value": "v", "group": "g"}, 0, withheld=True)

    flat = data.aggregate(measures=(("count", None), ("sum", "value"), ("max", "value")))
    grouped = data.aggregate(by=("group",), measures=(("count", None),))

    assert flat.values["count"].tolist() == [0] and flat.values["sum:value"].tolist() == [0]
    assert flat.values["max:value"].tolist() == [None]
    assert grouped.groups == 0 and grouped.keys["group"].size == 0
    assert data.column("value").size == 0
    assert isinstance(data.column("value"), np.ndarray)
