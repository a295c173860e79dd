"""The tagged-helper route of intersection_size / intersection_sum (protocols.join.tagged)
with three real MPyC parties (two owners + helper) against pandas, what the helper holds,
and which route a session takes."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from ensnif_mpc.jobs import join_path
from protocols.join.tagged import TRACE_ENV, TRACE_FILE
from tests.protocols.harness import run_parties
from tests.protocols.test_join import deliveries, orders, reference, with_roles

pytestmark = pytest.mark.slow


def exact_sum(a, b, low: float | None = None) -> Fraction:
    keys_b = set(b.data["customer"].tolist())
    return sum(
        (
            Fraction(round(v * 100), 100)
            for k, v in zip(a.data["customer"], a.data["basket"], strict=True)
            if k in keys_b and (low is None or v >= low)
        ),
        Fraction(0),
    )


def check_sum(tmp_path, a, b, params, job_id):
    run = run_parties(
        tmp_path, "intersection_sum", [a, b, None], params, decimals=2, job_id=job_id, timeout=600
    )
    want = reference("intersection_sum", [a, b], params)
    assert run.outputs["keys"] == want["keys"]
    assert run.outputs["rows"] == want["rows"]
    assert run.outputs["sum"] == exact_sum(a, b, params.get("min"))
    return run, want


@pytest.mark.parametrize("key_type", ["int", "string"])
def test_tagged_intersection_sum_and_size_match_pandas_on_a_partial_overlap(
    tmp_path, monkeypatch, key_type
):
    monkeypatch.setenv(TRACE_ENV, "1")
    rng = np.random.default_rng(3)
    a = orders(rng, 700, customers=300, key_type=key_type)
    b = deliveries(rng, 600, offset=120, customers=300, key_type=key_type)
    run, want = check_sum(tmp_path, a, b, {"min": 20.0}, "sum")
    assert 0 < want["keys"] < 300
    assert all((d / TRACE_FILE).exists() for d in run.dirs)  # the helper route ran
    owners = [with_roles(a, key="customer"), b, None]
    size = run_parties(tmp_path, "intersection_size", owners, timeout=600)
    assert size.outputs["count"] == reference("intersection_size", [a, b], {})["count"]


def test_tagged_intersection_sum_of_disjoint_tables_is_zero(tmp_path):
    rng = np.random.default_rng(4)
    a = orders(rng, 200, customers=100)
    b = deliveries(rng, 200, offset=1000, customers=100)
    run, want = check_sum(tmp_path, a, b, {}, "empty")
    assert want["keys"] == 0 and run.outputs["sum"] == 0


def test_tagged_intersection_sum_when_every_key_is_shared(tmp_path):
    rng = np.random.default_rng(5)
    a = orders(rng, 400, customers=50)
    b = deliveries(rng, 400, offset=0, customers=50)
    assert set(a.data["customer"].tolist()) == set(b.data["customer"].tolist())
    run, want = check_sum(tmp_path, a, b, {}, "all")
    assert want["keys"] == 50


def test_the_helper_never_receives_the_tag_key(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv(TRACE_ENV, "1")
    rng = np.random.default_rng(6)
    a = orders(rng, 300, customers=120)
    b = deliveries(rng, 300, offset=60, customers=120)
    run, _ = check_sum(tmp_path, a, b, {}, "trace")
    held = [json.loads((d / TRACE_FILE).read_text()) for d in run.dirs]
    owner0, owner1, helper = held
    assert (owner0["role"], owner1["role"], helper["role"]) == ("owner0", "owner1", "helper")
    key = owner0["tag_key"]
    assert key is not None and owner1["tag_key"] == key  # the owners agree on K
    assert helper["tag_key"] is None
    assert all(all(party["tls_links"]) for party in held)  # the transfers went over TLS
    assert helper["received"], "the helper received the tags"
    assert not any(key in payload for payload in helper["received"])


def test_the_prf_route_is_kept_when_the_job_asks_for_it(tmp_path, monkeypatch):
    monkeypatch.setenv(TRACE_ENV, "1")
    rng = np.random.default_rng(7)
    a = orders(rng, 200, customers=80)
    b = deliveries(rng, 200, offset=40, customers=80)
    run, _ = check_sum(tmp_path, a, b, {join_path.PARAM: join_path.PRF}, "prf")
    assert not any((d / TRACE_FILE).exists() for d in run.dirs)


@pytest.mark.parametrize("empty_side", [0, 1])
def test_tagged_intersection_sum_with_an_empty_side_is_zero(tmp_path, empty_side):
    from tests.protocols.harness import OwnerTable

    rng = np.random.default_rng(8)
    a, b = orders(rng, 200, customers=100), deliveries(rng, 200, offset=50, customers=100)
    tables = [a, b]
    full = tables[empty_side]
    blank = {name: values[:0] for name, values in full.data.items()}
    tables[empty_side] = OwnerTable(blank, full.columns, full.roles, full.fmt)
    run = run_parties(
        tmp_path, "intersection_sum", [*tables, None], decimals=2, job_id="empty", timeout=600
    )
    assert run.outputs["keys"] == run.outputs["rows"] == run.outputs["sum"] == 0


def test_tagged_intersection_sum_dp_release_noises_the_capped_sums(tmp_path, monkeypatch):
    from tests.protocols import test_dp_families as fam

    monkeypatch.setenv(TRACE_ENV, "1")
    tables, _, params, _, options = fam.JOBS["intersection_sum"]
    plan = fam._plan("intersection_sum")
    run = run_parties(
        tmp_path,
        "intersection_sum",
        tables,
        params,
        release=plan.to_dict(),
        timeout=600,
        lower=0.0,
        upper=100.0,
        **options,
    )
    per_key = fam._capped_per_key(fam.SMALL_A, cap=2)
    hit = per_key[per_key.index.isin(set(fam.SMALL_B["k"]))]
    want = {"keys": len(hit), "rows": hit["a"].sum(), "sum": hit["x"].sum()}

    assert all((d / TRACE_FILE).exists() for d in run.dirs)  # the helper route ran
    fam.assert_noise_matches_the_plan(run, "intersection_sum")
    fam.assert_near(run.outputs, want, fam.sigmas(run))
