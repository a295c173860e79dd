"""Parallel MPC sessions through the real orchestration (protocols/partitions.py): a
consortium whose three nodes offer two sessions each (``parallel_sessions = 2``), the
analyst asking for ``params.sessions = 2``: the coordinator records k = 2, every node runs
two workers for the job, and the answer equals pandas'. A partition's worker killed at
one node mid-job ends the job for everyone with ``partition_failed`` and nothing
released; a job asking for sessions on a protocol that does not split is refused."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ensnif_mpc import errors
from ensnif_mpc.demo import sample_data
from ensnif_mpc.demo.localnet import NODES, LocalConsortium
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import state_name
from protocols import partitions, registry
from tests.consortium import Consortium, _start_in_process

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parallel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    lc = LocalConsortium(tmp_path_factory.mktemp("parallel"), rows=20_000).setup()
    for name in NODES:
        path = lc.root / f"party-{name}.toml"
        path.write_text("parallel_sessions = 2\n" + path.read_text())
    consortium = Consortium(lc)
    try:
        _start_in_process(consortium, None)
        yield consortium
    finally:
        consortium.stop()


def _join(params: dict[str, Any], protocol: str = "intersection_sum") -> jobspec.JobSpec:
    b: dict[str, Any] = {"party": "logistics", "dataset": "deliveries", "key": "customer_id"}
    return jobspec.from_dict(
        {
            "protocol": protocol,
            "helpers": ["helper"],
            "inputs": [
                {
                    "party": "grocery",
                    "dataset": "orders",
                    "key": "customer_id",
                    "value": "basket_total",
                },
                b,
            ],
            "params": params,
            "privacy": {"exact": True},
        }
    )


def _plaintext(consortium: Consortium, s: jobspec.JobSpec) -> dict[str, float]:
    data = consortium.lc.data
    assert data is not None
    files = {"orders": data.orders, "deliveries": data.deliveries}
    tables = [sample_data.read_table(files[i.dataset], i.columns) for i in s.inputs]
    return dict(registry.get(s.protocol).reference(tables, s.params))


def _job_dir(consortium: Consortium, party: str, job_id: str) -> Path:
    return consortium.nodes[party].node.cfg.state_dir / "jobs" / job_id


def test_intersection_sum_in_two_sessions_per_party_matches_pandas(parallel: Consortium) -> None:
    s = _join({"sessions": 2, "min": 5.0})
    with parallel.client() as client:
        job = client.submit(s)
        final = client.wait(job.id, timeout_s=180)
        assert state_name(final) == "succeeded", final.reason
        got = client.result(job.id, exact=True)
    want = _plaintext(parallel, s)
    assert got["keys"] == want["keys"] and got["rows"] == want["rows"]
    assert abs(float(got["sum"]) - want["sum"]) < 1e-6
    record = parallel.coordinator.scheduler.store.get_job(job.id)  # type: ignore[union-attr]
    assert record.session["sessions"] == 2
    for party in NODES:  # two sessions ran at every node, the per-session figures kept
        directory = _job_dir(parallel, party, job.id)
        assert len(partitions.sibling_dirs(directory)) == 1
        assert (directory / partitions.SESSIONS_FILE).exists()
    progress = {p.party: p.progress for p in final.parties}
    assert all(p.message.startswith("2 parallel sessions") for p in progress.values())


def test_a_killed_partition_ends_the_job_for_everyone_and_releases_nothing(
    parallel: Consortium,
) -> None:
    node = parallel.nodes["logistics"].node
    before = {line.dataset: line.spent for line in node.ledger.show()}
    with parallel.client() as client:
        job = client.submit(_join({"sessions": 2}))
        pid_file = _job_dir(parallel, "logistics", job.id) / "part1" / partitions.PID_FILE
        deadline = time.monotonic() + 120
        while not pid_file.exists():
            assert time.monotonic() < deadline, "the second session never started"
            time.sleep(0.005)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        final = client.wait(job.id, timeout_s=180)
        assert state_name(final) == "failed"
        assert final.reason_code == "partition_failed", (final.reason_code, final.reason)
        with pytest.raises(errors.EnsnifError):
            client.result(job.id)
    for party in NODES:
        assert not (_job_dir(parallel, party, job.id) / "result.sealed").exists()
    # As for any job that failed after its workers started: nothing stays reserved.
    lines = {line.dataset: line for line in node.ledger.show()}
    assert all(line.reserved == 0 for line in lines.values())
    assert set(before) == set(lines)


def test_sessions_for_a_protocol_that_does_not_split_are_refused() -> None:
    with pytest.raises(errors.EnsnifError) as caught:
        _join({"sessions": 2, "join_path": "prf-shuffle"})
    assert caught.value.reason == "sessions_not_partitionable"
    with pytest.raises(errors.EnsnifError) as caught:
        _join({"sessions": 2}, protocol="join_group_by")
    assert caught.value.reason == "sessions_not_partitionable"
    with pytest.raises(errors.EnsnifError) as bad:
        _join({"sessions": 0})
    assert bad.value.reason == "invalid_job_spec"


def test_one_session_when_the_request_or_a_node_offers_one(parallel: Consortium) -> None:
    with parallel.client() as client:
        job = client.submit(_join({}))
        final = client.wait(job.id, timeout_s=120)
        assert state_name(final) == "succeeded", final.reason
    record = parallel.coordinator.scheduler.store.get_job(job.id)  # type: ignore[union-attr]
    assert record.session["sessions"] == 1
    assert not partitions.sibling_dirs(_job_dir(parallel, "grocery", job.id))
