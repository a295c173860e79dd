"""Jobs through real servers: results against plaintext, validation errors with their codes."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from ensnif_mpc import errors
from ensnif_mpc.demo import sample_data
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import Client, state_name
from tests.consortium import Consortium

pytestmark = pytest.mark.slow


def spec(
    protocol: str = "sum", params: dict[str, Any] | None = None, **over: Any
) -> jobspec.JobSpec:
    raw: dict[str, Any] = {
        "protocol": protocol,
        "helpers": ["helper"],
        "inputs": [
            {"party": "grocery", "dataset": "orders", "column": "basket_total"},
            {"party": "logistics", "dataset": "deliveries", "column": "fee"},
        ],
        "params": params or {},
        "privacy": {"exact": True},  # compared with plaintext; DP runs are in test_privacy.py
    }
    raw.update(over)
    return jobspec.from_dict(raw)


def plaintext(consortium: Consortium, s: jobspec.JobSpec) -> float:
    data = consortium.lc.data
    assert data is not None
    files = {"orders": data.orders, "deliveries": data.deliveries}
    tables = [sample_data.read_table(files[i.dataset], i.columns) for i in s.inputs]
    from protocols import registry

    (value,) = registry.get(s.protocol).reference(tables, s.params).values()
    return value


@pytest.mark.parametrize(
    ("protocol", "params"),
    [("sum", {}), ("count", {"min": 40}), ("mean", {"max": 90.5})],
)
def test_job_result_matches_plaintext(
    consortium: Consortium, client: Client, protocol: str, params: dict[str, Any]
) -> None:
    s = spec(protocol, params)

    job = client.submit(s)
    final = client.wait(job.id, timeout_s=90)
    values = client.result(job.id)

    assert state_name(final) == "succeeded", final.reason
    (value,) = values.values()
    expected = plaintext(consortium, s)
    if protocol == "mean":
        assert float(value) == pytest.approx(expected, rel=1e-6)  # fixed point, f >= 32 bits
    else:
        assert float(value) == pytest.approx(expected, abs=1e-9)  # exact integer arithmetic
    assert {p.party for p in final.parties} == {"grocery", "logistics", "helper"}
    assert all(p.progress.bytes_sent > 0 for p in final.parties)


def test_coordinator_stores_only_sealed_blobs(consortium: Consortium, client: Client) -> None:
    job = client.submit(spec("sum"))
    client.wait(job.id, timeout_s=90)

    blobs = consortium.coordinator.store.get_shares(job.id)

    assert set(blobs) == {"grocery", "logistics", "helper"}
    for blob, _signature in blobs.values():
        assert blob[:1] == b"\x01" and b"modulus" not in blob and b"share" not in blob


@pytest.mark.parametrize(
    ("bad", "error", "code", "needle"),
    [
        (spec("median"), errors.UnknownProtocol, grpc.StatusCode.NOT_FOUND, "median"),
        (
            spec(
                inputs=[
                    {"party": "bakery", "dataset": "x", "column": "y"},
                    {"party": "logistics", "dataset": "deliveries", "column": "fee"},
                ]
            ),
            errors.UnknownParty,
            grpc.StatusCode.NOT_FOUND,
            "bakery",
        ),
        (
            spec(
                inputs=[
                    {"party": "grocery", "dataset": "invoices", "column": "basket_total"},
                    {"party": "logistics", "dataset": "deliveries", "column": "fee"},
                ]
            ),
            errors.UnknownDataset,
            grpc.StatusCode.NOT_FOUND,
            "invoices",
        ),
        (
            spec(
                inputs=[
                    {"party": "grocery", "dataset": "orders", "column": "tip"},
                    {"party": "logistics", "dataset": "deliveries", "column": "fee"},
                ]
            ),
            errors.UnknownColumn,
            grpc.StatusCode.NOT_FOUND,
            "tip",
        ),
        (
            spec(
                inputs=[
                    {"party": "grocery", "dataset": "orders", "column": "zip"},
                    {"party": "logistics", "dataset": "deliveries", "column": "fee"},
                ]
            ),
            errors.ColumnTypeMismatch,
            grpc.StatusCode.FAILED_PRECONDITION,
            "string",
        ),
        (spec(helpers=[]), errors.NotEnoughParties, grpc.StatusCode.FAILED_PRECONDITION, "helper"),
        (
            spec(params={"min": "ten"}),
            errors.InvalidJobSpec,
            grpc.StatusCode.INVALID_ARGUMENT,
            "params.min",
        ),
    ],
    ids=["protocol", "party", "dataset", "column", "type", "threshold", "param"],
)
def test_invalid_job_is_refused_with_code_and_field(
    client: Client,
    bad: jobspec.JobSpec,
    error: type[errors.EnsnifError],
    code: grpc.StatusCode,
    needle: str,
) -> None:
    with pytest.raises(error) as info:
        client.submit(bad)

    assert info.value.code == code
    assert needle in info.value.message


def test_refused_job_leaves_no_trace(consortium: Consortium, client: Client) -> None:
    before = len(client.jobs(1000))

    with pytest.raises(errors.UnknownColumn):
        client.submit(
            spec(
                inputs=[
                    {"party": "grocery", "dataset": "orders", "column": "nope"},
                    {"party": "logistics", "dataset": "deliveries", "column": "fee"},
                ]
            )
        )

    assert len(client.jobs(1000)) == before


def test_result_of_unknown_job_is_not_found(client: Client) -> None:
    with pytest.raises(errors.UnknownJob):
        client.result("doesnotexist")


def test_node_policy_rejection_names_the_rule(consortium: Consortium, client: Client) -> None:
    node = consortium.nodes["grocery"].node
    original = node.datasets["orders"]
    from dataclasses import replace

    node.datasets["orders"] = replace(original, allowed_protocols=("count",))
    try:
        job = client.submit(spec("sum"))
        final = client.wait(job.id, timeout_s=60)
    finally:
        node.datasets["orders"] = original

    assert state_name(final) == "rejected"
    assert final.reason_code == "protocol_not_allowed"
    assert "grocery" in final.reason and "allows only count" in final.reason
    with pytest.raises(errors.ResultNotReady):
        client.result(job.id)


def test_csv_value_out_of_bounds_rejects_the_job(consortium: Consortium, client: Client) -> None:
    data = consortium.lc.data
    assert data is not None
    text = data.deliveries.read_text()
    lines = text.splitlines()
    cells = lines[3].split(",")
    cells[5] = "75.00"  # fee is declared within [0, 60]
    lines[3] = ",".join(cells)
    data.deliveries.write_text("\n".join(lines) + "\n")
    try:
        job = client.submit(spec("sum"))
        final = client.wait(job.id, timeout_s=60)
    finally:
        data.deliveries.write_text(text)

    assert state_name(final) == "rejected"
    assert final.reason_code == "data_out_of_schema"
    # Which line and column stay at the node (its log); the analyst learns the rule only.
    assert "line 4" not in final.reason and "75" not in final.reason
    assert "deliveries.csv" not in final.reason and "node's log" in final.reason


def test_csv_value_not_a_number_rejects_the_job(consortium: Consortium, client: Client) -> None:
    data = consortium.lc.data
    assert data is not None
    text = data.orders.read_text()
    lines = text.splitlines()
    cells = lines[2].split(",")
    cells[3] = "twelve"
    lines[2] = ",".join(cells)
    data.orders.write_text("\n".join(lines) + "\n")
    try:
        job = client.submit(spec("mean"))
        final = client.wait(job.id, timeout_s=60)
    finally:
        data.orders.write_text(text)

    assert state_name(final) == "rejected"
    # The reason reaches the analyst: never the cell's value, its line or the file's path.
    assert final.reason_code == "data_out_of_schema"
    assert "twelve" not in final.reason and "line 3" not in final.reason
    assert "orders.csv" not in final.reason


def test_cancel_while_awaiting_a_node_stops_the_job(consortium: Consortium, client: Client) -> None:
    helper = consortium.nodes["helper"]
    helper.server.stop(0).wait()  # the helper is unreachable: approval cannot complete
    try:
        job = client.submit(spec("sum"))
        cancelled = client.cancel(job.id)
        final = client.wait(job.id, timeout_s=30)
    finally:
        from ensnif_mpc.config import PartyConfig
        from party_node import server as node_server

        helper.stop(grace=0)
        cfg = PartyConfig.load(consortium.lc.root / "party-helper.toml")
        consortium.nodes["helper"] = node_server.start(cfg)
        assert consortium.nodes["helper"].registrar.registered.wait(15)

    assert state_name(cancelled) == "cancelled"
    assert state_name(final) == "cancelled"
    assert "cancelled by analyst" in final.reason
    for name in ("grocery", "logistics"):
        node_job = consortium.nodes[name].node.store.find(job.id)
        assert node_job is None or node_job.state in ("aborted", "rejected")


def test_a_share_swapped_by_the_coordinator_is_detected(
    consortium: Consortium, client: Client
) -> None:
    job = client.submit(spec("sum"))
    client.wait(job.id, timeout_s=90)
    store = consortium.coordinator.store
    shares = store.get_shares(job.id)
    helper_blob, helper_sig = shares["helper"]
    store.put_share(job.id, "grocery", helper_blob, helper_sig)  # a tampering coordinator

    with pytest.raises(errors.CryptoError, match="grocery"):
        client.result(job.id)


def test_a_share_missing_from_the_result_is_detected(
    consortium: Consortium, client: Client
) -> None:
    job = client.submit(spec("count"))
    client.wait(job.id, timeout_s=90)
    from sqlalchemy import delete

    from coordinator.store import ShareRow

    with consortium.coordinator.store.engine.begin() as conn:
        conn.execute(delete(ShareRow).where(ShareRow.job_id == job.id, ShareRow.party == "helper"))

    with pytest.raises(errors.CryptoError, match="shares came from"):
        client.result(job.id)
