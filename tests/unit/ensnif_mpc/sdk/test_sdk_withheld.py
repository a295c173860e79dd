"""Outputs the owners' minimum cohort withheld inside MPC, on the analyst's side: shown as
withheld (NaN, no interval), never as the 0 they open as; the others as before.

From combined outputs as the workers deliver them (the MPC side: tests/protocols/
test_joint_cohort.py)."""

from __future__ import annotations

import json
import math
from fractions import Fraction

from rich.console import Console

from ensnif_mpc.cli import render
from ensnif_mpc.privacy import withheld
from ensnif_mpc.sdk import result
from ensnif_mpc.sdk.intervals import Bounds
from ensnif_mpc.sdk.noise import NoiseLaw

COMBINED = {  # group_by: 10117 below the minimum, so it opened as zeros with its marker set
    "count[10115]": Fraction(40),
    "count[10117]": Fraction(0),
    "sum[10115]": Fraction(124_050, 100),
    "sum[10117]": Fraction(0),
    "withheld[10115]": Fraction(0),
    "withheld[10117]": Fraction(1),
}
HELD = {"count[10117]", "sum[10117]", "mean[10117]"}


def build(dp: bool) -> result.Result:
    laws = {}
    if dp:
        laws = {
            k: NoiseLaw(3.0 if k.startswith("count") else 5.0, 1.0 if "count" in k else 0.01)
            for k in COMBINED
            if not withheld.is_marker(k)
        }
    return result.build(
        COMBINED, "group_by", laws, job_id="j1", bounds=Bounds(5.0, 240.0), decimals=2
    )


def test_a_withheld_group_is_nan_with_no_interval_and_the_others_are_answered() -> None:
    for dp in (False, True):
        r = build(dp)

        assert r.withheld == HELD
        assert set(r.exact_values) == {
            f"{o}[{g}]"
            for o in ("count", "sum", "mean")
            for g in (
                "10115",
                "10117",
            )
        }  # no marker among the answers
        assert all(math.isnan(r.values[k]) for k in HELD)
        assert all(r.ci(k).method == result.WITHHELD for k in HELD)
        assert all(math.isnan(r.interval(k)) for k in HELD)
        assert r.values["count[10115]"] == 40 and r.exact_values["mean[10115]"] == Fraction(
            124_050, 4_000
        )
        assert r.ci("count[10115]").method == ("exact" if dp else "none")


def test_to_pandas_marks_withheld_rows_and_drops_the_column_when_nothing_is() -> None:
    frame = build(True).to_pandas()
    held = frame[frame["withheld"]]

    assert set(zip(held["output"], held["group"], strict=True)) == {
        ("count", "10117"),
        ("sum", "10117"),
        ("mean", "10117"),
    }
    assert held["value"].isna().all() and held["ci95_lower"].isna().all()
    assert held["noise_sd"].isna().all() and (held["interval_method"] == "withheld").all()
    answered = frame[~frame["withheld"]]
    assert not answered["value"].isna().any() and (answered["noise_sd"] > 0).all()

    plain = dict(COMBINED, **{"withheld[10117]": Fraction(0), "count[10117]": Fraction(3)})
    assert "withheld" not in result.build(plain, "group_by", {}).to_pandas().columns


def test_human_and_json_output_say_withheld_not_zero() -> None:
    r = build(True)
    console = Console(width=200, record=True)
    console.print(render.result_table(r))
    for line in render.result_lines(r):
        console.print(line)
    text = console.export_text()
    body = render.result_dict("j1", r)

    held_rows = [line for line in text.splitlines() if "10117" in line or "[10117]" in line]
    assert held_rows and all("withheld" in line for line in held_rows)
    assert not any("0.00" in line or "NaN" in line for line in held_rows)
    for name in HELD:
        assert body["outputs"][name]["withheld"] is True
        assert body["outputs"][name]["value"] is None
        assert body["outputs"][name]["ci95_lower"] is None
    assert "withheld" not in body["outputs"]["count[10115]"]
    json.dumps(body, allow_nan=False)  # JSON-safe: no NaN leaks into it


def test_a_protocol_finalize_strips_the_markers_and_leaves_unmarked_releases_alone() -> None:
    from protocols.registry import finalize

    marked = finalize("histogram", {"count[0]": Fraction(0), "withheld[0]": Fraction(1)})
    plain = finalize("histogram", {"count[0]": Fraction(7), "withheld[0]": Fraction(0)})
    join = finalize(
        "intersection_sum",
        {"keys": Fraction(0), "rows": Fraction(0), "sum": Fraction(0), "withheld": Fraction(1)},
    )

    assert list(marked) == ["count[0]"] and math.isnan(marked["count[0]"])
    assert plain == {"count[0]": Fraction(7)}
    assert set(join) == {"keys", "rows", "sum", "mean"} and all(
        math.isnan(v) for v in join.values()
    )
