"""A model released to a named member (keep = "to:<member>"): which members may receive
it, that a DP release may, and that the member is the policy's recipient."""

from __future__ import annotations

import pytest

from ensnif_mpc.errors import InvalidJobSpec
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.jobs.protocol import member_recipient
from protocols.models import keep


def _spec(keep_value, exact=True):
    raw = {
        "protocol": "linear_regression",
        "inputs": [
            {"party": "grocery", "dataset": "d", "features": ["x1", "x2"], "label": "y"},
            {"party": "logistics", "dataset": "d", "features": ["x1", "x2"], "label": "y"},
        ],
        "helpers": ["city"],
        "params": {"keep": keep_value},
        "privacy": {"exact": True} if exact else {"epsilon": 1.0},
    }
    return jobspec.from_dict(raw)


def test_a_data_owner_of_the_job_may_receive_the_model_exact_or_dp():
    keep.check_keep(_spec("to:logistics"))
    keep.check_keep(_spec("to:grocery", exact=False))

    assert member_recipient({"keep": "to:logistics"}) == "logistics"
    assert member_recipient({"keep": "release"}) is None
    assert member_recipient({"keep": "artifact"}) is None
    assert member_recipient({}) is None


@pytest.mark.parametrize("who", ["city", "someone", ""])
def test_a_helper_or_a_stranger_may_not(who):
    with pytest.raises(InvalidJobSpec) as info:
        keep.check_keep(_spec(f"to:{who}"))

    assert "not a data owner of this job" in info.value.message


def test_other_values_are_refused_and_artifacts_stay_exact_only():
    with pytest.raises(InvalidJobSpec):
        keep.check_keep(_spec("everyone"))
    with pytest.raises(InvalidJobSpec):
        keep.check_keep(_spec("artifact", exact=False))
    keep.check_keep(_spec("artifact"))
    keep.check_keep(_spec("release", exact=False))
