"""The helper's admission for an outsourced dataset: the policy the owner signed in its
manifest (a real BFV-encrypted, ECDSA-signed dataset, read back as the node reads it) is
enforced, and the owner's budget is kept in the node's real ledger under <owner>/<dataset>:
reserved at approval, committed at opening, given back when nothing was opened."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ensnif_mpc.data.schema import Column
from ensnif_mpc.db import make_engine
from ensnif_mpc.errors import BudgetExhausted, EnsnifError
from ensnif_mpc.he import bfv, outsource_table as table
from ensnif_mpc.he.outsource_table import OutsourcedColumn
from ensnif_mpc.privacy.dp import ReleasePlan
from ensnif_mpc.security import pki
from party_node.ledger import Ledger
from party_node.outsourced_admission import OwnerPolicy, budget_caps, ledger_key

SIGNED = {
    "protocols": ["sum", "mean", "quantile"],  # quantile: not convertible, never allowed
    "exact_protocols": ["sum"],
    "budget_rho": 0.3,
    "max_rho": 0.2,
    "default_rho": 0.1,
}
EXACT = ReleasePlan(exact=True)


def _dp(rho: float) -> ReleasePlan:
    return ReleasePlan(exact=False, rho=rho)


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> OwnerPolicy:
    root = tmp_path_factory.mktemp("owner")
    pki.init_ca(root / "pki")
    owner = pki.issue(root / "pki", "smallshop", "analyst")
    key = bfv.keygen(root / "key")
    column = OutsourcedColumn(Column("amount", "float", 0.0, 1000.0, 2))
    values = np.random.default_rng(1).integers(0, 100_000, 30) / 100
    manifest, frames = table.encrypt_table(
        key, "payments", "smallshop", {"amount": values}, [column], SIGNED, "helper"
    )
    table.write(root / "up", key, manifest, frames, owner.key.read_bytes(), owner.cert.read_bytes())
    stored = table.open_stored(root / "up", (root / "pki" / "ca.crt").read_bytes())
    m = stored.manifest
    return OwnerPolicy.from_manifest(m.owner, m.dataset, m.policy)


@pytest.fixture
def ledger(policy: OwnerPolicy, tmp_path: Path) -> Ledger:
    # The node's own dataset happens to share the name: the owner's line is separate.
    caps = {"payments": Fraction(5)} | budget_caps([policy])
    return Ledger(make_engine(f"sqlite:///{tmp_path / 'node.db'}"), caps)


def test_the_signed_policy_decides_what_runs(policy: OwnerPolicy):
    assert policy.protocols == ("sum", "mean")
    assert policy.check("sum", EXACT) == {}  # exact allowed for sum: nothing charged
    assert policy.check("mean", _dp(0.2)) == {"smallshop/payments": Fraction(0.2)}
    refusals = {
        "count": ("count", _dp(0.1)),  # not in the owner's protocols
        "quantile": ("quantile", _dp(0.1)),  # signed, but not convertible
        "exact mean": ("mean", EXACT),
        "over max_rho": ("sum", _dp(0.25)),
    }
    reasons = {}
    for what, (protocol, release) in refusals.items():
        with pytest.raises(EnsnifError) as refused:
            policy.check(protocol, release)
        reasons[what] = refused.value.reason
    assert reasons == {
        "count": "protocol_not_allowed",
        "quantile": "protocol_not_allowed",
        "exact mean": "exact_not_allowed",
        "over max_rho": "rho_above_policy",
    }


def test_the_owners_budget_is_reserved_committed_and_released(policy, ledger):
    key = ledger_key("smallshop", "payments")
    ledger.reserve("job1", policy.check("sum", _dp(0.2)))
    with pytest.raises(BudgetExhausted):  # 0.2 reserved + 0.2 > the signed 0.3
        ledger.reserve("job2", policy.check("mean", _dp(0.2)))

    ledger.release("job1")  # owner_offline: nothing opened, nothing charged
    ledger.reserve("job2", policy.check("mean", _dp(0.2)))
    ledger.commit("job2")  # opened: spent for good

    lines = {b.dataset: b for b in ledger.show()}
    assert (lines[key].spent, lines[key].reserved) == (Fraction(0.2), 0)
    assert lines[key].remaining == Fraction(0.3) - Fraction(0.2)
    assert lines["payments"].spent == 0  # the node's own dataset is untouched
    with pytest.raises(BudgetExhausted):
        ledger.reserve("job3", policy.check("sum", _dp(0.15)))
