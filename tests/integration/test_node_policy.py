"""A data owner's declarative policy and manual approval, at its node.

Drives the node's domain layer as its servicer does, with real certificates, the
real sample data on disk and a real SQLite store; the administrator's side is the
same code `ensnif job approve|reject` runs (party_node.admin).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ensnif_mpc.data.schema import AccessPolicy
from ensnif_mpc.errors import FailedPrecondition, InvalidConfig
from ensnif_mpc.jobs import approvals, jobspec
from ensnif_mpc.security.pki import Identity
from party_node import admin
from party_node.node import Node, Proposal
from tests.consortium import Consortium, running_consortium
from tests.helpers import wait_for

COORDINATOR = Identity("coordinator", "coordinator")
ORDER = ["grocery", "logistics", "helper"]


def spec(protocol: str = "sum", params: dict[str, Any] | None = None, **roles: str) -> Any:
    return jobspec.from_dict(
        {
            "protocol": protocol,
            "helpers": ["helper"],
            "params": params or {},
            "privacy": {"exact": True},
            "inputs": [
                {"party": "grocery", "dataset": "orders", **(roles or {"column": "basket_total"})},
                {"party": "logistics", "dataset": "deliveries", "column": "fee"},
            ],
        }
    )


class Owner:
    """The grocery node with a policy the test chooses, restartable on the same state."""

    def __init__(self, consortium: Consortium) -> None:
        self.consortium = consortium
        self.lc = consortium.lc
        self.base = consortium.party_config("grocery")
        self.node: Node | None = None

    def start(self, **policy: Any) -> Node:
        ds = [
            dataclasses.replace(d, policy=AccessPolicy(**policy)) if d.name == "orders" else d
            for d in self.base.datasets
        ]
        self.node = self.consortium.node(
            "grocery",
            datasets=tuple(ds),
            approval_timeout_s=60,
            monitor_interval_s=0.05,
            start_monitor=True,
        )
        return self.node

    def stop(self) -> None:
        if self.node is not None:
            self.consortium.close(self.node)
            self.node = None

    def propose(self, job_id: str, s: Any = None, signed: Any = None, analyst: str = "analyst"):
        assert self.node is not None
        pki = self.lc.pki_dir
        if signed is None:
            signed = jobspec.sign(s or spec(), (pki / f"{analyst}.key").read_bytes(), 1)
        return self.node.propose(
            COORDINATOR,
            Proposal(
                job_id=job_id,
                spec=signed,
                party_index=0,
                party_order=ORDER,
                analyst_cert_pem=(pki / f"{analyst}.crt").read_text(),
                bit_length=64,
                decimals=2,
            ),
        )


@pytest.fixture
def owner(tmp_path: Path) -> Iterator[Owner]:
    with running_consortium(tmp_path, mode="configs", rows=300) as consortium:
        yield Owner(consortium)


def test_columns_recipients_and_protocols_are_enforced_with_the_rule_named(owner: Owner) -> None:
    owner.start(columns=("customer_id",))
    job = owner.propose("cols1")
    assert (job.state, job.reason_code) == ("rejected", "column_not_allowed")
    assert "read only customer_id; this job reads basket_total" in job.reason
    owner.stop()

    owner.start(recipients=("auditor",))
    job = owner.propose("recip1")
    assert (job.state, job.reason_code) == ("rejected", "recipient_not_allowed")
    assert "not to 'analyst'" in job.reason
    owner.stop()

    owner.start()
    assert owner.propose("fine1").state == "approved"  # no policy table: as before


def test_a_model_released_to_a_member_is_judged_with_that_member_as_the_recipient(
    owner: Owner,
) -> None:
    """keep = "to:<member>" (a model released to one of the job's data owners): the
    recipients rule judges that member, not the analyst who submitted the job."""

    def regression(to: str) -> Any:
        return jobspec.from_dict(
            {
                "protocol": "linear_regression",
                "helpers": ["helper"],
                "params": {"keep": f"to:{to}"},
                "privacy": {"exact": True},
                "inputs": [
                    {
                        "party": "grocery",
                        "dataset": "orders",
                        "features": ["basket_total"],
                        "label": "basket_total",
                    },
                    {
                        "party": "logistics",
                        "dataset": "deliveries",
                        "features": ["distance_km"],
                        "label": "fee",
                    },
                ],
            }
        )

    owner.start(recipients=("analyst",))
    job = owner.propose("member1", regression("logistics"))
    assert (job.state, job.reason_code) == ("rejected", "recipient_not_allowed")
    assert "not to 'logistics'" in job.reason
    owner.stop()

    owner.start(recipients=("logistics",))
    assert owner.propose("member2", regression("logistics")).state == "approved"
    job = owner.propose("member3", regression("grocery"))
    assert (job.state, job.reason_code) == ("rejected", "recipient_not_allowed")


def test_min_cohort_refuses_a_selection_of_too_few_rows(owner: Owner) -> None:
    orders = pd.read_csv(owner.lc.data.orders)
    top = float(np.sort(orders["basket_total"].to_numpy())[-3])  # 3 rows at or above
    owner.start(min_cohort=5)
    job = owner.propose("small1", spec(params={"min": top}))
    assert (job.state, job.reason_code) == ("rejected", "cohort_too_small"), job.reason
    assert owner.propose("large1", spec(params={"min": 1.0})).state == "approved"


def test_the_same_question_is_answered_at_most_max_repeats_times(owner: Owner) -> None:
    owner.start(max_repeats=2, repeat_period_s=3600)
    assert owner.propose("rep1").state == "approved"
    assert owner.propose("rep2").state == "approved"  # same question, fresh nonce
    third = owner.propose("rep3")
    assert (third.state, third.reason_code) == ("rejected", "rate_limited")
    assert "at most 2 times per hour" in third.reason
    other = owner.propose("rep4", spec(params={"min": 1.0}))  # a different question
    assert other.state == "approved"


def test_manual_approval_waits_then_runs_with_a_signed_approval(owner: Owner) -> None:
    node = owner.start(approval="manual")
    signed = jobspec.sign(spec(), (owner.lc.pki_dir / "analyst.key").read_bytes(), 1)
    job = owner.propose("man1", signed=signed)
    assert job.state == "awaiting_approval" and job.mpc_port == 0
    assert node.ledger.show()  # nothing reserved while a person decides
    waiting = admin.pending(node.store)
    assert [p.job_id for p in waiting] == ["man1"]
    m = waiting[0].manifest
    assert m["threshold"] == 1 and m["parties"] == ORDER and m["protocol"] == "sum"
    assert "a single party learns nothing" in m["security"]

    assert owner.propose("man1", signed=signed).state == "awaiting_approval"  # asked again
    decision = admin.decide(node.cfg, node.store, "man1", "approved", "alice")
    job = owner.propose("man1", signed=signed)
    assert job.state == "approved" and job.mpc_port > 0
    cert = (owner.lc.pki_dir / "grocery.crt").read_text()
    ca = (owner.lc.pki_dir / "ca.crt").read_bytes()
    approvals.verify(decision, cert, ca, "grocery")
    assert decision.job_hash == approvals.job_hash(signed, 1, "man1")
    with pytest.raises(FailedPrecondition, match="not awaiting approval"):
        admin.decide(node.cfg, node.store, "man1", "rejected", "bob", "too late")


def test_an_approval_binds_the_exact_job(owner: Owner) -> None:
    """The coordinator cannot get an approved job id to run another spec."""
    node = owner.start(approval="manual")
    assert owner.propose("bind1").state == "awaiting_approval"
    admin.decide(node.cfg, node.store, "bind1", "approved", "alice")
    job = owner.propose("bind1", spec(params={"min": 1.0}))
    assert (job.state, job.reason_code) == ("rejected", "approval_mismatch")


def test_a_rejection_ends_the_job_with_the_administrators_reason(owner: Owner) -> None:
    node = owner.start(approval="manual")
    assert owner.propose("rej1").state == "awaiting_approval"
    admin.decide(node.cfg, node.store, "rej1", "rejected", "bob", "not this quarter")
    wait_for(
        lambda: node.store.get("rej1").state != "awaiting_approval", 5, "the job leaving the wait"
    )
    job = node.store.get("rej1")
    assert (job.state, job.reason_code) == ("rejected", "rejected_by_owner")
    assert job.reason == "rejected by bob: not this quarter"

    def events() -> list[str]:
        return [r[2] for r in node.store.audit_rows()]

    # the transition's audit record is appended just after the state change is visible
    wait_for(lambda: "job_rejected" in events(), 5, lambda: f"a job_rejected record in {events()}")
    assert "approval_rejected" in events()


def test_a_waiting_job_survives_a_node_restart(owner: Owner) -> None:
    owner.start(approval="manual")
    signed = jobspec.sign(spec(), (owner.lc.pki_dir / "analyst.key").read_bytes(), 1)
    assert owner.propose("rst1", signed=signed).state == "awaiting_approval"
    owner.stop()
    node = owner.start(approval="manual")
    assert node.store.get("rst1").state == "awaiting_approval"
    admin.decide(node.cfg, node.store, "rst1", "approved", "alice")
    owner.stop()
    owner.start(approval="manual")
    assert owner.propose("rst1", signed=signed).state == "approved"


def test_an_unanswered_job_expires(owner: Owner) -> None:
    node = owner.start(approval="manual")
    node.cfg = dataclasses.replace(node.cfg, approval_timeout_s=0.2)
    assert owner.propose("exp1").state == "awaiting_approval"
    wait_for(lambda: node.store.get("exp1").state != "awaiting_approval", 5, "the job expiring")
    assert node.store.get("exp1").reason_code == "approval_timeout"


def test_reload_applies_new_policies_and_refuses_restart_only_changes(owner: Owner) -> None:
    node = owner.start()
    assert owner.propose("rl1").state == "approved"
    stricter = dataclasses.replace(
        node.cfg,
        datasets=tuple(
            dataclasses.replace(d, policy=AccessPolicy(recipients=("auditor",)))
            for d in node.cfg.datasets
        ),
    )
    node.reload(stricter)
    assert owner.propose("rl2").reason_code == "recipient_not_allowed"
    with pytest.raises(InvalidConfig, match="restart"):
        node.reload(dataclasses.replace(stricter, mpc_ports=(1, 2)))
    assert [r for r in node.store.audit_rows() if r[2] == "policy_reloaded"]


def test_a_person_with_more_rows_than_declared_is_bounded_not_refused(owner: Owner) -> None:
    """rows_per_person with person_column bounds contributions at the owner (a refusal
    would tell the analyst the exact maximum): the job is admitted with the bound."""
    from ensnif_mpc.privacy import dp

    orders = pd.read_csv(owner.lc.data.orders)
    most = int(orders["customer_id"].value_counts().max())
    assert most > 1  # the sample has repeat customers
    dp_spec = jobspec.from_dict(
        {**_raw(spec()), "privacy": {"rho": 0.1}},
    )
    release = dp.plan(0.1, [(1e9, 1)], 3, 1)  # a generous claimed sensitivity

    def propose_dp(job_id: str, rows_per_person: int) -> Any:
        node = owner.start()
        ds = [
            dataclasses.replace(
                d,
                privacy=dataclasses.replace(
                    d.privacy, person_column="customer_id", rows_per_person=rows_per_person
                ),
            )
            for d in node.cfg.datasets
        ]
        node.reload(dataclasses.replace(node.cfg, datasets=tuple(ds)))
        signed = jobspec.sign(dp_spec, (owner.lc.pki_dir / "analyst.key").read_bytes(), 1)
        job = node.propose(
            COORDINATOR,
            Proposal(
                job_id=job_id,
                spec=signed,
                party_index=0,
                party_order=ORDER,
                analyst_cert_pem=(owner.lc.pki_dir / "analyst.crt").read_text(),
                bit_length=160,
                decimals=2,
                release=release,
            ),
        )
        owner.stop()
        return job

    job = propose_dp("pp1", 1)
    assert job.state == "approved", job.reason
    assert job.data["input"]["bound"] == ["customer_id", 1]
    assert propose_dp("pp2", most).data["input"]["bound"] == ["customer_id", most]


def _raw(s: Any) -> dict[str, Any]:
    return {
        "protocol": s.protocol,
        "helpers": list(s.helpers),
        "params": s.params,
        "inputs": [i.to_dict() for i in s.inputs],
    }
