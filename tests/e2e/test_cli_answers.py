"""Answers that are easy to use: result formats, intervals on every DP number, the catalog's
plain JSON, watch's changes, the dry run's noised outputs, a cached answer that says so;
and a job built in Python (no TOML) read as a DataFrame."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from ensnif_mpc.demo.localnet import LocalConsortium
from ensnif_mpc.sdk import dataset_input, job_spec
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.slow

METHODS = {"exact", "simulation", "none"}


@pytest.fixture(scope="module")
def dp_mean_job(lc: LocalConsortium) -> str:
    res = run_cli(lc, "job", "submit", "jobs/ticket-mean-dp.toml", "--wait", "--json")
    assert res.code == 0, res.stderr
    return str(res.json()["job"]["id"])


def test_result_formats_agree_and_every_dp_output_has_an_interval(
    lc: LocalConsortium, dp_mean_job: str, tmp_path: Path
) -> None:
    as_json = run_cli(lc, "job", "result", dp_mean_job, "--format", "json").json()
    legacy = run_cli(lc, "job", "result", dp_mean_job, "--json").json()
    csv = run_cli(lc, "job", "result", dp_mean_job, "--format", "csv")
    parquet = tmp_path / "result.parquet"
    wrote = run_cli(lc, "job", "result", dp_mean_job, "--format", "parquet", "-o", str(parquet))
    table = run_cli(lc, "job", "result", dp_mean_job)

    assert legacy == as_json
    outputs = as_json["outputs"]
    assert set(outputs) == {"mean", "sum", "count"}
    for out in outputs.values():
        assert out["ci95_lower"] <= out["value"] <= out["ci95_upper"]
        assert out["noise_sd"] > 0 and out["interval_method"] in METHODS
    assert outputs["mean"]["interval_method"] == "simulation"
    assert outputs["count"]["interval_method"] == "exact"
    frame = pd.read_csv(io.StringIO(csv.stdout))
    assert wrote.code == 0, wrote.stderr
    from_parquet = pd.read_parquet(parquet)
    for f in (frame, from_parquet):
        assert list(f.columns) == [
            "output",
            "value",
            "noise_sd",
            "ci95_lower",
            "ci95_upper",
            "interval_method",
        ]
        by_output = f.set_index("output")
        for name, out in outputs.items():
            assert by_output.loc[name, "value"] == pytest.approx(out["value"])
            assert by_output.loc[name, "ci95_upper"] == pytest.approx(out["ci95_upper"])
    assert table.code == 0 and "simulation" in table.stdout and "exact" in table.stdout


def test_a_dp_mean_of_non_negative_values_stays_within_the_declared_bounds(
    lc: LocalConsortium, dp_mean_job: str
) -> None:
    outputs = run_cli(lc, "job", "result", dp_mean_job, "--json").json()["outputs"]

    # basket_total in [0, 500] and fee in [0, 60]: a mean in [0, 500], a count and sum >= 0
    assert 0 <= outputs["mean"]["ci95_lower"] <= outputs["mean"]["ci95_upper"] <= 500
    assert outputs["count"]["ci95_lower"] >= 0 and outputs["sum"]["ci95_lower"] >= 0


def test_datasets_list_json_has_plain_types_numbers_and_zero_bounds(lc: LocalConsortium) -> None:
    datasets = run_cli(lc, "datasets", "list", "--json").json()

    orders = next(d for d in datasets if d["name"] == "orders")
    columns = {c["name"]: c for c in orders["columns"]}
    assert isinstance(orders["row_count"], int) and orders["row_count"] == 1500
    assert {c["type"] for c in orders["columns"]} <= {"int", "float", "string"}
    assert columns["basket_total"] == {
        "name": "basket_total",
        "type": "float",
        "lower": 0.0,
        "upper": 500.0,
        "decimals": 2,
    }
    assert isinstance(orders["policy"]["budget_rho"], float)


def test_watch_json_emits_the_job_then_only_its_changes(lc: LocalConsortium) -> None:
    submitted = run_cli(lc, "job", "submit", "jobs/revenue-sum.toml", "--json")
    job_id = submitted.json()["job"]["id"]

    watched = run_cli(lc, "job", "watch", job_id, "--json")

    assert watched.code == 0, watched.stderr
    lines = [json.loads(line) for line in watched.stdout.splitlines()]
    assert "spec" in lines[0]  # the whole job once
    assert all("spec" not in line for line in lines[1:])  # then what changed
    assert all(line["id"] == job_id and line["state"] for line in lines)
    assert lines[-1]["state"] == "succeeded"
    assert len({json.dumps(line, sort_keys=True) for line in lines}) == len(lines)


def test_the_dry_run_names_each_noised_output(lc: LocalConsortium) -> None:
    body = run_cli(lc, "job", "submit", "jobs/ticket-mean-dp.toml", "--dry-run", "--json").json()
    human = run_cli(lc, "job", "submit", "jobs/minutes-by-zip-dp.toml", "--dry-run")

    assert [b["names"] for b in body["noise_blocks"]] == [["sum"], ["count"]]
    assert body["derived"] == ["mean"]
    assert human.code == 0, human.stderr
    assert "noise on count[10115]" in human.stdout and "sum[10249]" in human.stdout
    assert "mean[<group>]" in human.stdout


def test_a_cached_answer_says_it_is_one(lc: LocalConsortium, dp_mean_job: str) -> None:
    again = run_cli(lc, "job", "submit", "jobs/ticket-mean-dp.toml", "--wait", "--json").json()
    job_id = again["job"]["id"]

    status = run_cli(lc, "job", "status", job_id)
    checks = [
        a["check"] for a in run_cli(lc, "job", "status", job_id, "--json").json()["approvals"]
    ]
    result = run_cli(lc, "job", "result", job_id)
    as_json = run_cli(lc, "job", "result", job_id, "--json").json()

    assert again["job"]["cached_from"] == dp_mean_job
    assert status.code == 0 and "NOT VERIFIED" not in status.stdout
    assert len(checks) >= 2  # the approvals of the job that computed it
    assert all(c == f"verified (cached answer: job {dp_mean_job}'s)" for c in checks)
    assert "cached answer" in result.stdout
    assert as_json["cached_from"] == dp_mean_job


def test_human_output_prints_values_at_their_declared_decimals(lc: LocalConsortium) -> None:
    res = run_cli(lc, "job", "submit", "jobs/revenue-sum.toml", "--wait")

    assert res.code == 0, res.stderr
    (line,) = [ln for ln in res.stdout.splitlines() if ln.startswith("sum =")]
    assert re.fullmatch(r"sum = [\d,]+\.\d\d", line.strip())  # basket_total has 2 decimals


def test_a_job_built_in_python_reads_as_a_dataframe(lc: LocalConsortium) -> None:
    spec = job_spec(
        "join_group_by",
        dataset_input("grocery", "orders", key="customer_id", filter="basket_total"),
        dataset_input(
            "logistics", "deliveries", key="customer_id", group="zip", value="delivery_minutes"
        ),
        helpers=["helper"],
        params={"groups": ["10115", "10117"], "threshold": 150},
        rho=1.0,
    )

    with lc.client() as c:
        final = c.wait(c.submit(spec).id, timeout_s=120)
        frame = c.result_details(final.id).to_pandas()

    assert set(frame["zip"]) == {"10115", "10117"}
    assert set(frame["output"]) == {"count", "sum", "mean"}
    means = frame[frame["output"] == "mean"]
    assert (means["interval_method"] == "simulation").all()
    for _, m in means.iterrows():  # within the minutes' bounds; undefined where the mean is
        if math.isnan(m["value"]):
            assert math.isnan(m["ci95_lower"]) and math.isnan(m["ci95_upper"])
        else:
            assert 5 <= m["ci95_lower"] <= m["value"] <= m["ci95_upper"] <= 240
    counts = frame[frame["output"] == "count"]
    assert (counts["interval_method"] == "exact").all() and (counts["ci95_lower"] >= 0).all()
