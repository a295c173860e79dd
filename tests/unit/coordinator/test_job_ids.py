"""Job ids travel through JSON, YAML, CSV exports and Airflow's XComs: none may read as a number."""

from __future__ import annotations

import json
import re

import pytest

from coordinator.handlers import new_job_id
from ensnif_mpc.jobs.checks import check_job_id


def _reads_as_number(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        pass
    else:
        return not isinstance(value, str)
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_the_check_sees_the_ids_that_broke_airflow() -> None:
    # Twelve hex digits as the coordinator drew them before: these read as inf and as an int.
    assert _reads_as_number("68403e193805") and _reads_as_number("140823590017")


def test_no_fresh_id_reads_as_a_number_and_each_is_a_valid_job_id() -> None:
    ids = [new_job_id() for _ in range(20_000)]

    assert not [i for i in ids if _reads_as_number(i)]
    assert all(re.fullmatch(r"[a-f][0-9a-f]{11}", i) for i in ids)
    for job_id in ids[:100]:
        check_job_id(job_id)
    # About 46 bits each: 20,000 draws collide with probability under 1e-5.
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("position", range(12))
def test_every_digit_after_the_first_varies(position: int) -> None:
    seen = {new_job_id()[position] for _ in range(2_000)}

    assert seen == set("abcdef" if position == 0 else "0123456789abcdef")
