"""Datasets on the node: schemas, checks (cached for unchanged files), columns, errors that
name the file, line and column."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ensnif_mpc.config import DatasetConfig
from ensnif_mpc.data.file_source import FileSource
from ensnif_mpc.data.schema import Column
from ensnif_mpc.data.sources import SourceSpec
from ensnif_mpc.errors import (
    DataError,
    EnsnifError,
    InvalidConfig,
    SourceFailed,
    UnknownColumn,
)
from party_node import datasets
from party_node.datasets import check, load_column, open_dataset, scaled_integers, schema_of

COLUMNS = (
    Column("basket_total", "float", 0, 500, 2),
    Column("items", "int", 0, 100),
    Column("store", "string"),
)
GOOD_CSV = "store,basket_total,items\nnorth,12.50,3\nsouth,0,1\n\neast,499.99,100\n"


def _dataset(tmp_path, text, columns=COLUMNS, clamp=False):
    path = tmp_path / "orders.csv"
    path.write_text(text)
    source = SourceSpec("csv", path=str(path))
    return DatasetConfig("orders", source, columns, description="baskets", clamp=clamp)


def _sqlite_dataset(tmp_path, rows):
    path = tmp_path / "orders.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE orders (store TEXT, basket_total REAL, items INTEGER)")
        con.executemany("INSERT INTO orders VALUES (?, ?, ?)", rows)
    con.close()
    source = SourceSpec("sql", url=f"sqlite:///{path}", table="orders")
    return DatasetConfig("orders", source, COLUMNS, description="baskets")


def test_load_column_reads_a_good_file(tmp_path):
    cfg = _dataset(tmp_path, GOOD_CSV)

    loaded = load_column(cfg, "basket_total")

    assert loaded.column == COLUMNS[0]
    assert loaded.values.dtype == np.float64
    assert loaded.values.tolist() == [12.5, 0.0, 499.99]


def test_load_column_reads_an_int_column(tmp_path):
    cfg = _dataset(tmp_path, GOOD_CSV)

    assert load_column(cfg, "items").values.tolist() == [3.0, 1.0, 100.0]


def test_load_column_accepts_values_on_the_bounds(tmp_path):
    cfg = _dataset(tmp_path, "store,basket_total,items\na,0,0\nb,500,100\n")

    assert load_column(cfg, "basket_total").values.tolist() == [0.0, 500.0]


def test_load_column_refuses_a_non_number_naming_line_and_column(tmp_path):
    cfg = _dataset(tmp_path, "store,basket_total,items\nnorth,12.5,3\nsouth,twelve,1\n")

    with pytest.raises(DataError) as info:
        load_column(cfg, "basket_total")

    assert "orders.csv): line 3, column 'basket_total': not a number" in info.value.message


def test_load_column_refuses_an_empty_cell(tmp_path):
    cfg = _dataset(tmp_path, "store,basket_total,items\nnorth,,3\n")

    with pytest.raises(DataError, match="line 2"):
        load_column(cfg, "basket_total")


def test_load_column_refuses_a_short_row(tmp_path):
    cfg = _dataset(tmp_path, "store,basket_total,items\nnorth,1.0\n")

    with pytest.raises(DataError, match=r"line 2, column 'items'"):
        load_column(cfg, "items")


def test_load_column_refuses_a_value_above_the_upper_bound(tmp_path):
    cfg = _dataset(tmp_path, "store,basket_total,items\nnorth,12.5,3\nsouth,500.01,1\n")

    with pytest.raises(DataError) as info:
        load_column(cfg, "basket_total")

    assert "line 3" in info.value.message
    assert "outside the declared bounds [0, 500]" in info.value.message


def test_load_column_refuses_a_value_below_the_lower_bound(tmp_path):
    cfg = _dataset(tmp_path, "store,basket_total,items\nnorth,-0.01,3\n")

    with pytest.raises(DataError, match="outside the declared bounds"):
        load_column(cfg, "basket_total")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_load_column_refuses_non_finite_values(tmp_path, value):
    cfg = _dataset(tmp_path, f"store,basket_total,items\nnorth,{value},3\n")

    with pytest.raises(DataError, match="line 2"):
        load_column(cfg, "basket_total")


def test_load_column_refuses_a_non_integer_in_an_int_column(tmp_path):
    cfg = _dataset(tmp_path, "store,basket_total,items\nnorth,12.5,3\nsouth,1,2.5\n")

    with pytest.raises(DataError) as info:
        load_column(cfg, "items")

    assert "line 3, column 'items'" in info.value.message
    assert "not an integer" in info.value.message


def test_load_column_refuses_an_undeclared_column(tmp_path):
    cfg = _dataset(tmp_path, GOOD_CSV)

    with pytest.raises(UnknownColumn, match="declares no column 'tip'"):
        load_column(cfg, "tip")


def test_load_column_refuses_a_string_column(tmp_path):
    cfg = _dataset(tmp_path, GOOD_CSV)

    with pytest.raises(DataError, match="not numeric"):
        load_column(cfg, "store")


def test_load_column_refuses_a_declared_column_missing_from_the_header(tmp_path):
    cfg = _dataset(tmp_path, "store,items\nnorth,3\n")

    with pytest.raises(EnsnifError, match="basket_total"):
        load_column(cfg, "basket_total")


def test_schema_of_reports_columns_and_row_count(tmp_path):
    cfg = _dataset(tmp_path, GOOD_CSV)

    schema = schema_of("grocery", cfg)

    assert (schema.party, schema.name, schema.description) == ("grocery", "orders", "baskets")
    assert schema.columns == COLUMNS
    assert schema.row_count == 3


def test_schema_of_an_empty_file_with_header_has_zero_rows(tmp_path):
    cfg = _dataset(tmp_path, "store,basket_total,items\n")

    assert schema_of("grocery", cfg).row_count == 0


def test_schema_of_refuses_a_declared_column_missing_from_the_header(tmp_path):
    cfg = _dataset(tmp_path, "store,items\nnorth,3\n")

    with pytest.raises(InvalidConfig) as info:
        schema_of("grocery", cfg)

    assert "no column 'basket_total'" in info.value.message
    assert "items" not in info.value.message  # the header is not quoted: it may be a data row


def test_schema_of_refuses_a_missing_file(tmp_path):
    source = SourceSpec("csv", path=str(tmp_path / "absent.csv"))
    cfg = DatasetConfig(name="orders", source=source, columns=COLUMNS)

    with pytest.raises(SourceFailed, match="absent.csv"):
        schema_of("grocery", cfg)


def test_schema_of_a_parquet_dataset(tmp_path):
    path = tmp_path / "orders.parquet"
    table = pa.table({"store": ["n", "s"], "basket_total": [1.5, 2.0], "items": [1, 2]})
    pq.write_table(table, path)
    cfg = DatasetConfig("orders", SourceSpec("parquet", path=str(path)), COLUMNS)

    assert schema_of("grocery", cfg).row_count == 2


def test_schema_of_a_sql_dataset(tmp_path):
    cfg = _sqlite_dataset(tmp_path, [("n", 1.5, 1), ("s", 2.0, 2), ("e", 0.0, 3)])

    schema = schema_of("grocery", cfg)

    assert (schema.name, schema.row_count, schema.columns) == ("orders", 3, COLUMNS)


def test_schema_of_counts_rows_without_blank_lines(tmp_path):
    cfg = _dataset(tmp_path, "store,basket_total,items\n\nn,1,1\n   \ns,2,2\n\n")

    assert schema_of("grocery", cfg).row_count == 2


def test_check_returns_the_row_count(tmp_path):
    assert check(_dataset(tmp_path, GOOD_CSV)) == 3


def test_check_refuses_bad_data_in_any_numeric_column(tmp_path):
    cfg = _dataset(tmp_path, "store,basket_total,items\nnorth,12.5,3\nsouth,1,101\n")

    with pytest.raises(DataError, match="line 3, column 'items': outside"):
        check(cfg)


def test_check_does_not_rescan_an_unchanged_file(tmp_path, monkeypatch):
    cfg = _dataset(tmp_path, GOOD_CSV)
    scans = []
    real = FileSource.check
    monkeypatch.setattr(FileSource, "check", lambda self, n: scans.append(n) or real(self, n))

    assert check(cfg) == 3
    assert check(cfg) == 3

    assert len(scans) == 1


def test_check_rescans_a_changed_file(tmp_path):
    cfg = _dataset(tmp_path, GOOD_CSV)
    check(cfg)
    cfg.path.write_text(GOOD_CSV + "west,900,1\n")
    os.utime(cfg.path, ns=(1, 1))

    with pytest.raises(DataError, match="line 6, column 'basket_total'"):
        check(cfg)


def test_check_of_a_sql_dataset_is_never_cached(tmp_path):
    cfg = _sqlite_dataset(tmp_path, [("n", 1.5, 1)])
    assert check(cfg) == 1
    with sqlite3.connect(cfg.source.url.removeprefix("sqlite:///")) as con:
        con.execute("INSERT INTO orders VALUES ('s', 600.0, 2)")
    con.close()

    with pytest.raises(DataError, match="row 2, column 'basket_total': outside"):
        check(cfg)


def test_check_of_a_clamped_dataset_accepts_out_of_bounds_values(tmp_path):
    cfg = _dataset(tmp_path, "store,basket_total,items\nnorth,900,3\n", clamp=True)

    assert check(cfg) == 1
    assert load_column(cfg, "basket_total").values.tolist() == [500.0]


def test_check_of_a_missing_file_is_a_source_failure(tmp_path):
    cfg = DatasetConfig("orders", SourceSpec("csv", path=str(tmp_path / "gone.csv")), COLUMNS)

    with pytest.raises(SourceFailed, match="gone.csv"):
        check(cfg)


def test_open_dataset_carries_name_columns_and_clamp(tmp_path):
    cfg = _dataset(tmp_path, GOOD_CSV, clamp=True)

    source = open_dataset(cfg)

    assert (source.name, source.columns, source.clamp) == ("orders", COLUMNS, True)
    assert datasets.open_dataset(cfg).header() == ["store", "basket_total", "items"]


def test_dataset_path_is_the_file_of_a_file_source(tmp_path):
    cfg = _dataset(tmp_path, GOOD_CSV)

    assert cfg.path == tmp_path / "orders.csv"


def test_a_sql_dataset_has_no_path(tmp_path):
    cfg = _sqlite_dataset(tmp_path, [("n", 1.5, 1)])

    with pytest.raises(InvalidConfig, match="SQL source"):
        _ = cfg.path


def test_scaled_integers_are_exact_ints_on_the_decimal_scale():
    values = np.array([12.5, 0.29, 499.99, 1.15, -3.07])

    out = scaled_integers(values, 2)

    assert out.dtype == np.int64
    assert out.tolist() == [1250, 29, 49999, 115, -307]


def test_scaled_integers_with_zero_decimals_rounds_half_to_even():
    assert scaled_integers(np.array([0.5, 1.5, 2.5, 3.0]), 0).tolist() == [0, 2, 2, 3]


def test_column_whose_scaled_bound_exceeds_exact_integers_is_refused():
    with pytest.raises(InvalidConfig, match="2\\^53"):
        Column("volume", "float", lower=0, upper=1e13, decimals=6)


def test_scaled_integers_refuses_values_beyond_exact_integers():
    with pytest.raises(DataError, match="too large"):
        scaled_integers(np.array([1e13]), 6)


@pytest.mark.parametrize(
    "field", ["allowed_protocols", "exact_protocols"], ids=["allowed", "exact"]
)
@pytest.mark.parametrize("name", ["summ", "Sum", "", "count "])
def test_a_policy_naming_an_unknown_protocol_is_refused(tmp_path, field, name):
    import dataclasses

    from ensnif_mpc.data.schema import PrivacyPolicy

    cfg = _dataset(tmp_path, GOOD_CSV)
    if field == "allowed_protocols":
        cfg = dataclasses.replace(cfg, allowed_protocols=("sum", name))
    else:
        cfg = dataclasses.replace(cfg, privacy=PrivacyPolicy(exact_protocols=(name,)))

    with pytest.raises(InvalidConfig, match=f"names an unknown protocol {name!r}"):
        datasets.check_protocols([cfg])


def test_a_policy_naming_known_protocols_passes(tmp_path):
    datasets.check_protocols([_dataset(tmp_path, GOOD_CSV)])  # count, sum, mean
