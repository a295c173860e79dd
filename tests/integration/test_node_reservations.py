"""What a node reserves for a proposal, and that it always gets it back.

Budget and an MPC port are reserved when a node admits a job. A job id the node cannot
store is refused before anything is reserved; any failure after a reservation gives
back all of it; a job approved and then aborted before it ran does not count toward the
owner's repeat limit (nothing was answered). Driven at the node's domain layer with real
certificates, the sample data and a real SQLite store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ensnif_mpc.data.schema import AccessPolicy
from ensnif_mpc.errors import InvalidArgument
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.privacy import dp
from ensnif_mpc.security.pki import Identity
from party_node.node import Node, Proposal
from tests.consortium import Consortium, running_consortium

COORDINATOR = Identity("coordinator", "coordinator")
ORDER = ["grocery", "logistics", "helper"]


def dp_sum(params: dict[str, Any] | None = None) -> Any:
    return jobspec.from_dict(
        {
            "protocol": "sum",
            "helpers": ["helper"],
            "params": params or {},
            "privacy": {"rho": 0.1},
            "inputs": [
                {"party": "grocery", "dataset": "orders", "column": "basket_total"},
                {"party": "logistics", "dataset": "deliveries", "column": "fee"},
            ],
        }
    )


@pytest.fixture
def consortium(tmp_path: Path) -> Iterator[Consortium]:
    with running_consortium(tmp_path, mode="configs", rows=50) as c:
        yield c


def grocery(consortium: Consortium, **policy: Any) -> Node:
    base = consortium.party_config("grocery")
    ds = tuple(
        dataclasses.replace(d, policy=AccessPolicy(**policy)) if d.name == "orders" else d
        for d in base.datasets
    )
    return consortium.node("grocery", datasets=ds)


def propose(consortium: Consortium, node: Node, job_id: str, s: Any = None) -> Any:
    pki = consortium.lc.pki_dir
    return node.propose(
        COORDINATOR,
        Proposal(
            job_id=job_id,
            spec=jobspec.sign(s or dp_sum(), (pki / "analyst.key").read_bytes(), 1),
            party_index=0,
            party_order=ORDER,
            analyst_cert_pem=(pki / "analyst.crt").read_text(),
            bit_length=160,
            decimals=2,
            release=dp.plan(0.1, [(1e9, 1)], 3, 1),  # a generous claimed sensitivity
        ),
    )


def reserved(node: Node) -> dict[str, Any]:
    return {line.dataset: line.reserved for line in node.ledger.show() if line.reserved}


@pytest.mark.parametrize("job_id", ["a" * 300, "a" * 65, "", "é1", "ab/cd", "x\x00y"])
def test_a_job_id_the_node_cannot_store_is_refused_before_anything_is_reserved(
    consortium: Consortium, job_id: str
) -> None:
    node = grocery(consortium)

    with pytest.raises(InvalidArgument, match="job id"):
        propose(consortium, node, job_id)

    assert reserved(node) == {}
    assert node.supervisor._reserved == set()
    assert node.store.find(job_id[:64]) is None


def test_a_failure_after_the_reservation_gives_back_budget_port_and_question(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = grocery(consortium, max_repeats=1, repeat_period_s=3600)

    def full_disk(job_id: str) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(node.workspace, "create", full_disk)
    job = propose(consortium, node, "disk1")

    assert (job.state, job.reason_code) == ("rejected", "resource_busy")
    assert reserved(node) == {}
    assert node.supervisor._reserved == set()
    monkeypatch.undo()
    assert propose(consortium, node, "disk2").state == "approved"  # the question never counted


def test_an_approved_job_aborted_before_it_ran_does_not_count_toward_the_repeat_limit(
    consortium: Consortium,
) -> None:
    node = grocery(consortium, max_repeats=1, repeat_period_s=3600)
    assert propose(consortium, node, "rep1").state == "approved"

    node.abort(COORDINATOR, "rep1", "another party refused")

    assert node.store.get("rep1").state == "aborted"
    assert reserved(node) == {}
    assert propose(consortium, node, "rep2").state == "approved"
    third = propose(consortium, node, "rep3")
    assert (third.state, third.reason_code) == ("rejected", "rate_limited")


def test_a_proposal_asked_again_while_the_first_runs_reserves_once(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The coordinator asks again when a Propose outlasts its call deadline (a slow source);
    # the first call may still be running at the node. Both must end in one reservation.
    import threading
    from concurrent.futures import ThreadPoolExecutor

    node = grocery(consortium)
    inside = threading.Event()
    release = threading.Event()
    slow_admit = node._admit

    def admit(*args: Any, **kwargs: Any) -> Any:
        inside.set()
        release.wait(10)  # the first call is still here when the second one arrives
        return slow_admit(*args, **kwargs)

    monkeypatch.setattr(node, "_admit", admit)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(propose, consortium, node, "again1")
        assert inside.wait(10)
        second = pool.submit(propose, consortium, node, "again1")
        release.set()
        answers = [first.result(20), second.result(20)]

    assert [a.state for a in answers] == ["approved", "approved"]
    assert answers[0].mpc_port == answers[1].mpc_port
    assert list(reserved(node)) == ["orders"]
    assert reserved(node)["orders"] == pytest.approx(0.1)
    assert len(node.supervisor._reserved) == 1
