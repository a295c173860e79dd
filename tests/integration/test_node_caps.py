"""An owner's per-job caps on groups and outputs (``max_groups``, ``max_outputs`` in a
dataset's policy), at its real node: refused before anything runs, naming the limit,
counted from the signed job (the same refusal whatever the data holds)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ensnif_mpc.data.schema import AccessPolicy
from ensnif_mpc.jobs import caps, jobspec
from protocols import registry
from tests.consortium import running_consortium
from tests.integration.test_node_policy import Owner


@pytest.fixture
def owner(tmp_path: Path) -> Iterator[Owner]:
    with running_consortium(tmp_path, mode="configs", rows=300) as consortium:
        yield Owner(consortium)


def group_spec(groups: list[str]) -> Any:
    return jobspec.from_dict(
        {
            "protocol": "group_by",
            "helpers": ["helper"],
            "params": {"groups": groups},
            "privacy": {"exact": True},
            "inputs": [
                {"party": "grocery", "dataset": "orders", "group": "zip", "column": "basket_total"},
                {"party": "logistics", "dataset": "deliveries", "group": "zip", "column": "fee"},
            ],
        }
    )


def test_a_job_over_the_group_or_output_cap_is_refused_naming_the_limit(owner: Owner) -> None:
    zips = [f"{10_000 + i}" for i in range(6)]
    owner.start(max_groups=5)
    job = owner.propose("many1", group_spec(zips))
    assert (job.state, job.reason_code) == ("rejected", "group_cap_exceeded"), job.reason
    assert "at most 5 groups per job (max_groups); this job lists 6" in job.reason
    assert owner.propose("few1", group_spec(zips[:5])).state == "approved"
    owner.stop()

    # group_by releases count, sum and mean per group: 3 × 4 = 12 outputs.
    assert caps.declared(registry.get("group_by"), {"groups": zips[:4]}, 2).outputs == 12
    owner.start(max_outputs=10)
    job = owner.propose("wide1", group_spec(zips[:4]))
    assert (job.state, job.reason_code) == ("rejected", "output_cap_exceeded"), job.reason
    assert "at most 10 outputs per job (max_outputs); this job asks for 12" in job.reason
    assert owner.propose("narrow1", group_spec(zips[:3])).state == "approved"


def test_the_default_caps_allow_ten_thousand_groups_and_refuse_more(owner: Owner) -> None:
    assert AccessPolicy().max_groups == caps.DEFAULT_MAX_GROUPS == 10_000
    owner.start()
    labels = [f"g{i}" for i in range(10_001)]
    job = owner.propose("huge1", group_spec(labels))
    assert (job.state, job.reason_code) == ("rejected", "group_cap_exceeded"), job.reason
    assert "at most 10000 groups" in job.reason
