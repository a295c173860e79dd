"""A node whose dataset is a SQL query in its own database: propose checks, failures, push-down.

Drives the node's domain layer with real certificates and a real SQLite
database; the rows stay in the database and the node only runs checks there.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ensnif_mpc.config import DatasetConfig
from ensnif_mpc.data.schema import Column, PrivacyPolicy
from ensnif_mpc.data.sources import SourceSpec
from ensnif_mpc.demo.localnet import LocalConsortium
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.security.pki import Identity
from party_node.node import Node, Proposal
from tests.consortium import running_consortium

COORDINATOR = Identity("coordinator", "coordinator")
ORDER = ["grocery", "logistics", "helper"]
COLUMNS = (
    Column("customer_id", "string"),
    Column("basket_total", "float", 0, 500, 2),
)


def _spec(protocol: str, grocery: dict, logistics: dict, params: dict | None = None):
    return jobspec.from_dict(
        {
            "protocol": protocol,
            "helpers": ["helper"],
            "inputs": [
                {"party": "grocery", "dataset": "orders", **grocery},
                {"party": "logistics", "dataset": "deliveries", **logistics},
            ],
            "params": params or {},
            "privacy": {"exact": True},
        }
    )


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[LocalConsortium, Node, Path]]:
    db = tmp_path / "shop.db"
    rng = np.random.default_rng(3)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (customer_id TEXT, basket_total REAL, store TEXT)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)",
            [
                (f"C{int(c):07d}", round(float(v), 2), "x")
                for c, v in zip(rng.integers(0, 500, 2000), rng.uniform(0, 500, 2000), strict=True)
            ],
        )
    dataset = DatasetConfig(
        name="orders",
        source=SourceSpec(
            kind="sql",
            url=f"sqlite:///{db}",
            query="SELECT customer_id, basket_total FROM orders WHERE store = 'x'",
            timeout_s=5,
        ),
        columns=COLUMNS,
        allowed_protocols=("sum", "intersection_sum"),
        privacy=PrivacyPolicy(exact_protocols=("sum", "intersection_sum")),
    )
    with running_consortium(tmp_path, mode="configs", rows=50) as consortium:
        n = consortium.node("grocery", datasets=(dataset,), monitor_interval_s=0.1)
        yield consortium.lc, n, db


def propose(lc: LocalConsortium, node: Node, job_id: str, spec) -> object:
    return node.propose(
        COORDINATOR,
        Proposal(
            job_id=job_id,
            spec=jobspec.sign(spec, (lc.pki_dir / "analyst.key").read_bytes(), 1),
            party_index=0,
            party_order=ORDER,
            analyst_cert_pem=(lc.pki_dir / "analyst.crt").read_text(),
            bit_length=48,
            decimals=2,
        ),
    )


JOIN = ({"key": "customer_id", "value": "basket_total"}, {"key": "customer_id"})


def test_a_sql_dataset_is_checked_in_the_database_and_handed_to_the_worker(node) -> None:
    lc, n, db = node
    job = propose(lc, n, "sqlok", _spec("intersection_sum", *JOIN))

    assert job.state == "approved", job.reason
    session_input = job.data["input"]
    assert session_input["source"]["kind"] == "sql"
    assert session_input["roles"] == {"key": "customer_id", "value": "basket_total"}
    assert "password" not in str(session_input)


def test_a_value_outside_the_bounds_in_the_database_rejects_the_job(node) -> None:
    lc, n, db = node
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE orders SET basket_total = 900 WHERE rowid = 7")

    job = propose(lc, n, "sqlbounds", _spec("intersection_sum", *JOIN))

    assert job.state == "rejected"
    assert job.reason_code == "data_out_of_schema"
    assert "basket_total" in job.reason and "900" not in job.reason


def test_a_database_that_is_gone_rejects_with_source_failed(node) -> None:
    lc, n, db = node
    db.rename(db.with_suffix(".moved"))

    job = propose(lc, n, "sqlgone", _spec("intersection_sum", *JOIN))

    assert job.state == "rejected"
    assert job.reason_code == "source_failed"
    assert "orders" in job.reason


def test_a_query_that_runs_too_long_is_cut_off(node) -> None:
    lc, n, db = node
    slow = dataclasses.replace(
        n.datasets["orders"],
        source=SourceSpec(
            kind="sql",
            url=f"sqlite:///{db}",
            query=(
                "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1e9) "
                "SELECT 'C0000001' AS customer_id, 1.0 AS basket_total FROM c"
            ),
            timeout_s=1,
        ),
    )
    n.datasets["orders"] = slow

    started = time.monotonic()
    job = propose(lc, n, "sqlslow", _spec("intersection_sum", *JOIN))

    assert time.monotonic() - started < 10
    assert job.state == "rejected"
    assert job.reason_code == "source_timeout"


def test_a_protocol_the_owner_does_not_allow_is_refused_by_policy(node) -> None:
    lc, n, _ = node
    job = propose(
        lc,
        n,
        "notallowed",
        _spec("join_correlation", *({"key": "customer_id", "value": "basket_total"},) * 2),
    )

    assert job.state == "rejected"
    assert job.reason_code == "protocol_not_allowed"
    assert "join_correlation" in job.reason
