"""A node whose dataset lives in Spark (local mode): checked at start, served in a real job.

The grocery's orders are a Parquet file read through Spark SQL (``url = "local[1]"``, a
query over the file); the coordinator and the three nodes run in this process over mTLS,
the workers are real MPyC subprocesses, and the grocery's worker pre-aggregates in its
own local Spark (a JVM start of its own: this module is slow).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pyspark")

from ensnif_mpc.data import spark_source  # noqa: E402
from ensnif_mpc.data.sources import SourceSpec  # noqa: E402
from ensnif_mpc.demo.localnet import LocalConsortium  # noqa: E402
from ensnif_mpc.sdk.client import state_name  # noqa: E402
from tests.consortium import Consortium, _start_in_process  # noqa: E402
from tests.integration.test_jobs_over_mtls import plaintext, spec  # noqa: E402

pytestmark = pytest.mark.slow

URL = "local[1]"


def _to_spark(root: Path) -> Path:
    """Grocery's orders as Parquet, and its dataset config pointed at Spark instead."""
    csv_path = root / "data" / "orders.csv"
    parquet = root / "data" / "orders.parquet"
    pq.write_table(pcsv.read_csv(csv_path), parquet)
    config = root / "party-grocery.toml"
    text = config.read_text()
    path_line = next(
        line for line in text.splitlines() if line.startswith("path = ") and "orders" in line
    )
    query = f"SELECT * FROM parquet.`{parquet}`"
    config.write_text(
        text.replace(path_line, f'url = "{URL}"\nquery = "{query}"\ntimeout_seconds = 60')
    )
    return parquet


@pytest.fixture(scope="module")
def spark_consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    root = tmp_path_factory.mktemp("spark-consortium")
    lc = LocalConsortium(root, rows=200, job_timeout_s=600).setup()
    parquet = _to_spark(root)
    started = time.monotonic()
    # The node's start-up check would start the JVM; started first, so that the node
    # registers within the consortium's usual wait.
    warm = spark_source._session(SourceSpec("spark", url=URL, query="SELECT 1"), "warm-up")
    assert warm is not None and parquet.exists()
    print(f"local Spark for the node started in {time.monotonic() - started:.1f} s")
    consortium = Consortium(lc)
    try:
        _start_in_process(consortium, None)
        yield consortium
    finally:
        consortium.stop()
        spark_source.stop_sessions()


def test_the_node_publishes_the_spark_dataset_with_its_row_count(spark_consortium) -> None:
    with spark_consortium.client() as client:
        orders = next(d for d in client.datasets() if d.name == "orders")

    assert orders.row_count == 200


@pytest.mark.timeout(600)
def test_a_job_over_a_spark_dataset_matches_plaintext(spark_consortium) -> None:
    s = spec("sum")
    started = time.monotonic()

    with spark_consortium.client() as client:
        job = client.submit(s)
        final = client.wait(job.id, timeout_s=480)
        values = client.result(job.id)

    assert state_name(final) == "succeeded", final.reason
    (value,) = values.values()
    assert float(value) == pytest.approx(plaintext(spark_consortium, s), abs=1e-9)
    print(f"job over Spark: {time.monotonic() - started:.1f} s")
