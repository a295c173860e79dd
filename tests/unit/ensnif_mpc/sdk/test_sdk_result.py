"""The analyst's Result, its DataFrame and formats, the noise laws and the small builders,
without a consortium (the formats end to end: tests/e2e/test_cli_answers.py)."""

from __future__ import annotations

import io
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ensnif_mpc.cli import job_cmd, render
from ensnif_mpc.errors import InvalidJobSpec
from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb
from ensnif_mpc.privacy import dlaplace
from ensnif_mpc.sdk import dataset_input, job_spec, release, result
from ensnif_mpc.sdk.intervals import Bounds
from ensnif_mpc.sdk.noise import NoiseLaw, gaussian_sum_half_width, summed_gaussian_pmf


def law(sd: float, step: float = 1.0, mechanism: str = "gaussian") -> NoiseLaw:
    return NoiseLaw(sd, step, mechanism, 3)


def grouped() -> result.Result:
    combined = {
        "count[10115]": Fraction(40),
        "count[10117]": Fraction(-2),
        "sum[10115]": Fraction(124_050, 100),
        "sum[10117]": Fraction(-5_000, 100),
    }
    laws = {k: law(3.0) if k.startswith("count") else law(5.0, 0.01) for k in combined}
    return result.build(
        combined,
        "group_by",
        laws,
        job_id="j1",
        bounds=Bounds(5.0, 240.0),
        decimals=2,
        group_column="zip",
    )


def test_to_pandas_has_one_row_per_output_with_group_labels_as_a_column() -> None:
    frame = grouped().to_pandas()

    assert list(frame.columns) == [
        "output",
        "zip",
        "value",
        "noise_sd",
        "ci95_lower",
        "ci95_upper",
        "interval_method",
    ]
    assert len(frame) == 6  # count, sum and mean for each of two zips
    mean = frame[(frame["output"] == "mean") & (frame["zip"] == "10115")].iloc[0]
    assert mean["value"] == pytest.approx(1240.5 / 40)
    assert mean["interval_method"] == "simulation"
    assert mean["ci95_lower"] < mean["value"] < mean["ci95_upper"]
    counts = frame[frame["output"] == "count"]
    assert (counts["interval_method"] == "exact").all() and (counts["value"] >= 0).all()


def test_values_are_floats_and_exact_values_fractions() -> None:
    r = grouped()

    assert all(isinstance(v, float) for v in r.values.values())
    assert r.exact_values["sum[10115]"] == Fraction(124_050, 100)
    assert math.isnan(r.values["mean[10117]"])  # a noisy count of −2 (clipped to 0): no mean


def test_a_grouped_output_reads_as_a_numpy_array_with_its_labels() -> None:
    r = grouped()

    assert r.labels("sum") == ["10115", "10117"]
    np.testing.assert_allclose(r.array("sum"), [1240.5, 0.0])  # a negative sum of minutes: 0
    assert r.array("mean").dtype == np.float64


def test_an_exact_release_has_no_noise_and_method_none() -> None:
    r = result.build({"sum": Fraction(7, 2)}, "sum", {}, job_id="j", decimals=2)

    assert r.values == {"sum": 3.5}
    assert r.ci("sum").method == "none" and r.interval("sum") == 0.0
    assert r.to_pandas()["interval_method"].tolist() == ["none"]


def test_human_output_prints_declared_decimals() -> None:
    r = grouped()

    lines = render.result_lines(r)

    assert any(line.startswith("[bold]sum[10115][/] = 1,240.50") for line in lines) or any(
        "1,240.50" in line for line in lines
    )
    assert result.print_decimals("count[a]", 2) == 0
    assert result.print_decimals("variance", 2) == 4
    assert result.print_decimals("r", 2) is None
    assert result.format_value(math.nan, 2) == "NaN"


def test_csv_lists_the_same_rows_as_the_dataframe(capsys: pytest.CaptureFixture[str]) -> None:
    r = grouped()

    job_cmd.write_result(r, "j1", "csv", None)

    frame = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype={"zip": str})
    expected = r.to_pandas()
    assert frame["value"].tolist() == pytest.approx(expected["value"].tolist(), nan_ok=True)
    assert frame["zip"].tolist() == expected["zip"].tolist()


def test_the_json_result_carries_the_interval_and_its_method() -> None:
    body = render.result_dict("j1", grouped())

    mean = body["outputs"]["mean[10115]"]
    assert mean["interval_method"] == "simulation"
    assert mean["ci95_lower"] < mean["value"] < mean["ci95_upper"]
    assert body["release"] == "dp" and body["mechanism"] == "gaussian"


def test_watch_changes_keep_id_and_state_and_only_moved_parties() -> None:
    first = {
        "id": "j",
        "state": "running",
        "spec": {"protocol": "sum"},
        "parties": [
            {"party": "a", "progress": {"fraction": 0.1}},
            {"party": "b", "progress": {"fraction": 0.1}},
        ],
    }
    second = {
        **first,
        "parties": [
            {"party": "a", "progress": {"fraction": 0.5}},
            {"party": "b", "progress": {"fraction": 0.1}},
        ],
    }

    assert render.job_changes(None, first) == first
    assert render.job_changes(first, second) == {
        "id": "j",
        "state": "running",
        "parties": [{"party": "a", "progress": {"fraction": 0.5}}],
    }
    assert render.job_changes(second, second) is None


def test_a_dataset_as_json_has_plain_types_and_zero_bounds() -> None:
    d = pb.Dataset(
        party="logistics",
        name="deliveries",
        row_count=3000,
        columns=[
            pb.Column(name="zip", type=pb.COLUMN_TYPE_STRING),
            pb.Column(name="fee", type=pb.COLUMN_TYPE_FLOAT, lower=0, upper=60, decimals=2),
        ],
        policy=pb.PrivacyPolicy(budget_rho=10, remaining_rho=-1),
    )

    out = render.dataset_dict(d)

    assert out["row_count"] == 3000
    assert out["columns"] == [
        {"name": "zip", "type": "string"},
        {"name": "fee", "type": "float", "lower": 0.0, "upper": 60.0, "decimals": 2},
    ]
    assert out["policy"]["remaining_rho"] is None and out["policy"]["max_rho"] == 0.0


def test_the_dry_run_names_the_opened_outputs_in_plan_order() -> None:
    params = {"groups": ["a", "b"]}

    assert release.block_outputs("mean", {}, [1, 1]) == [["sum"], ["count"]]
    assert release.block_outputs("join_group_by", params, [2, 2]) == [
        ["count[a]", "count[b]"],
        ["sum[a]", "sum[b]"],
    ]
    assert release.block_outputs("unknown", {}, [2]) == [["output 0", "output 1"]]


def test_a_job_built_in_python_is_the_job_file_parser_s() -> None:
    spec = job_spec(
        "join_group_by",
        dataset_input("grocery", "orders", key="customer_id", filter="basket_total"),
        dataset_input(
            "logistics", "deliveries", key="customer_id", group="zip", value="delivery_minutes"
        ),
        helpers=["helper"],
        params={"groups": ["10115"], "threshold": 150},
        rho=0.2,
    )

    assert spec.inputs[1].column == "delivery_minutes"
    assert dict(spec.inputs[1].roles) == {"group": "zip", "key": "customer_id"}
    assert spec.privacy is not None and spec.privacy.rho == 0.2
    with pytest.raises(InvalidJobSpec, match=r"inputs\[0\]\.column"):
        job_spec("sum", dataset_input("grocery", "orders"))


def test_the_summed_gaussian_law_matches_its_convolution_and_the_normal() -> None:
    pmf = summed_gaussian_pmf(6.0, 3)
    k = np.arange(len(pmf)) - len(pmf) // 2

    assert float((pmf * k * k).sum()) == pytest.approx(36.0, rel=1e-9)
    h = gaussian_sum_half_width(6.0, 3, 0.95)
    assert float(pmf[np.abs(k) <= h].sum()) >= 0.95 > float(pmf[np.abs(k) <= h - 1].sum())
    assert abs(h - stats.norm.ppf(0.975) * 6.0) <= 1
    draws = law(6.0).draw(200_000, np.random.default_rng(1))
    assert draws.std() == pytest.approx(6.0, rel=0.01)


def test_the_laplace_law_matches_the_mechanism_s_pmf() -> None:
    sd = dlaplace.noise_sd(0.5, 2.0)
    draws = law(sd, mechanism="laplace").draw(200_000, np.random.default_rng(2)).astype(int)
    q = dlaplace.q_from_sd(sd)
    support = np.arange(-10, 11)

    observed = np.array([(draws == z).mean() for z in support])

    assert observed == pytest.approx(dlaplace.pmf(q, support), abs=4e-3)
    assert law(sd, mechanism="laplace").half_width() == dlaplace.half_width(q)
