"""Spark sources (local mode, one JVM for the module) against the same contract as CSV/SQL.

Every backend-parameterised test of test_sources.py runs here again with a Spark source
over the same generated rows (written as a Parquet file that Spark reads as a table), so
Spark gives the same exact sums, counts, groups, filters and refusals; then what is
Spark's own: query sources, timeouts, an unreachable Spark Connect server.
"""

from __future__ import annotations

import importlib
import inspect
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pyspark")

from ensnif_mpc.data import spark_source  # noqa: E402
from ensnif_mpc.data.sources import Measure, SourceSpec, Where, open_source  # noqa: E402
from ensnif_mpc.errors import DataError, SourceFailed, SourceTimeout  # noqa: E402

pytestmark = pytest.mark.slow

contract = importlib.import_module("tests.unit.ensnif_mpc.data.test_sources")
URL = "local[2]"


@pytest.fixture(scope="module", autouse=True)
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One local Spark for the module: the JVM starts once (seconds), then is stopped."""
    path = tmp_path_factory.mktemp("warm") / "one.parquet"
    pq.write_table(pa.table({"items": [1]}), path)
    started = time.monotonic()
    spec = SourceSpec("spark", url=URL, table=_table(path), timeout_s=600)  # a cold JVM
    src = open_source(spec, (contract.COLUMNS[3],))
    assert src.row_count() == 1
    print(f"local Spark started and answered in {time.monotonic() - started:.1f} s")
    yield
    spark_source.stop_sessions()


def _table(path: Path) -> str:
    return f"parquet.`{path}`"


def _spark(tmp_path, df, columns=contract.COLUMNS, clamp=False, **spec):
    """The rows as a Parquet file, read through Spark SQL as a table (or by a query)."""
    path = tmp_path / "orders.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    if "query" in spec:
        spec["query"] = spec["query"].format(table=_table(path))
    else:
        spec.setdefault("table", _table(path))
    spec.setdefault("timeout_s", 120)  # statements took over 20 s at load averages near 30
    s = SourceSpec("spark", url=URL, **spec)
    return open_source(s, columns, clamp=clamp, name="orders")


_file_backed = contract._source


def _source(kind, tmp_path, df, columns=contract.COLUMNS, clamp=False, **spec):
    if kind == "spark":
        return _spark(tmp_path, df, columns, clamp, **spec)
    return _file_backed(kind, tmp_path, df, columns, clamp, **spec)


CONTRACT = sorted(
    name
    for name, fn in vars(contract).items()
    if name.startswith("test_") and "kind" in inspect.signature(fn).parameters
)


def test_the_contract_covers_the_backend_parameterised_tests():
    assert len(CONTRACT) >= 25
    assert "test_sums_are_exact_for_values_up_to_2_53" in CONTRACT


@pytest.mark.parametrize("name", CONTRACT)
def test_spark_meets_the_source_contract(name, tmp_path, monkeypatch):
    monkeypatch.setattr(contract, "_source", _source)

    getattr(contract, name)("spark", tmp_path)


# -- Spark's own --------------------------------------------------------------------------


def test_query_source_matches_pandas(tmp_path):
    df = contract._orders()
    src = _spark(tmp_path, df, query="SELECT * FROM {table} WHERE items >= 0;")

    agg = src.aggregate(["store"], contract.MEASURES, [Where("region", "<=", 3)])

    kept = df[df.region <= 3]
    contract._assert_matches(agg, contract._reference(kept, ["store"]), ["store"])


def test_pushdown_resizes_its_limbs_when_more_rows_than_assumed(tmp_path):
    df = contract._orders(300)
    src = _spark(tmp_path, df)
    src.row_bits = 2  # pretend the push-down was sized for at most 3 rows

    agg = src.aggregate(["store"], contract.MEASURES)

    contract._assert_matches(agg, contract._reference(df, ["store"]), ["store"])


def test_a_string_where_value_is_a_parameter_not_sql(tmp_path):
    df = contract._orders(20).assign(store=["it's"] * 10 + ["north"] * 10)
    src = _spark(tmp_path, df)

    agg = src.aggregate([], [Measure("count")], [Where("store", "==", "it's")])

    assert agg.values["count"].tolist() == [10]


def test_text_in_a_numeric_column_is_not_a_number_and_never_shown(tmp_path):
    df = pd.DataFrame({"basket_total": ["1.5", "2", "twelve", "4"]})
    src = _spark(tmp_path, df, columns=(contract.COLUMNS[2],))

    with pytest.raises(DataError) as info:
        src.check(["basket_total"])

    assert "row 3, column 'basket_total': not a number" in info.value.message
    assert "twelve" not in info.value.message


def test_an_execution_error_shows_its_condition_not_the_value(tmp_path):
    df = pd.DataFrame({"t": ["secret-cell"]})
    src = _spark(
        tmp_path,
        df,
        columns=(contract.COLUMNS[3],),
        query="SELECT CAST(t AS INT) AS items FROM {table}",
    )

    with pytest.raises(SourceFailed) as info:
        src.check(["items"])

    assert "CAST_INVALID_INPUT" in info.value.message
    assert "secret-cell" not in info.value.message


def test_a_missing_table_is_a_source_failure_naming_it(tmp_path):
    src = open_source(
        SourceSpec("spark", url=URL, table="absent_orders"), contract.COLUMNS, name="orders"
    )

    with pytest.raises(SourceFailed, match="absent_orders"):
        src.check(["items"])


def test_a_syntax_error_is_a_source_failure(tmp_path):
    src = _spark(tmp_path, contract._orders(5), query="SELECT items FROM {table} WHERE AND")

    with pytest.raises(SourceFailed, match="query failed"):
        src.row_count()


@pytest.mark.timeout(60, func_only=True)  # the JVM start is the fixture's
def test_a_slow_query_is_interrupted_at_the_timeout(tmp_path):
    slow = "SELECT CAST(id % 100 AS BIGINT) AS items FROM range(0, 100000000000, 1, 2)"
    src = open_source(
        SourceSpec("spark", url=URL, query=slow, timeout_s=2),
        (contract.COLUMNS[3],),
        name="orders",
    )
    start = time.monotonic()

    with pytest.raises(SourceTimeout, match="within 2 s"):
        src.aggregate([], [Measure("sum", "items")])

    assert time.monotonic() - start < 2 + spark_source.GRACE_S + 1
    fast = _spark(tmp_path, contract._orders(5))
    assert fast.row_count() == 5  # the slow job was cancelled: the cores are free again


@pytest.mark.timeout(30, func_only=True)
def test_an_unreachable_spark_connect_server_fails_quickly():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = SourceSpec("spark", url=f"sc://127.0.0.1:{port}/;token=hunter2", table="t")
    src = open_source(spec, contract.COLUMNS, name="orders")
    start = time.monotonic()

    with pytest.raises(SourceFailed) as info:
        src.row_count()

    assert not isinstance(info.value, SourceTimeout)
    assert info.value.reason == "source_failed"
    assert time.monotonic() - start < 15  # the first Connect session imports its client too
    assert f"sc://127.0.0.1:{port}" in info.value.message
    assert "hunter2" not in info.value.message


@pytest.mark.timeout(30, func_only=True)
def test_a_spark_connect_server_that_never_answers_times_out():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    spec = SourceSpec("spark", url=f"sc://127.0.0.1:{port}", table="t", timeout_s=2)
    src = open_source(spec, contract.COLUMNS, name="orders")
    start = time.monotonic()
    try:
        with pytest.raises(SourceTimeout) as info:
            src.row_count()
    finally:
        listener.close()
        for conn in held:
            conn.close()

    assert info.value.reason == "source_timeout"
    assert time.monotonic() - start < 2 + spark_source.GRACE_S + 2


def test_describe_never_shows_connect_parameters():
    spec = SourceSpec("spark", url="sc://spark.example:15002/;token=abc;user_id=x", table="t")

    assert spec.describe() == "spark source sc://spark.example:15002"
    assert SourceSpec("spark", url="local[4]", table="t").describe() == "spark source local[4]"


def test_open_source_refuses_a_spark_spec_without_query_or_table():
    from ensnif_mpc.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="query or a table"):
        open_source(SourceSpec("spark", url=URL), contract.COLUMNS)


def test_source_spec_round_trips_through_a_dict():
    spec = SourceSpec("spark", url="sc://h:15002", table="db.orders", timeout_s=5)

    assert SourceSpec.from_dict(spec.to_dict()) == spec


def test_column_reads_a_query_source(tmp_path):
    df = contract._orders(7)
    columns = (contract.COLUMNS[0], contract.COLUMNS[3])
    src = _spark(tmp_path, df, columns, query="SELECT store, items FROM {table}")

    assert src.column("items").tolist() == df["items"].tolist()
    assert src.column("store").tolist() == df.store.tolist()
    assert src.header() == ["store", "items"]


def test_a_value_filtered_out_by_where_is_not_checked(tmp_path):
    df = contract._orders(10)
    df.loc[2, "basket_total"] = 900.0
    df.loc[2, "region"] = 5

    agg = _spark(tmp_path, df).aggregate(
        [], [Measure("sum", "basket_total")], [Where("region", "<", 5)]
    )

    assert agg.rows == int((df.region < 5).sum())


def test_a_null_group_key_names_its_row(tmp_path):
    df = contract._orders(5)
    df.loc[3, "store"] = None

    with pytest.raises(DataError, match="row 4, column 'store': empty"):
        _spark(tmp_path, df).aggregate(["store"], [Measure("count")])


@pytest.mark.parametrize("url", ["local[2]", "local", "local[*]", "sc://h:15002/;token=${T}"])
def test_a_spark_url_in_a_dataset_config_makes_a_spark_source(tmp_path, url):
    from ensnif_mpc.config import _source

    spec = _source(tmp_path, {"url": url, "table": "lake.orders", "timeout_seconds": 7}, "ds")

    assert (spec.kind, spec.url, spec.table, spec.timeout_s) == ("spark", url, "lake.orders", 7.0)


def test_a_sqlalchemy_url_stays_a_sql_source(tmp_path):
    from ensnif_mpc.config import _source

    assert _source(tmp_path, {"url": "sqlite:///x.db", "table": "t"}, "ds").kind == "sql"


def test_a_spark_dataset_has_no_path():
    from ensnif_mpc.config import DatasetConfig
    from ensnif_mpc.errors import InvalidConfig

    ds = DatasetConfig("orders", SourceSpec("spark", url=URL, table="t"), contract.COLUMNS)

    with pytest.raises(InvalidConfig, match="Spark source; it has no path"):
        _ = ds.path


def test_contribution_bounding_keeps_the_first_k_rows_per_person_as_files_do(tmp_path):
    """At most k rows of each person, the first in read order (one Parquet file: the
    file's), after the filter: the same aggregates and column as the CSV backend's Arrow
    bounding over the same rows (``ensnif_mpc.data.bounding``)."""
    from ensnif_mpc.data.bounding import Bound
    from ensnif_mpc.data.schema import Column

    rng = np.random.default_rng(5)
    df = pd.DataFrame(
        {
            "person": rng.choice([f"p{i}" for i in range(25)], 300),
            "v": rng.integers(0, 101, 300),
            "g": rng.choice(["x", "y", "z"], 300),
        }
    )
    columns = (Column("person", "string"), Column("v", "int", 0, 100), Column("g", "string"))
    spark = _spark(tmp_path, df, columns)
    csv = tmp_path / "orders.csv"
    df.to_csv(csv, index=False)
    files = open_source(SourceSpec("csv", path=str(csv)), columns, name="orders")
    measures = [Measure("count"), Measure("sum", "v")]
    for src in (spark, files):
        src.bound = Bound("person", 2)

    got = spark.aggregate(["g"], measures, [Where("v", ">=", 30)])
    want = files.aggregate(["g"], measures, [Where("v", ">=", 30)])

    assert got.keys["g"].tolist() == want.keys["g"].tolist()
    assert got.values["count"].tolist() == want.values["count"].tolist()
    assert got.values["sum:v"].tolist() == want.values["sum:v"].tolist()
    kept = df[df.v >= 30]
    kept = kept[kept.groupby("person").cumcount() < 2]  # pandas: the first two per person
    assert int(np.sum(got.values["count"])) == len(kept) < int((df.v >= 30).sum())
    assert spark.column("v").tolist() == files.column("v").tolist()
    assert len(spark.column("v")) == 2 * df.person.nunique()  # every person has ≥ 2 rows
