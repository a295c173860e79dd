"""Identical repeated DP questions are answered from the earlier result at no privacy cost.

Real coordinator and nodes in this process over mTLS, real MPyC workers: the first
job spends ρ at each owner; the same question again (a new signature and nonce) is
served from the first job's shares, which the client checks are that job's and
answer the same question; `fresh` computes and spends again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import state_name
from tests.consortium import Consortium

pytestmark = [pytest.mark.slow, pytest.mark.consortium(rows=300)]


def sum_job(rho: float = 0.2) -> jobspec.JobSpec:
    return jobspec.from_dict(
        {
            "protocol": "sum",
            "helpers": ["helper"],
            "privacy": {"rho": rho},
            "inputs": [
                {"party": "grocery", "dataset": "orders", "column": "basket_total"},
                {"party": "logistics", "dataset": "deliveries", "column": "fee"},
            ],
        }
    )


def spent(consortium: Consortium) -> dict[str, float]:
    """ρ committed or reserved at each owner's own ledger (the authority)."""
    out = {}
    for name in ("grocery", "logistics"):
        (line,) = consortium.nodes[name].node.ledger.show()
        out[name] = float(line.spent + line.reserved)
    return out


def test_a_repeated_dp_question_is_served_from_the_cache_at_no_cost(consortium: Consortium) -> None:
    with consortium.client() as c:
        first = c.wait(c.submit(sum_job()).id, timeout_s=90)
        assert state_name(first) == "succeeded", first.reason
        after_first = spent(consortium)
        assert after_first == {"grocery": pytest.approx(0.2), "logistics": pytest.approx(0.2)}
        answer = c.result_details(first.id)

        again = c.submit(sum_job())  # a new nonce and signature: the same question
        assert state_name(again) == "succeeded" and again.cached_from == first.id
        repeated = c.result_details(again.id)
        assert repeated.values == answer.values and repeated.noise_sd == answer.noise_sd
        assert spent(consortium) == after_first  # no node was asked, nothing was charged
        assert not consortium.nodes["grocery"].node.store.find(again.id)

        other = c.wait(c.submit(sum_job(rho=0.1)).id, timeout_s=90)  # another release
        assert not other.cached_from and state_name(other) == "succeeded"
        # Jobs sharing a party are proposed in submission order: had the cached one been
        # sent to the nodes, grocery would have recorded it before this later job.
        assert not consortium.nodes["grocery"].node.store.find(again.id)
        fresh = c.wait(c.submit(sum_job(), fresh=True).id, timeout_s=90)
        assert not fresh.cached_from and state_name(fresh) == "succeeded"
    assert spent(consortium)["grocery"] == pytest.approx(0.2 + 0.1 + 0.2)


def test_exact_questions_are_never_cached(consortium: Consortium) -> None:
    spec = jobspec.from_dict(
        {**_exact(), "inputs": [i.to_dict() for i in sum_job().inputs], "helpers": ["helper"]}
    )
    with consortium.client() as c:
        a = c.wait(c.submit(spec).id, timeout_s=90)
        b = c.submit(spec)
        assert state_name(a) == "succeeded" and not b.cached_from
        c.wait(b.id, timeout_s=90)


def test_a_forged_cache_link_is_refused_by_the_client(
    consortium: Consortium, tmp_path: Path
) -> None:
    """A coordinator that links a job to another question's result is caught."""
    from ensnif_mpc.errors import CryptoError

    with consortium.client() as c:
        one = c.wait(c.submit(sum_job(rho=0.3)).id, timeout_s=90)
        two = c.wait(c.submit(sum_job(rho=0.4)).id, timeout_s=90)
        store = consortium.coordinator.store
        rec = store.get_job(two.id)
        store.update_job(two.id, session={**rec.session, "cached_from": one.id})
        with pytest.raises(CryptoError, match="another question"):
            c.result_details(two.id)


def _exact() -> dict[str, object]:
    return {"protocol": "sum", "privacy": {"exact": True}}
