"""The analyst's CLI, driven as a person or a script would, with its --json output parsed."""

from __future__ import annotations

import json

import pytest

from ensnif_mpc.cli.demo_cmd import plaintext_answer
from ensnif_mpc.demo.localnet import LocalConsortium
from ensnif_mpc.jobs import jobspec
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "job_file",
    ["revenue-sum.toml", "ticket-mean.toml", "big-tickets-count.toml", "shared-basket.toml"],
)
def test_submit_wait_json_matches_plaintext(lc: LocalConsortium, job_file: str) -> None:
    spec = jobspec.load(lc.root / "jobs" / job_file)

    res = run_cli(lc, "job", "submit", f"jobs/{job_file}", "--wait", "--json")

    assert res.code == 0, res.stderr
    body = res.json()
    assert body["job"]["state"] == "succeeded"
    expected = plaintext_answer(lc, spec)
    assert set(body["result"]["outputs"]) == set(expected)
    for name, out in body["result"]["outputs"].items():
        tolerance = 1e-6 * max(1.0, abs(expected[name])) if name == "mean" else 1e-9
        assert abs(out["value"] - expected[name]) <= tolerance


def test_list_status_watch_and_result_agree(lc: LocalConsortium) -> None:
    submitted = run_cli(lc, "job", "submit", "jobs/revenue-sum.toml", "--json")
    job_id = submitted.json()["job"]["id"]

    watched = run_cli(lc, "job", "watch", job_id, "--json")
    listed = run_cli(lc, "job", "list", "--json")
    status = run_cli(lc, "job", "status", job_id, "--json")
    result = run_cli(lc, "job", "result", job_id, "--json")

    assert watched.code == 0, watched.stderr
    lines = [json.loads(line) for line in watched.stdout.splitlines()]
    states = [line["state"] for line in lines]
    # The job may already have ended when the watch starts (it then prints it once); each
    # further line is a change, in lifecycle order, and the last is the final state.
    lifecycle = [
        "submitted",
        "validated",
        "awaiting_approval",
        "approved",
        "scheduled",
        "running",
        "succeeded",
    ]
    assert states[-1] == "succeeded"
    assert all(line["id"] == job_id for line in lines)
    assert [lifecycle.index(s) for s in states] == sorted(lifecycle.index(s) for s in states)
    assert all(a != b for a, b in zip(lines, lines[1:], strict=False))
    assert job_id in {j["id"] for j in listed.json()}
    assert status.json()["state"] == "succeeded"
    assert {p["party"] for p in status.json()["parties"]} == {"grocery", "logistics", "helper"}
    expected = plaintext_answer(lc, jobspec.load(lc.root / "jobs" / "revenue-sum.toml"))
    assert result.json()["outputs"]["sum"]["value"] == pytest.approx(expected["sum"], abs=1e-9)


def test_human_output_shows_a_result_line(lc: LocalConsortium) -> None:
    res = run_cli(lc, "job", "submit", "jobs/big-tickets-count.toml", "--wait")

    assert res.code == 0, res.stderr
    assert "count =" in res.stdout and "Traceback" not in res.stdout + res.stderr


def test_protocols_list_shows_inputs_outputs_and_leakage(lc: LocalConsortium) -> None:
    res = run_cli(lc, "protocols", "list", "--json")

    assert res.code == 0, res.stderr
    by_name = {p["name"]: p for p in res.json()}
    assert {"count", "sum", "mean"} <= set(by_name)
    for p in by_name.values():
        assert p["inputs"] and p["outputs"] and p["leakage"]


def test_parties_and_datasets_are_listed(lc: LocalConsortium) -> None:
    parties = run_cli(lc, "parties", "list", "--json").json()
    datasets = run_cli(lc, "datasets", "list", "--json").json()

    assert {p["name"]: p["role"] for p in parties} == {
        "grocery": "data_owner",
        "logistics": "data_owner",
        "helper": "compute",
    }
    assert {(d["party"], d["name"]) for d in datasets} == {
        ("grocery", "orders"),
        ("logistics", "deliveries"),
    }
    assert all(int(d["row_count"]) == 1500 for d in datasets)


def test_malformed_job_file_exits_2_with_json_error(lc: LocalConsortium) -> None:
    bad = lc.root / "bad.toml"
    bad.write_text('protocol = "sum"\n[[inputs]\nparty = "grocery"\n')

    res = run_cli(lc, "job", "submit", str(bad), "--json")

    assert res.code == 2
    err = json.loads(res.stderr)["error"]
    assert err["reason"] == "invalid_job_spec" and "not valid TOML" in err["message"]
    assert "Traceback" not in res.stderr


def test_unknown_column_is_one_clear_line(lc: LocalConsortium) -> None:
    bad = lc.root / "unknown-column.toml"
    bad.write_text(
        (lc.root / "jobs" / "revenue-sum.toml")
        .read_text()
        .replace('column = "fee"', 'column = "tip"')
    )

    res = run_cli(lc, "job", "submit", str(bad))

    assert res.code == 3
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "'tip'" in lines[0] and "unknown_column" in lines[0]


def test_result_of_unknown_job_exits_3(lc: LocalConsortium) -> None:
    res = run_cli(lc, "job", "result", "nosuchjob", "--json")

    assert res.code == 3
    assert json.loads(res.stderr)["error"]["reason"] == "unknown_job"


def test_missing_profile_is_a_clear_error(lc: LocalConsortium) -> None:
    res = run_cli(lc, "--profile", str(lc.root / "nope.toml"), "job", "list")

    assert res.code == 2
    assert "no client profile" in res.stderr and "Traceback" not in res.stderr


def test_dry_run_prints_the_privacy_cost_and_submits_nothing(lc: LocalConsortium) -> None:
    before = run_cli(lc, "job", "list", "--json").json()

    res = run_cli(lc, "job", "submit", "jobs/ticket-mean-dp.toml", "--dry-run", "--json")

    assert res.code == 0, res.stderr
    body = res.json()
    assert body["exact"] is False
    assert {c["dataset"] for c in body["charges"]} == {"grocery/orders", "logistics/deliveries"}
    assert all(c["rho"] == 0.05 for c in body["charges"])
    sums, counts = body["noise_blocks"]  # the mean is released as a noisy sum and count
    assert sums["rho"] == counts["rho"] == 0.025
    assert sums["noise_sd"] > counts["noise_sd"] > 0
    assert run_cli(lc, "job", "list", "--json").json() == before
    exact = run_cli(lc, "job", "submit", "jobs/revenue-sum.toml", "--dry-run", "--json").json()
    assert exact["exact"] is True and exact["noise_blocks"] == []


def test_budget_show_reads_the_nodes_own_ledger(lc: LocalConsortium) -> None:
    res = run_cli(lc, "job", "submit", "jobs/ticket-mean-dp.toml", "--wait", "--json")
    assert res.code == 0, res.stderr

    shown = run_cli(lc, "budget", "show", "--config", "party-grocery.toml", "--json")

    assert shown.code == 0, shown.stderr
    (orders,) = shown.json()["budgets"]
    assert orders["dataset"] == "orders"
    assert orders["spent_rho"] >= 0.05 and orders["reserved_rho"] == 0
    assert orders["remaining_rho"] == pytest.approx(orders["budget_rho"] - orders["spent_rho"])
