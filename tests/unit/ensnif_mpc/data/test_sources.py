"""Data sources (CSV, Parquet, SQLite through SQLAlchemy) against pandas and exact integer sums."""

from __future__ import annotations

import sqlite3
import time
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ensnif_mpc.data.schema import Column
from ensnif_mpc.data.sources import Measure, SourceSpec, Where, open_source
from ensnif_mpc.errors import (
    DataError,
    InvalidArgument,
    SourceFailed,
    SourceTimeout,
    UnknownColumn,
)

KINDS = ["csv", "parquet", "sqlite"]
COLUMNS = (
    Column("store", "string"),
    Column("region", "int", 1, 5),
    Column("basket_total", "float", 0, 500, 2),
    Column("items", "int", 0, 100),
)
MEASURES = [
    Measure("count"),
    Measure("sum", "basket_total"),
    Measure("sumsq", "basket_total"),
    Measure("min", "basket_total"),
    Measure("max", "basket_total"),
    Measure("sum", "items"),
    Measure("sumsq", "items"),
    Measure("min", "items"),
    Measure("max", "items"),
]


def _orders(rows: int = 1000, seed: int = 3) -> pd.DataFrame:
    """Orders with basket totals in whole cents: the exact scaled value is the cents column."""
    rng = np.random.default_rng(seed)
    cents = rng.integers(0, 50_001, rows)
    return pd.DataFrame(
        {
            "store": rng.choice(["north", "south", "east", "west", "Zürich"], rows),
            "region": rng.integers(1, 6, rows),
            "basket_total": cents / 100,
            "items": rng.integers(0, 101, rows),
        }
    )


def _source(kind, tmp_path, df, columns=COLUMNS, clamp=False, **spec):
    """The same rows as a CSV file, a Parquet file or a SQLite table."""
    if kind == "csv":
        path = tmp_path / "orders.csv"
        df.to_csv(path, index=False)
        s = SourceSpec("csv", path=str(path))
    elif kind == "parquet":
        path = tmp_path / "orders.parquet"
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
        s = SourceSpec("parquet", path=str(path))
    else:
        path = tmp_path / "orders.db"
        with sqlite3.connect(path) as con:
            df.to_sql("orders", con, index=False)
        con.close()
        s = SourceSpec("sql", url=f"sqlite:///{path}", table="orders", **spec)
    return open_source(s, columns, clamp=clamp, name="orders")


def _csv(tmp_path, text, columns=COLUMNS, clamp=False):
    path = tmp_path / "orders.csv"
    path.write_text(text)
    return open_source(SourceSpec("csv", path=str(path)), columns, clamp=clamp, name="orders")


def _sqlite(tmp_path, create, rows, columns=COLUMNS, clamp=False, **spec):
    path = tmp_path / "orders.db"
    with sqlite3.connect(path) as con:
        con.execute(create)
        marks = ", ".join("?" * len(rows[0]))
        con.executemany(f"INSERT INTO orders VALUES ({marks})", rows)
    con.close()
    if "query" not in spec:
        spec.setdefault("table", "orders")
    s = SourceSpec("sql", url=f"sqlite:///{path}", **spec)
    return open_source(s, columns, clamp=clamp, name="orders")


def _reference(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """pandas on exact integers: cents for basket_total, items as they are."""
    frame = df.assign(cents=np.rint(df.basket_total * 100).astype(np.int64))
    frame = frame.assign(cents2=frame.cents**2, items2=frame["items"] ** 2)
    aggs = {
        "count": ("cents", "size"),
        "sum:basket_total": ("cents", "sum"),
        "sumsq:basket_total": ("cents2", "sum"),
        "min:basket_total": ("cents", "min"),
        "max:basket_total": ("cents", "max"),
        "sum:items": ("items", "sum"),
        "sumsq:items": ("items2", "sum"),
        "min:items": ("items", "min"),
        "max:items": ("items", "max"),
    }
    if not by:
        return pd.DataFrame({k: [frame[c].agg(f)] for k, (c, f) in aggs.items()})
    return frame.groupby(by, sort=True).agg(**aggs).reset_index()


def _assert_matches(agg, ref: pd.DataFrame, by: list[str]) -> None:
    assert agg.groups == len(ref)
    assert agg.rows == int(ref["count"].sum())
    for b in by:
        assert agg.keys[b].tolist() == ref[b].tolist()
    for name in ref.columns.drop(by):
        assert agg.values[name].tolist() == [int(v) for v in ref[name]], name
    assert agg.values["count"].dtype == np.int64
    assert all(type(v) is int for v in agg.values["sum:basket_total"])


# -- reading and checking ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_header_lists_the_columns_the_source_produces(kind, tmp_path):
    src = _source(kind, tmp_path, _orders(10))

    assert src.header() == ["store", "region", "basket_total", "items"]


@pytest.mark.parametrize("kind", KINDS)
def test_row_count_counts_every_row(kind, tmp_path):
    assert _source(kind, tmp_path, _orders(123)).row_count() == 123


@pytest.mark.parametrize("kind", KINDS)
def test_check_of_valid_data_returns_the_row_count(kind, tmp_path):
    src = _source(kind, tmp_path, _orders(50))

    assert src.check(["basket_total", "items", "region", "store"]) == 50


@pytest.mark.parametrize("kind", KINDS)
def test_value_above_the_upper_bound_names_row_and_column(kind, tmp_path):
    df = _orders(10)
    df.loc[3, "basket_total"] = 500.01

    with pytest.raises(DataError) as info:
        _source(kind, tmp_path, df).check(["basket_total"])

    where = "line 5" if kind == "csv" else "row 4"
    assert f"{where}, column 'basket_total'" in info.value.message
    assert "outside the declared bounds [0, 500]" in info.value.message
    assert "dataset 'orders'" in info.value.message
    assert "500.01" not in info.value.message  # never a piece of a row


def test_csv_line_numbers_count_the_header_and_blank_lines(tmp_path):
    src = _csv(
        tmp_path,
        "store,region,basket_total,items\n\nnorth,1,1.5,3\n   \nsouth,2,-1,1\n",
    )

    with pytest.raises(DataError, match=r"orders.csv\): line 5, column 'basket_total'"):
        src.check(["basket_total"])


@pytest.mark.parametrize("kind", KINDS)
def test_value_below_the_lower_bound_is_refused(kind, tmp_path):
    df = _orders(10)
    df.loc[0, "items"] = -1

    with pytest.raises(DataError, match="column 'items': outside"):
        _source(kind, tmp_path, df).check(["items"])


@pytest.mark.parametrize("kind", KINDS)
def test_null_value_is_refused_naming_row(kind, tmp_path):
    df = _orders(10)
    df.loc[6, "basket_total"] = None

    with pytest.raises(DataError) as info:
        _source(kind, tmp_path, df).check(["basket_total"])

    where = "line 8" if kind == "csv" else "row 7"
    assert f"{where}, column 'basket_total': empty" in info.value.message


@pytest.mark.parametrize("kind", KINDS)
def test_fraction_in_an_int_column_is_refused(kind, tmp_path):
    df = _orders(10)
    df["items"] = df["items"].astype(float)
    df.loc[2, "items"] = 2.5

    with pytest.raises(DataError, match="column 'items': not an integer"):
        _source(kind, tmp_path, df).check(["items"])


def test_non_numeric_csv_cell_names_line_and_column(tmp_path):
    src = _csv(tmp_path, "store,region,basket_total,items\nnorth,1,12.5,3\nsouth,1,twelve,1\n")

    with pytest.raises(DataError) as info:
        src.check(["basket_total"])

    assert "orders.csv): line 3, column 'basket_total': not a number" in info.value.message
    assert "twelve" not in info.value.message


def test_csv_numbers_may_carry_spaces_and_exponents(tmp_path):
    src = _csv(tmp_path, "store,region,basket_total,items\nnorth, 1 , 1.25e2 ,3\n")

    assert src.column("basket_total").tolist() == [125.0]


def test_short_csv_line_names_line_and_missing_column(tmp_path):
    src = _csv(tmp_path, "store,region,basket_total,items\nnorth,1,1.0,2\nsouth,1,1.0\n")

    with pytest.raises(DataError, match=r"line 3, column 'items': missing"):
        src.check(["items"])


def test_text_in_a_sqlite_real_column_is_not_a_number(tmp_path):
    create = "CREATE TABLE orders (store TEXT, region INT, basket_total REAL, items INT)"
    src = _sqlite(tmp_path, create, [("n", 1, 1.5, 1), ("s", 2, "twelve", 2)])

    with pytest.raises(DataError, match=r"row 2, column 'basket_total': not a number"):
        src.check(["basket_total"])


def test_text_in_a_parquet_column_declared_numeric_is_not_a_number(tmp_path):
    path = tmp_path / "orders.parquet"
    pq.write_table(pa.table({"basket_total": ["1.5", "2", "x", "4"]}), path)
    src = open_source(SourceSpec("parquet", path=str(path)), (COLUMNS[2],), name="orders")

    with pytest.raises(DataError, match=r"row 3, column 'basket_total': not a number"):
        src.check(["basket_total"])


@pytest.mark.parametrize("kind", KINDS)
def test_missing_declared_column_is_refused(kind, tmp_path):
    src = _source(kind, tmp_path, _orders(5).drop(columns=["items"]))

    with pytest.raises(DataError, match="no column 'items'"):
        src.check(["basket_total"])


@pytest.mark.parametrize("kind", KINDS)
def test_undeclared_column_is_unknown(kind, tmp_path):
    src = _source(kind, tmp_path, _orders(5))

    with pytest.raises(UnknownColumn, match="declares no column 'tip'"):
        src.column("tip")


def test_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("store,region\nnorth,1\nsouth,2\n", encoding="utf-8-sig")
    src = open_source(SourceSpec("csv", path=str(path)), COLUMNS[:2])

    assert src.header() == ["store", "region"]
    assert src.aggregate(["store"], [Measure("count")]).keys["store"].tolist() == [
        "north",
        "south",
    ]


def test_parquet_null_group_key_names_the_row(tmp_path):
    path = tmp_path / "orders.parquet"
    pq.write_table(pa.table({"store": ["a", None, "b"], "region": [1, 2, 3]}), path)
    src = open_source(SourceSpec("parquet", path=str(path)), COLUMNS[:2], name="orders")

    with pytest.raises(DataError, match="row 2, column 'store': empty"):
        src.aggregate(["store"], [Measure("sum", "region")])


@pytest.mark.parametrize("kind", KINDS)
def test_count_of_a_column_counts_rows(kind, tmp_path):
    src = _source(kind, tmp_path, _orders(30))

    agg = src.aggregate([], [Measure("count", "store"), Measure("count")])

    assert agg.values["count:store"].tolist() == agg.values["count"].tolist() == [30]


def test_missing_file_is_a_source_failure(tmp_path):
    src = open_source(SourceSpec("csv", path=str(tmp_path / "absent.csv")), COLUMNS)

    with pytest.raises(SourceFailed, match="absent.csv"):
        src.check(["items"])


# -- clamp -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_clamp_accepts_out_of_bounds_values_and_clamps_them(kind, tmp_path):
    df = _orders(4)
    df["basket_total"] = [600.0, -3.0, 12.34, 500.0]
    src = _source(kind, tmp_path, df, clamp=True)

    agg = src.aggregate([], [Measure("sum", "basket_total"), Measure("min", "basket_total")])

    assert src.check(["basket_total"]) == 4
    assert agg.values["sum:basket_total"].tolist() == [50000 + 0 + 1234 + 50000]
    assert agg.values["min:basket_total"].tolist() == [0]
    assert src.column("basket_total").tolist() == [500.0, 0.0, 12.34, 500.0]


@pytest.mark.parametrize("kind", KINDS)
def test_clamp_still_refuses_nulls(kind, tmp_path):
    df = _orders(4)
    df.loc[1, "basket_total"] = None

    with pytest.raises(DataError, match="empty"):
        _source(kind, tmp_path, df, clamp=True).check(["basket_total"])


def test_clamp_still_refuses_infinity(tmp_path):
    src = _csv(tmp_path, "store,region,basket_total,items\nn,1,inf,1\n", clamp=True)

    with pytest.raises(DataError, match="line 2, column 'basket_total': not a finite number"):
        src.check(["basket_total"])


# -- aggregate against pandas ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_aggregate_by_a_string_key_matches_pandas(kind, tmp_path):
    df = _orders()

    agg = _source(kind, tmp_path, df).aggregate(["store"], MEASURES)

    _assert_matches(agg, _reference(df, ["store"]), ["store"])
    assert agg.keys["store"].dtype == object


@pytest.mark.parametrize("kind", KINDS)
def test_aggregate_by_an_int_key_matches_pandas(kind, tmp_path):
    df = _orders()

    agg = _source(kind, tmp_path, df).aggregate(["region"], MEASURES)

    _assert_matches(agg, _reference(df, ["region"]), ["region"])
    assert agg.keys["region"].dtype == np.int64


@pytest.mark.parametrize("kind", KINDS)
def test_aggregate_by_two_keys_sorts_groups_by_both(kind, tmp_path):
    df = _orders()

    agg = _source(kind, tmp_path, df).aggregate(["store", "region"], MEASURES)

    _assert_matches(agg, _reference(df, ["store", "region"]), ["store", "region"])


@pytest.mark.parametrize("kind", KINDS)
def test_aggregate_without_by_is_one_group_over_all_rows(kind, tmp_path):
    df = _orders()

    agg = _source(kind, tmp_path, df).aggregate([], MEASURES)

    _assert_matches(agg, _reference(df, []), [])
    assert agg.keys == {}


@pytest.mark.parametrize("kind", KINDS)
def test_aggregate_applies_every_where_filter(kind, tmp_path):
    df = _orders()
    where = [
        Where("items", ">=", 50),
        Where("basket_total", "<", 250.5),
        Where("region", "<=", 4),
        Where("store", "==", "north"),
    ]
    kept = df[(df["items"] >= 50) & (df.basket_total < 250.5) & (df.region <= 4)]
    kept = kept[kept.store == "north"]

    agg = _source(kind, tmp_path, df).aggregate(["region"], MEASURES, where)

    _assert_matches(agg, _reference(kept, ["region"]), ["region"])


@pytest.mark.parametrize("kind", KINDS)
def test_where_compares_the_declared_unscaled_value(kind, tmp_path):
    df = _orders(6)
    df["basket_total"] = [0.29, 0.3, 0.31, 1.0, 2.5, 0.0]

    agg = _source(kind, tmp_path, df).aggregate(
        [], [Measure("count")], [Where("basket_total", ">", 0.29), Where("items", ">", -1)]
    )

    assert agg.values["count"].tolist() == [4]


@pytest.mark.parametrize("kind", KINDS)
def test_empty_selection_without_by_is_one_group_of_count_zero(kind, tmp_path):
    src = _source(kind, tmp_path, _orders(20))

    agg = src.aggregate([], MEASURES, [Where("items", ">", 100)])

    assert (agg.rows, agg.groups) == (0, 1)
    assert agg.values["count"].tolist() == [0]
    assert agg.values["sum:basket_total"].tolist() == [0]
    assert agg.values["sumsq:items"].tolist() == [0]
    assert agg.values["min:basket_total"].tolist() == [None]
    assert agg.values["max:items"].tolist() == [None]


@pytest.mark.parametrize("kind", KINDS)
def test_empty_selection_with_by_has_no_groups(kind, tmp_path):
    src = _source(kind, tmp_path, _orders(20))

    agg = src.aggregate(["store"], MEASURES, [Where("store", "==", "nowhere")])

    assert (agg.rows, agg.groups) == (0, 0)
    assert agg.keys["store"].tolist() == []
    assert agg.values["sum:basket_total"].tolist() == []


@pytest.mark.parametrize("kind", KINDS)
def test_sum_of_two_decimal_floats_is_exact(kind, tmp_path):
    rng = np.random.default_rng(11)
    texts = [f"{c // 100}.{c % 100:02d}" for c in rng.integers(0, 50_001, 2000)]
    df = _orders(2000).assign(basket_total=[float(t) for t in texts])
    exact = sum(Decimal(t) for t in texts) * 100

    agg = _source(kind, tmp_path, df).aggregate([], [Measure("sum", "basket_total")])

    assert agg.values["sum:basket_total"][0] == int(exact)


@pytest.mark.parametrize("kind", KINDS)
def test_sum_of_tenths_is_exact_where_a_float_sum_is_not(kind, tmp_path):
    df = _orders(10).assign(basket_total=0.1)

    agg = _source(kind, tmp_path, df).aggregate([], [Measure("sum", "basket_total")])

    assert agg.values["sum:basket_total"].tolist() == [100]
    assert sum([0.1] * 10) * 100 != 100


@pytest.mark.parametrize("kind", KINDS)
def test_sumsq_is_exact_for_values_near_2_40(kind, tmp_path):
    rng = np.random.default_rng(5)
    values = (2**40 - rng.integers(0, 10**6, 500)) * rng.choice([-1, 1], 500)
    columns = (Column("store", "string"), Column("v", "int", -(2**41), 2**41))
    df = pd.DataFrame({"store": rng.choice(["a", "b"], 500), "v": values})
    ints = [int(v) for v in values]

    agg = _source(kind, tmp_path, df, columns).aggregate(
        ["store"], [Measure("sum", "v"), Measure("sumsq", "v"), Measure("max", "v")]
    )

    for g, store in enumerate(agg.keys["store"]):
        mine = [v for v, s in zip(ints, df.store, strict=True) if s == store]
        assert agg.values["sum:v"][g] == sum(mine)
        assert agg.values["sumsq:v"][g] == sum(v * v for v in mine)
        assert agg.values["max:v"][g] == max(mine)


@pytest.mark.parametrize("kind", KINDS)
def test_sums_are_exact_for_values_up_to_2_53(kind, tmp_path):
    rng = np.random.default_rng(8)
    top = 2**53 - 1
    values = rng.integers(-top, top, 300, endpoint=True)
    df = pd.DataFrame({"v": values})
    columns = (Column("v", "int", -top, top),)
    ints = [int(v) for v in values]

    agg = _source(kind, tmp_path, df, columns).aggregate(
        [], [Measure("sum", "v"), Measure("sumsq", "v"), Measure("min", "v")]
    )

    assert agg.values["sum:v"][0] == sum(ints)
    assert agg.values["sumsq:v"][0] == sum(v * v for v in ints)
    assert agg.values["min:v"][0] == min(ints)


@pytest.mark.parametrize("kind", KINDS)
def test_scale_rounds_half_to_even_like_numpy(kind, tmp_path):
    values = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.125, 2.675, -2.675, 3.0]
    df = pd.DataFrame({"v": values})
    columns = (Column("v", "float", -10, 10, 3),)
    src = _source(kind, tmp_path, df, columns)

    for d in (0, 1, 2):
        expected = np.rint(np.array(values) * 10**d).astype(np.int64)
        agg = src.aggregate([], [Measure("sum", "v"), Measure("min", "v")], scale={"v": d})
        assert src.column("v", scale=d).tolist() == expected.tolist()
        assert agg.values["sum:v"][0] == int(expected.sum())
        assert agg.values["min:v"][0] == int(expected.min())


@pytest.mark.parametrize("kind", KINDS)
def test_column_returns_checked_values_in_their_types(kind, tmp_path):
    df = _orders(5)
    src = _source(kind, tmp_path, df)

    total = src.column("basket_total")
    items = src.column("items")
    cents = src.column("basket_total", scale=2)
    stores = src.column("store")

    assert total.dtype == np.float64 and total.tolist() == df.basket_total.tolist()
    assert items.dtype == np.int64 and items.tolist() == df["items"].tolist()
    assert cents.dtype == np.int64
    assert cents.tolist() == np.rint(df.basket_total * 100).astype(int).tolist()
    assert stores.dtype == object and stores.tolist() == df.store.tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_aggregate_refuses_an_invalid_value_in_a_selected_row(kind, tmp_path):
    df = _orders(10)
    df.loc[4, "basket_total"] = 900.0

    with pytest.raises(DataError, match="column 'basket_total': outside"):
        _source(kind, tmp_path, df).aggregate(["store"], [Measure("sum", "basket_total")])


@pytest.mark.parametrize(
    ("by", "measures", "where", "match"),
    [
        ([], [Measure("sum", "store")], [], "not numeric"),
        ([], [Measure("sum")], [], "needs a column"),
        ([], [Measure("median", "items")], [], "unknown measure"),
        ([], [Measure("count")], [Where("items", "!=", 1)], "unknown operator"),
        ([], [Measure("count")], [Where("store", ">", "a")], "only =="),
        ([], [Measure("count")], [Where("items", ">", "3")], "compare with a number"),
        (["store", "store"], [Measure("count")], [], "repeat"),
    ],
)
def test_malformed_requests_are_refused(tmp_path, by, measures, where, match):
    src = _source("csv", tmp_path, _orders(5))

    with pytest.raises(InvalidArgument, match=match):
        src.aggregate(by, measures, where)


# -- SQL specifics -----------------------------------------------------------------------


def test_sql_query_source_matches_the_table_source(tmp_path):
    df = _orders()
    table = _source("sqlite", tmp_path, df)
    query = open_source(
        SourceSpec("sql", url=table.spec.url, query="SELECT * FROM orders WHERE items >= 0;"),
        COLUMNS,
    )

    by_query = query.aggregate(["store"], MEASURES)

    _assert_matches(by_query, _reference(df, ["store"]), ["store"])
    assert query.header() == table.header()


def test_sql_query_may_contain_colons_and_percent_signs(tmp_path):
    df = _orders(50)
    table = _source("sqlite", tmp_path, df)
    sql = "SELECT * FROM orders WHERE store NOT IN (':x', '100%') AND '12:00' <> ''"
    query = open_source(SourceSpec("sql", url=table.spec.url, query=sql), COLUMNS)

    assert query.aggregate([], [Measure("count")]).values["count"].tolist() == [50]


def test_sql_pushdown_resizes_its_limbs_when_more_rows_than_assumed(tmp_path):
    df = _orders(300)
    src = _source("sqlite", tmp_path, df)
    src.row_bits = 2  # pretend the push-down was sized for at most 3 rows

    agg = src.aggregate(["store"], MEASURES)

    _assert_matches(agg, _reference(df, ["store"]), ["store"])


def test_sql_syntax_error_is_a_source_failure(tmp_path):
    src = _sqlite(
        tmp_path,
        "CREATE TABLE orders (items INT)",
        [(1,)],
        (COLUMNS[3],),
        query="SELECT items FROM orders WHERE",
    )

    with pytest.raises(SourceFailed, match="query failed .*syntax error"):
        src.row_count()


def test_missing_sqlite_table_is_a_source_failure(tmp_path):
    src = _sqlite(
        tmp_path, "CREATE TABLE orders (items INT)", [(1,)], (COLUMNS[3],), table="absent"
    )

    with pytest.raises(SourceFailed, match="no such table: absent"):
        src.check(["items"])


def test_missing_sqlite_file_is_a_source_failure_and_is_not_created(tmp_path):
    path = tmp_path / "absent.db"
    src = open_source(SourceSpec("sql", url=f"sqlite:///{path}", table="t"), COLUMNS)

    with pytest.raises(SourceFailed, match="does not exist"):
        src.header()

    assert not path.exists()


def test_unparsable_url_is_a_source_failure():
    src = open_source(SourceSpec("sql", url="not a url", table="t"), COLUMNS)

    with pytest.raises(SourceFailed, match="not a usable database url"):
        src.row_count()


def test_password_is_never_shown_in_messages():
    spec = SourceSpec("sql", url="postgresql://u:secret@127.0.0.1:1/db", table="t", timeout_s=2)
    src = open_source(spec, COLUMNS, name="orders")

    with pytest.raises(SourceFailed) as info:
        src.row_count()

    assert "secret" not in info.value.message
    assert "127.0.0.1" in info.value.message
    assert "secret" not in spec.describe()


@pytest.mark.timeout(15)
def test_slow_sqlite_query_times_out(tmp_path):
    slow = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
        "SELECT x AS items FROM c"
    )
    src = _sqlite(
        tmp_path,
        "CREATE TABLE orders (items INT)",
        [(1,)],
        (COLUMNS[3],),
        query=slow,
        timeout_s=1,
    )
    start = time.monotonic()

    with pytest.raises(SourceTimeout, match="within 1 s"):
        src.aggregate([], [Measure("sum", "items")])

    assert time.monotonic() - start < 3


def test_sqlite_int_column_holding_a_fraction_names_the_row(tmp_path):
    create = "CREATE TABLE orders (store TEXT, region INT, basket_total REAL, items REAL)"
    src = _sqlite(tmp_path, create, [("n", 1, 1.0, 1.0), ("n", 1, 1.0, 2.0), ("s", 1, 2.0, 2.5)])

    with pytest.raises(DataError, match=r"row 3, column 'items': not an integer"):
        src.aggregate([], [Measure("sum", "items")])


def test_open_source_refuses_an_incomplete_spec():
    with pytest.raises(InvalidArgument, match="query or a table"):
        open_source(SourceSpec("sql", url="sqlite:///x.db"), COLUMNS)
    with pytest.raises(InvalidArgument, match="unknown source kind"):
        open_source(SourceSpec("excel", path="x.xlsx"), COLUMNS)


def test_source_spec_round_trips_through_a_dict():
    spec = SourceSpec("sql", url="sqlite:////data/x.db", table="orders", timeout_s=5)

    assert SourceSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("kind", KINDS)
def test_read_columns_equals_each_column_read_alone(kind, tmp_path):
    """A model's feature matrix: one read (files) or one per column (SQL), the same arrays."""
    df = _orders(200)
    src = _source(kind, tmp_path, df)
    names = ["basket_total", "items", "region", "items"]

    for scale in (None, 2):
        together = src.read_columns(names, scale)

        assert len(together) == len(names)
        for name, got in zip(names, together, strict=True):
            alone = src.column(name, scale)
            assert got.dtype == alone.dtype
            np.testing.assert_array_equal(got, alone)
    np.testing.assert_array_equal(together[0], np.rint(df["basket_total"] * 100))


@pytest.mark.parametrize("kind", KINDS)
def test_read_columns_keeps_the_same_rows_per_person_as_column(kind, tmp_path):
    from ensnif_mpc.data.bounding import Bound

    df = _orders(60)
    df["person"] = np.arange(60) % 7
    columns = (*COLUMNS, Column("person", "int", 0, 10))
    src = _source(kind, tmp_path, df, columns=columns)
    src.bound = Bound("person", 2)

    items, region = src.read_columns(["items", "region"])

    assert items.size == region.size == 14
    np.testing.assert_array_equal(items, src.column("items"))
    np.testing.assert_array_equal(region, src.column("region"))


@pytest.mark.parametrize("kind", KINDS)
def test_read_columns_names_the_first_offending_column_and_row(kind, tmp_path):
    df = _orders(10)
    df.loc[6, "items"] = 101
    df.loc[3, "basket_total"] = 500.01

    with pytest.raises(DataError) as info:
        _source(kind, tmp_path, df).read_columns(["items", "basket_total"])

    where = "line 8" if kind == "csv" else "row 7"
    assert f"{where}, column 'items'" in info.value.message
    assert "101" not in info.value.message


def test_read_columns_with_a_string_column_reads_it_as_column_does(tmp_path):
    src = _source("csv", tmp_path, _orders(20))

    store, items = src.read_columns(["store", "items"])

    np.testing.assert_array_equal(store, src.column("store"))
    np.testing.assert_array_equal(items, src.column("items"))
