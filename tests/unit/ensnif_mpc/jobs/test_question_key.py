"""The same question asked again: the repeat limit's and the answer cache's key."""

from __future__ import annotations

from typing import Any

from ensnif_mpc.jobs import approvals, jobspec


def _spec(**params: Any) -> jobspec.JobSpec:
    return jobspec.from_dict(
        {
            "protocol": "intersection_sum",
            "helpers": ["h"],
            "params": params,
            "inputs": [
                {"party": "a", "dataset": "d", "key": "k", "value": "v"},
                {"party": "b", "dataset": "d", "key": "k"},
            ],
        }
    )


def test_how_many_parallel_sessions_run_it_does_not_make_another_question():
    one = approvals.question_key(_spec(), 1, "alice")

    assert approvals.question_key(_spec(sessions=4), 1, "alice") == one
    assert approvals.question_key(_spec(sessions=2), 1, "alice") == one


def test_what_it_asks_and_who_receives_it_do():
    one = approvals.question_key(_spec(), 1, "alice")

    assert approvals.question_key(_spec(), 1, "bob") != one
    assert approvals.question_key(_spec(), 2, "alice") != one
    assert approvals.question_key(_spec(join_path="prf-shuffle"), 1, "alice") != one
