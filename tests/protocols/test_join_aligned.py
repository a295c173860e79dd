"""The aligned join of the tagged-helper route (protocols.join.aligned): join_group_by and
join_correlation with three real worker processes against pandas, both routes giving the
same answers, what each party received, the leakage texts, and ``aligned_rows`` row by
row against a pandas inner join."""

from __future__ import annotations

import json
import math
import pickle
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from ensnif_mpc.jobs import join_path
from protocols import registry
from protocols.join import aligned
from protocols.join.tagged import TRACE_ENV, TRACE_FILE
from tests.protocols.harness import run_parties
from tests.protocols.test_join import ZIPS, deliveries, orders, reference, with_roles

pytestmark = pytest.mark.slow

GROUPS = [*ZIPS, "00000"]


def group_tables(seed: int, key_type: str = "int"):
    rng = np.random.default_rng(seed)
    a = with_roles(
        orders(rng, 160, customers=80, key_type=key_type), key="customer", filter="basket"
    )
    b = with_roles(
        deliveries(rng, 200, offset=30, customers=80, key_type=key_type),
        key="customer",
        group="zip",
        value="minutes",
    )
    return a, b


def pandas_group_by(a, b, params) -> dict[str, int]:
    """Counts and sums of B's minutes by zip over the keys A has (total basket > threshold)."""
    fa = pd.DataFrame(a.data).groupby("customer")["basket"].sum().round(2)
    keep = fa.index[fa > params["threshold"]] if "threshold" in params else fa.index
    fb = pd.DataFrame(b.data)
    hit = fb[fb["customer"].isin(set(keep)) & fb["zip"].isin(params["groups"])]
    by = hit.groupby("zip")["minutes"].agg(["count", "sum"])
    out = {}
    for g in params["groups"]:
        out[f"count[{g}]"] = int(by["count"].get(g, 0))
        out[f"sum[{g}]"] = int(by["sum"].get(g, 0))
    return out


@pytest.mark.parametrize(
    ("params", "key_type", "paths"),
    [
        ({"groups": GROUPS, "threshold": 250.0}, "string", (join_path.AUTO, join_path.PRF)),
        ({"groups": ZIPS[:3]}, "int", (join_path.AUTO,)),
    ],
)
def test_join_group_by_matches_pandas_and_both_routes_agree(
    tmp_path, monkeypatch, params, key_type, paths
):
    monkeypatch.setenv(TRACE_ENV, "1")
    a, b = group_tables(5, key_type)
    want = pandas_group_by(a, b, params)
    assert sum(want[f"count[{g}]"] for g in ZIPS[:3]) > 0
    assert want == {
        k: v
        for k, v in reference("join_group_by", [a, b], params).items()
        if "[" in k and not k.startswith("mean")
    }
    got = {}
    for path in paths:
        run = run_parties(
            tmp_path,
            "join_group_by",
            [a, b, None],
            {**params, join_path.PARAM: path},
            job_id=path.replace("-", ""),
            timeout=300,
        )
        traced = all((d / TRACE_FILE).exists() for d in run.dirs)
        assert traced == (path == join_path.AUTO)  # which route ran
        got[path] = {k: v for k, v in run.outputs.items() if k in want}
        assert got[path] == want
        for g in params["groups"]:
            mean, n = run.outputs[f"mean[{g}]"], want[f"count[{g}]"]
            assert math.isnan(mean) if n == 0 else mean == Fraction(want[f"sum[{g}]"], n)
    assert all(answer == got[join_path.AUTO] for answer in got.values())


def correlated(seed: int):
    rng = np.random.default_rng(seed)
    a = orders(rng, 140, customers=70)
    b = with_roles(deliveries(rng, 140, offset=20, customers=70), key="customer", value="minutes")
    b.data["minutes"][:] = np.clip(b.data["customer"] * 3 + rng.integers(0, 30, 140), 0, 300)
    a.data["basket"][:] = np.round(
        np.clip(a.data["customer"] * 5 + rng.integers(0, 50, 140), 0, 500), 2
    )
    return a, b


@pytest.mark.parametrize(
    ("per_key", "paths"), [("sum", (join_path.AUTO, join_path.PRF)), ("mean", (join_path.AUTO,))]
)
def test_join_correlation_matches_numpy_and_both_routes_agree(
    tmp_path, monkeypatch, per_key, paths
):
    monkeypatch.setenv(TRACE_ENV, "1")
    a, b = correlated(9)
    fa = pd.DataFrame(a.data).groupby("customer")["basket"]
    fb = pd.DataFrame(b.data).groupby("customer")["minutes"]
    x, y = (fa.sum(), fb.sum()) if per_key == "sum" else (fa.mean().round(2), fb.mean())
    joined = pd.concat([x, y], axis=1, join="inner")
    want = np.corrcoef(joined.iloc[:, 0], joined.iloc[:, 1])[0, 1]
    got = {}
    for path in paths:
        params = {"per_key": per_key, join_path.PARAM: path}
        run = run_parties(
            tmp_path,
            "join_correlation",
            [a, b, None],
            params,
            decimals=2,
            job_id=path.replace("-", ""),
            timeout=300,
        )
        assert all((d / TRACE_FILE).exists() for d in run.dirs) == (path == join_path.AUTO)
        assert run.outputs["pairs"] == len(joined)
        # Means are rounded half up to the session's 2 decimals per key (per_key_values):
        # that moves r by far less than 1e-3 here; the fixed point adds below 1e-9.
        assert run.outputs["r"] == pytest.approx(want, abs=1e-9 if per_key == "sum" else 1e-3)
        got[path] = run.outputs["r"]
    assert all(r == pytest.approx(got[join_path.AUTO], abs=1e-9) for r in got.values())
    assert abs(want) > (0.3 if per_key == "mean" else 0.05)  # an r far from 0, checked to 1e-9


def test_the_aligned_route_gives_the_helper_only_tags_and_b_a_uniform_injection(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(TRACE_ENV, "1")
    a, b = group_tables(6)
    params = {"groups": ZIPS, "threshold": 100.0}
    run = run_parties(tmp_path, "join_group_by", [a, b, None], params, timeout=300)
    owner0, owner1, helper = (json.loads((d / TRACE_FILE).read_text()) for d in run.dirs)
    key = owner0["tag_key"]
    assert key == owner1["tag_key"] and helper["tag_key"] is None
    # The helper receives s_AH and the two tag lists, nothing of the alignment or products.
    assert len(helper["received"]) == 3
    assert not any(key in payload for payload in helper["received"])
    # B receives K, s_HB, Z, then (σ2, correction): σ2 is an injection into [n_A + n_B].
    n_a = len(set(a.data["customer"].tolist()))
    n_b = len(set(k for k, z in zip(b.data["customer"], b.data["zip"], strict=True) if z in ZIPS))
    sigma2, correction = pickle.loads(bytes.fromhex(owner1["received"][3]))
    assert len(sigma2) == n_b == len(correction)
    assert len(set(sigma2.tolist())) == n_b and int(sigma2.max()) < n_a + n_b
    # A receives its s_HB-masked view of B's pivoted table only (n_B rows, 2·|groups| wide,
    # k/8 bytes an element in the session-sized ring Z_2^k).
    (masked,) = owner0["received"]
    width = aligned.ring_bits(run.bit_length) // 8
    assert width < 8 and len(bytes.fromhex(masked)) == width * n_b * 2 * len(ZIPS)
    assert all(all(party["tls_links"]) for party in (owner0, owner1, helper))


def test_leakage_texts_name_the_aligned_route():
    from tests.unit.ensnif_mpc.jobs.test_join_path import _manifest

    for name in ("join_group_by", "join_correlation"):
        text = registry.get(name).leakage
        assert join_path.DESCRIPTIONS[join_path.ALIGNED] in text
        assert "only the helper learns the number of matching keys" in text
        assert join_path.choose(name, 3, 1, 2, {}) == join_path.TAGGED
        assert join_path.choose(name, 3, 1, 2, {"join_path": "prf-shuffle"}) == join_path.PRF
        assert join_path.choose(name, 4, 1, 2, {}) == join_path.PRF
    assert join_path.choose("join_group_by", 3, 1, 2, {}, bit_length=80) == join_path.PRF
    assert join_path.choose("join_correlation", 3, 1, 2, {}, bit_length=80) == join_path.TAGGED
    assert _manifest({})["join_path"] == join_path.TAGGED


def _aligned_rows_job(seed: int, fxp: int) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    keys_a = rng.choice(400, size=120, replace=False)
    keys_b = rng.choice(np.arange(60, 460), size=150, replace=False)
    cols_a = rng.integers(-500, 500, size=(120, 2))
    cols_b = rng.integers(-9, 1000, size=(150, 3))
    owners = [
        {"keys": keys_a.tolist(), "columns": cols_a.ravel().tolist()},
        {"keys": keys_b.tolist(), "columns": cols_b.ravel().tolist()},
    ]
    job = {"owners": owners, "widths": [2, 3], "fxp": fxp}
    return job, pd.DataFrame(cols_a, index=keys_a), pd.DataFrame(cols_b, index=keys_b)


@pytest.mark.parametrize("fxp", [0, 16])
def test_aligned_rows_pair_every_matched_key_and_zero_the_rest(tmp_path, fxp):
    from pathlib import Path

    from bench.raw import run as run_raw

    job, fa, fb = _aligned_rows_job(12, fxp)
    program = Path(__file__).with_name("aligned_rows_program.py")
    out = run_raw(tmp_path, str(program), job, 120).outputs
    rows = out["rows"]
    assert rows == len(fb)
    order = [int(k) for k in out["keys"]]  # B's keys in B's private row order
    assert sorted(order) == sorted(fb.index.tolist()) and order != sorted(order)
    present = np.array(out["present"]).reshape(rows)
    a = np.array(out["a"]).reshape(rows, 2)
    b = np.array(out["b"]).reshape(rows, 3)
    matched = fa.index.intersection(fb.index)
    assert 0 < len(matched) < rows
    want_present = np.isin(order, matched).astype(int)
    want_a = fa.reindex(order).fillna(0).to_numpy()
    want_b = fb.loc[order].to_numpy() * want_present[:, None]
    assert np.array_equal(present, want_present)
    assert np.array_equal(a, want_a) and np.array_equal(b, want_b)


def test_the_aligned_group_by_opens_the_same_whatever_the_data(tmp_path, monkeypatch):
    """With the sizes fixed, whatever the parties open is as many and as shaped whatever
    the overlap and values (the wrap-around removal, one multiplication per output since
    it stopped using comparisons, opens nothing itself)."""
    from ensnif_mpc.data.schema import Column
    from tests.protocols.harness import OwnerTable

    monkeypatch.setenv("ENSNIF_TRACE_OPENINGS", "1")

    def tables(lo: int, shift: int) -> list[OwnerTable | None]:
        a = OwnerTable(
            {"k": np.arange(40), "f": (np.arange(40) + shift) % 9},
            (Column("k", "int", 0, 200), Column("f", "int", 0, 10)),
            {"key": "k", "filter": "f"},
        )
        keys = np.arange(lo, lo + 30)
        b = OwnerTable(
            {"k": keys, "g": np.array(["x", "y"] * 15, dtype=object), "v": (keys + shift) % 50},
            (Column("k", "int", 0, 200), Column("g", "string"), Column("v", "int", 0, 60)),
            {"key": "k", "group": "g", "value": "v"},
        )
        return [a, b, None]

    logs = []
    for n, (lo, shift) in enumerate([(10, 0), (35, 4)]):
        run = run_parties(
            tmp_path / f"g{n}",
            "join_group_by",
            tables(lo, shift),
            {"groups": ["x", "y"], "threshold": 3.0},
            job_id="group",
            timeout=300,
        )
        logs.append([sorted((d / "openings.log").read_text().splitlines()) for d in run.dirs])
    assert logs[0] == logs[1], logs
