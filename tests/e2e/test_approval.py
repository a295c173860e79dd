"""Manual approval with real processes: policy reload by SIGHUP, `ensnif job pending |
approve | reject` at the owner's node, a node restart while a job waits, and signed
approvals that `ensnif job status` verifies.
"""

from __future__ import annotations

import signal

import pytest

from ensnif_mpc.cli.demo_cmd import plaintext_answer
from ensnif_mpc.demo.localnet import LocalConsortium
from ensnif_mpc.jobs import jobspec
from tests.consortium import OwnerPolicy, write_policy
from tests.e2e.conftest import run_cli
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.consortium(rows=500)]


def _grocery_state(lc: LocalConsortium, job_id: str) -> str:
    r = run_cli(lc, "job", "status", job_id, "--json")
    assert r.code == 0, r.stderr
    parties = {p["party"]: p for p in r.json().get("parties", [])}
    return str(parties.get("grocery", {}).get("state", ""))


def test_manual_approval_survives_a_node_restart_and_is_signed(lc: LocalConsortium) -> None:
    config = lc.root / "party-grocery.toml"
    write_policy(lc.root, "grocery", OwnerPolicy(approval="manual"))
    proc = lc.members["grocery"].proc
    assert proc is not None
    proc.send_signal(signal.SIGHUP)  # reload the policy, no restart
    grocery_log = lc.root / "logs" / "grocery.log"
    wait_for(
        lambda: "reloaded its policies" in grocery_log.read_text(),
        15,
        lambda: f"grocery reloading its policies; its log ends:\n{grocery_log.read_text()[-2000:]}",
    )

    spec = jobspec.load(lc.root / "jobs" / "revenue-sum.toml")
    with lc.client() as c:
        job = c.submit(spec)
    wait_for(
        lambda: _grocery_state(lc, job.id) == "awaiting_approval",
        30,
        "the job awaiting approval at grocery",
    )

    node_cfg = str(config)
    pending = run_cli(lc, "job", "pending", "--config", node_cfg, "--json")
    assert pending.code == 0, pending.stderr
    assert [p["job_id"] for p in pending.json()["pending"]] == [job.id]
    manifest = run_cli(lc, "job", "pending", "--config", node_cfg, "--job", job.id)
    assert "threshold t = 1" in manifest.stdout and "reveals" in manifest.stdout

    lc.restart("grocery")  # the job waits in the node's own state across the restart
    lc.wait_ready(timeout_s=60)
    r = run_cli(lc, "job", "approve", job.id, "--config", node_cfg, "--as", "alice")
    assert r.code == 0, r.stderr

    with lc.client() as c:
        final = c.wait(job.id, timeout_s=90)
        values = c.result(job.id)
    status = run_cli(lc, "job", "status", job.id, "--json").json()
    assert status["state"] == "succeeded", status
    expected = plaintext_answer(lc, spec)
    assert float(values["sum"]) == pytest.approx(expected["sum"], abs=1e-6)
    checks = {a["party"]: (a["approver"], a["check"]) for a in status["approvals"]}
    assert checks["grocery"] == ("alice", "verified")
    assert checks["logistics"] == ("policy", "verified")
    assert final.id == job.id


def test_a_rejection_at_one_node_rejects_the_job_for_everyone(lc: LocalConsortium) -> None:
    spec = jobspec.load(lc.root / "jobs" / "revenue-sum.toml")
    with lc.client() as c:
        job = c.submit(spec)
    wait_for(
        lambda: _grocery_state(lc, job.id) == "awaiting_approval",
        30,
        "the job awaiting approval at grocery",
    )
    node_cfg = str(lc.root / "party-grocery.toml")
    r = run_cli(lc, "job", "reject", job.id, "--config", node_cfg, "--reason", "not this quarter")
    assert r.code == 0, r.stderr
    with lc.client() as c:
        final = c.wait(job.id, timeout_s=30)
    status = run_cli(lc, "job", "status", job.id, "--json").json()
    assert status["state"] == "rejected"
    assert status["reason_code"] == "rejected_by_owner"
    assert "not this quarter" in final.reason
