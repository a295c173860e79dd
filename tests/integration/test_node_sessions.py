"""A node's own checks on the session the coordinator hands it, and its watchdog.

These drive the node's domain layer directly (as its servicer does) with real
certificates, a real SQLite store and a real MPyC worker process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from ensnif_mpc import errors
from ensnif_mpc.demo.localnet import LocalConsortium, free_port
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.security import mpc_session
from ensnif_mpc.security.pki import Identity
from party_node.node import Node, Proposal
from tests.consortium import running_consortium
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

COORDINATOR = Identity("coordinator", "coordinator")
ORDER = ["grocery", "logistics", "helper"]
SPEC = jobspec.from_dict(
    {
        "protocol": "sum",
        "helpers": ["helper"],
        "privacy": {"exact": True},  # the sample policies allow it; the node checks both
        "inputs": [
            {"party": "grocery", "dataset": "orders", "column": "basket_total"},
            {"party": "logistics", "dataset": "deliveries", "column": "fee"},
        ],
    }
)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[LocalConsortium, Node]]:
    """Grocery's node alone, on a fresh state, with a short connect timeout."""
    with running_consortium(tmp_path, mode="configs", rows=200) as consortium:
        node = consortium.node(
            "grocery", connect_timeout_s=3.0, monitor_interval_s=0.1, start_monitor=True
        )
        yield consortium.lc, node


def signed(lc: LocalConsortium, spec: jobspec.JobSpec = SPEC) -> jobspec.JobSpec:
    """The spec as the analyst's client submits it: with a nonce, signed with its key."""
    return jobspec.sign(spec, (lc.pki_dir / "analyst.key").read_bytes(), 1)


def propose(lc: LocalConsortium, node: Node, job_id: str) -> None:
    job = node.propose(
        COORDINATOR,
        Proposal(
            job_id=job_id,
            spec=signed(lc),
            party_index=0,
            party_order=ORDER,
            analyst_cert_pem=(lc.pki_dir / "analyst.crt").read_text(),
            bit_length=48,
            decimals=2,
        ),
    )
    assert job.state == "approved", job.reason


def peers(lc: LocalConsortium, node: Node, job_id: str) -> list[mpc_session.PeerBinding]:
    own = node.store.get(job_id)
    out = [
        mpc_session.PeerBinding(
            0,
            "grocery",
            f"127.0.0.1:{own.mpc_port}",
            own.data["mpc_cert"],
            bytes.fromhex(own.data["binding_signature"]),
            (lc.pki_dir / "grocery.crt").read_text(),
        )
    ]
    for i, name in enumerate(ORDER[1:], start=1):
        cred = mpc_session.mint(job_id, i, (lc.pki_dir / f"{name}.key").read_bytes())
        out.append(
            mpc_session.PeerBinding(
                i,
                name,
                f"127.0.0.1:{free_port()}",
                cred.cert_pem,
                cred.binding_signature,
                (lc.pki_dir / f"{name}.crt").read_text(),
            )
        )
    return out


def test_peer_that_never_connects_fails_the_job_and_ends_the_worker(
    setup: tuple[LocalConsortium, Node],
) -> None:
    lc, node = setup
    propose(lc, node, "nevercome")

    node.start(COORDINATOR, "nevercome", peers(lc, node, "nevercome"), threshold=1)
    wait_for(
        lambda: node.store.get("nevercome").state not in ("starting", "running"),
        20,
        "the watchdog ending the job",
        interval=0.1,
    )

    job = node.store.get("nevercome")
    assert job.state == "failed"
    assert job.reason_code == "peer_connect_timeout" and "3s" in job.reason
    # Once connecting, the worker names whom it still waits for, and where
    # (protocols/worker.waiting_for), and the reason quotes it. (A worker still importing
    # under load when the 3 s are up has not tried to connect: nothing to name then.)
    from ensnif_mpc.jobs.worker_session import WorkerStatus

    last = WorkerStatus.read(node.workspace.path("nevercome"))
    if last is not None and last.phase == "connecting":
        assert last.message.startswith("waiting: ") and last.message in job.reason, job.reason
        assert "cannot reach" in last.message or "has not connected to this party's port" in (
            last.message
        )
    else:
        assert last is None or last.phase == "starting", last
    assert node.running_jobs() == 0
    assert not (node.workspace.path("nevercome") / ".config").exists()  # key material scrubbed
    assert "mpc_key" not in job.data


def test_session_with_a_lower_threshold_is_refused(setup: tuple[LocalConsortium, Node]) -> None:
    lc, node = setup
    propose(lc, node, "lowthreshold")

    with pytest.raises(errors.PolicyViolation, match="honest-majority"):
        node.start(COORDINATOR, "lowthreshold", peers(lc, node, "lowthreshold"), threshold=0)


def test_peer_binding_signed_by_the_wrong_party_is_refused(
    setup: tuple[LocalConsortium, Node],
) -> None:
    lc, node = setup
    propose(lc, node, "forged")
    ps = peers(lc, node, "forged")
    forged = mpc_session.mint("forged", 1, (lc.pki_dir / "helper.key").read_bytes())
    ps[1] = dataclasses.replace(
        ps[1], mpc_cert_pem=forged.cert_pem, binding_signature=forged.binding_signature
    )

    with pytest.raises(errors.CryptoError, match="logistics"):
        node.start(COORDINATOR, "forged", ps, threshold=1)
    assert node.store.get("forged").state == "approved"


def test_session_replacing_this_nodes_certificate_is_refused(
    setup: tuple[LocalConsortium, Node],
) -> None:
    lc, node = setup
    propose(lc, node, "swapped")
    ps = peers(lc, node, "swapped")
    other = mpc_session.mint("swapped", 0, (lc.pki_dir / "grocery.key").read_bytes())
    ps[0] = dataclasses.replace(
        ps[0], mpc_cert_pem=other.cert_pem, binding_signature=other.binding_signature
    )

    with pytest.raises(errors.CryptoError, match="never issued"):
        node.start(COORDINATOR, "swapped", ps, threshold=1)


def test_only_the_configured_coordinator_may_propose(setup: tuple[LocalConsortium, Node]) -> None:
    lc, node = setup
    with pytest.raises(errors.PermissionDenied):
        node.propose(
            Identity("logistics", "party"),
            Proposal(
                job_id="x1",
                spec=SPEC,
                party_index=0,
                party_order=ORDER,
                analyst_cert_pem="",
                bit_length=48,
                decimals=2,
            ),
        )


def test_results_may_not_be_sealed_to_a_non_analyst(setup: tuple[LocalConsortium, Node]) -> None:
    lc, node = setup
    job = node.propose(
        COORDINATOR,
        Proposal(
            job_id="badanalyst",
            spec=SPEC,
            party_index=0,
            party_order=ORDER,
            analyst_cert_pem=(lc.pki_dir / "coordinator.crt").read_text(),
            bit_length=48,
            decimals=2,
        ),
    )

    assert job.state == "rejected"
    assert job.reason_code == "untrusted_analyst"


def test_proposal_is_idempotent(setup: tuple[LocalConsortium, Node]) -> None:
    lc, node = setup
    propose(lc, node, "twice")
    first = node.store.get("twice")

    propose(lc, node, "twice")

    again = node.store.get("twice")
    assert (again.mpc_port, again.data["mpc_cert"]) == (first.mpc_port, first.data["mpc_cert"])


def test_node_refuses_a_two_party_session_itself(setup: tuple[LocalConsortium, Node]) -> None:
    lc, node = setup
    two = jobspec.from_dict(
        {
            "protocol": "sum",
            "inputs": [
                {"party": "grocery", "dataset": "orders", "column": "basket_total"},
                {"party": "logistics", "dataset": "deliveries", "column": "fee"},
            ],
        }
    )

    job = node.propose(
        COORDINATOR,
        Proposal(
            job_id="pair",
            spec=two,
            party_index=0,
            party_order=["grocery", "logistics"],
            analyst_cert_pem=(lc.pki_dir / "analyst.crt").read_text(),
            bit_length=48,
            decimals=2,
        ),
    )

    assert job.state == "rejected"
    assert job.reason_code == "not_enough_parties" and "t = 0" in job.reason


def _offer(lc: LocalConsortium, node: Node, job_id: str, spec: jobspec.JobSpec):
    return node.propose(COORDINATOR, _proposal(lc, job_id, spec))


def test_a_job_altered_after_signing_is_refused(setup: tuple[LocalConsortium, Node]) -> None:
    lc, node = setup
    original = signed(lc)
    # What a malicious coordinator might do: widen the filter, keep the signature.
    tampered = dataclasses.replace(original, params={"min": 0, "max": 500})

    job = _offer(lc, node, "tampered", tampered)

    assert job.state == "rejected"
    assert job.reason_code == "bad_job_signature"
    assert "altered after the submitter signed it" in job.reason
    assert _offer(lc, node, "honest", original).state == "approved"


def test_an_unsigned_job_is_refused(setup: tuple[LocalConsortium, Node]) -> None:
    lc, node = setup
    job = _offer(lc, node, "unsigned", SPEC)
    assert job.state == "rejected" and job.reason_code == "unsigned_job"


def test_a_signed_job_signed_by_another_member_is_refused(
    setup: tuple[LocalConsortium, Node],
) -> None:
    lc, node = setup
    # Signed with the logistics node's key but presented as the analyst's job.
    forged = jobspec.sign(SPEC, (lc.pki_dir / "logistics.key").read_bytes(), 1)
    job = _offer(lc, node, "forged", forged)
    assert job.state == "rejected" and job.reason_code == "bad_job_signature"


def test_a_signed_job_replayed_under_a_new_id_is_refused(
    setup: tuple[LocalConsortium, Node],
) -> None:
    lc, node = setup
    spec = signed(lc)
    assert _offer(lc, node, "first", spec).state == "approved"

    again = _offer(lc, node, "replay", spec)

    assert again.state == "rejected"
    assert again.reason_code == "replayed_job" and "first" in again.reason


def test_a_release_other_than_the_signed_one_is_refused(
    setup: tuple[LocalConsortium, Node],
) -> None:
    from ensnif_mpc.privacy import dp

    lc, node = setup
    # The analyst signed an exact release; a coordinator swaps in a DP plan (or the reverse).
    swapped = dataclasses.replace(
        _proposal(lc, "swap", signed(lc)), release=dp.plan(0.1, [(50_000.0, 1)], 3, 1)
    )
    job = node.propose(COORDINATOR, swapped)
    assert job.state == "rejected" and job.reason_code == "release_mismatch"

    dp_spec = signed(lc, dataclasses.replace(SPEC, privacy=jobspec.Privacy(rho=0.1)))
    cheap = dp.plan(0.1, [(1.0, 1)], 3, 1)  # sensitivity understated: far too little noise
    job = node.propose(
        COORDINATOR, dataclasses.replace(_proposal(lc, "cheap", dp_spec), release=cheap)
    )
    assert job.state == "rejected" and job.reason_code == "sensitivity_understated"

    greedy_spec = signed(lc, dataclasses.replace(SPEC, privacy=jobspec.Privacy(rho=5.0)))
    greedy = dp.plan(5.0, [(110_000.0, 1)], 3, 1)
    job = node.propose(
        COORDINATOR, dataclasses.replace(_proposal(lc, "greedy", greedy_spec), release=greedy)
    )
    assert job.state == "rejected" and job.reason_code == "rho_above_policy"


def _proposal(lc: LocalConsortium, job_id: str, spec: jobspec.JobSpec) -> Proposal:
    return Proposal(
        job_id=job_id,
        spec=spec,
        party_index=0,
        party_order=ORDER,
        analyst_cert_pem=(lc.pki_dir / "analyst.crt").read_text(),
        bit_length=96,
        decimals=2,
    )


def test_an_approved_job_that_never_starts_gives_its_port_back(
    setup: tuple[LocalConsortium, Node],
) -> None:
    lc, node = setup
    node.cfg = dataclasses.replace(node.cfg, start_timeout_s=0.5)  # the coordinator is gone
    propose(lc, node, "orphan")
    port = node.store.get("orphan").mpc_port

    wait_for(
        lambda: node.store.get("orphan").state != "approved",
        10,
        "the approval expiring",
        interval=0.1,
    )

    job = node.store.get("orphan")
    assert job.state == "aborted" and job.reason_code == "start_timeout"
    assert port not in node.store.ports_in_use()
    assert "mpc_key" not in job.data


def test_a_worker_handed_a_job_that_ended_meanwhile_is_stopped(
    setup: tuple[LocalConsortium, Node], tmp_path: Path
) -> None:
    """The Start call hands the job to a worker after committing its session; an abort that
    lands between the two ends the job first. The worker it then hands over is stopped, never
    left running untracked."""
    import os
    import signal

    from ensnif_mpc.jobs.worker_session import SESSION_FILE

    lc, node = setup
    propose(lc, node, "endedmeanwhile")
    node.abort(COORDINATOR, "endedmeanwhile", "cancelled by the analyst")
    blocked = tmp_path / "blocked"  # a live worker: it blocks reading its session (a FIFO)
    blocked.mkdir()
    os.mkfifo(blocked / SESSION_FILE)
    handle = node.supervisor.executor.launch(blocked)

    node.supervisor._launched("endedmeanwhile", handle)

    assert handle.wait(timeout=10) == -signal.SIGTERM
    assert node.running_jobs() == 0
    assert node.store.get("endedmeanwhile").state == "aborted"
