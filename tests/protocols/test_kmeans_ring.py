"""The two-owner ring route of exact k-means (protocols/models/kmeans_ring.py) and its
engine (protocols/ring/dealer.py), with real MPyC worker processes over TLS: the engine's
sign test, select, bit conversion and product against numpy (edge cases included), the
k-means against scikit-learn and the plaintext mirror, what each party receives (only
uniformly distributed, masked values, the same amount whatever the data), an empty
cluster, and the all-MPyC route for a session of three owners."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.cluster import KMeans

from ensnif_mpc.data.schema import Column
from protocols.models import kmeans as km
from protocols.ring.dealer import TRACE_ENV, TRACE_FILE
from tests.protocols.harness import OwnerTable, run_parties

pytestmark = pytest.mark.slow

LOWER, UPPER = -50.0, 120.0
LIMIT = 2**63
NARROW = 47  # the sign test on a narrower range: k-means' score differences at d = 10


def _owner(x: np.ndarray) -> OwnerTable:
    names = [f"x{j}" for j in range(x.shape[1])]
    data = {n: np.round(x[:, j], 2) for j, n in enumerate(names)}
    columns = tuple(Column(n, "float", LOWER, UPPER, 2) for n in names)
    return OwnerTable(data, columns, {}, lists={"features": names})


def _box(d: int) -> dict[str, Any]:
    return {"lower": [LOWER] * d, "upper": [UPPER] * d}


def _clusters(rng: np.random.Generator, n: int, centers: np.ndarray) -> np.ndarray:
    x = centers[rng.integers(0, len(centers), n)] + rng.normal(0, 4, (n, centers.shape[1]))
    return np.round(np.clip(x, LOWER, UPPER), 2)


def _uniform(hex_payloads: list[str]) -> bool:
    """The payloads' fraction of one bits is within six standard deviations of 1/2, as for
    uniformly random bytes."""
    raw = np.frombuffer(bytes.fromhex("".join(hex_payloads)), dtype=np.uint8)
    bits = np.unpackbits(raw)
    return bool(abs(bits.mean() - 0.5) <= 6 * 0.5 / np.sqrt(bits.size))


def _engine_run(tmp_path: Path, values: np.ndarray, others: np.ndarray) -> dict[str, Any]:
    from bench.raw import run as run_raw

    job = {"values": values.tolist(), "others": others.tolist(), "seed": 7, "bits": NARROW}
    program = Path(__file__).with_name("ring_compare_program.py")
    out = run_raw(tmp_path, str(program), job, 120)
    traces = [json.loads((tmp_path / f"party{i}" / TRACE_FILE).read_text()) for i in (0, 1)]
    return {"outputs": out.outputs, "traces": traces}


def test_the_ring_engine_matches_numpy_on_edge_cases_and_opens_only_uniform_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRACE_ENV, "1")
    rng = np.random.default_rng(5)
    edges = [0, -1, 1, -LIMIT, LIMIT - 1, -LIMIT + 1, LIMIT - 2, 2**62, -(2**62), 2**63 - 2**62]
    half = 2 ** (NARROW - 1)
    edges += [-half, half - 1, -half + 1, half - 2, 2**40, -(2**40)]
    v = np.concatenate(
        [
            edges,
            rng.integers(-LIMIT, LIMIT, 300, dtype=np.int64),
            rng.integers(-9, 9, 60),
            rng.integers(-half, half, 60),
        ]
    ).astype(np.int64)
    o = rng.integers(-(2**40), 2**40, v.size).astype(np.int64)
    o[:5] = v[:5]  # equal values: not negative, the select keeps the left one

    run = _engine_run(tmp_path / "a", v, o)

    out = run["outputs"]
    assert out["negative"] == (v < 0).astype(int).tolist()
    assert out["arith"] == (v < 0).astype(int).tolist()
    assert out["select"] == np.where(v < 0, o, v).tolist()
    with np.errstate(over="ignore"):
        assert out["product"] == (v * o).tolist()
    inside = (v >= -half) & (v < half)
    assert inside.sum() > 60
    assert np.array_equal(np.array(out["narrow"])[inside], (v[inside] < 0).astype(int))
    # open v + r and six AND levels (twice), select, b2a, mul
    assert out["rounds"] == 2 * (1 + 6) + 1 + 1 + 1
    # What each owner received (from the other owner and, for B, from the dealer): uniform
    # bits, and as many bytes for small values as for any others.
    small = _engine_run(tmp_path / "b", np.zeros_like(v), np.ones_like(o))
    for got, other in zip(run["traces"], small["traces"], strict=True):
        for step, payloads in got["received"].items():
            assert _uniform(payloads), step
            assert _uniform(other["received"][step]), step
            assert [len(p) for p in payloads] == [len(p) for p in other["received"][step]]


def test_ring_kmeans_matches_scikit_learn_and_opens_only_masked_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRACE_ENV, "1")
    monkeypatch.setenv("ENSNIF_TRACE_OPENINGS", "1")
    rng = np.random.default_rng(21)
    centers = np.array(
        [[-30.0, 0.0, 10.0], [40.0, 90.0, 0.0], [100.0, 10.0, 50.0], [0, 100, 100], [80, 80, -30]]
    )
    x = _clusters(rng, 260, centers)
    start = centers + rng.uniform(-15, 15, centers.shape)  # well separated: one per cluster
    k, d, steps = 5, 3, 4
    params = {**_box(d), "k": k, "iterations": steps, "initial": start.ravel().tolist()}

    run = run_parties(
        tmp_path,
        "kmeans",
        [_owner(x[:130]), _owner(x[130:]), None],
        params,
        decimals=2,
        timeout=300,
    )

    got = np.array([[float(run.outputs[f"centroid[{j},{i}]"]) for i in range(d)] for j in range(k)])
    sizes = [int(run.outputs[f"size[{j}]"]) for j in range(k)]
    want = km.reference([{"features": x}], params)
    assert np.allclose(
        got.ravel(), [want[f"centroid[{j},{i}]"] for j in range(k) for i in range(d)], atol=5e-4
    )
    sk = KMeans(k, init=start, n_init=1, max_iter=steps, algorithm="lloyd", tol=0).fit(x)
    quantum = (UPPER - LOWER) / 2**km.FK
    assert np.allclose(got, sk.cluster_centers_, atol=quantum)
    assert sizes == [int(want[f"size[{j}]"]) for j in range(k)]
    assert sizes == np.bincount(sk.labels_, minlength=k).tolist()
    # The ring route ran (both owners traced it), and what the owners received is uniform.
    traces = [json.loads((run.dirs[i] / TRACE_FILE).read_text()) for i in (0, 1)]
    assert not (run.dirs[2] / TRACE_FILE).exists()
    for trace in traces:
        for step, payloads in trace["received"].items():
            assert _uniform(payloads), step
    # The program opened only the centroids under B's statistical mask, k·d values per
    # iteration but the last (to B alone; every party logs the call). The field-element
    # openings are MPyC's own, inside the division's comparisons and truncations (masked by
    # MPyC's protocols): of the k·(d + 1) counts and sums, none of the 260 rows.
    for directory in run.dirs:
        lines = [line.split() for line in (directory / "openings.log").read_text().split("\n")]
        ours = [int(size) for kind, size in filter(None, lines) if kind.startswith("ArraySec")]
        assert ours == [k * d] * (steps - 1)
        internal = [int(size) for kind, size in filter(None, lines) if kind.startswith("ArrayGF")]
        assert internal and max(internal) <= 32 * k * (d + 1)


def test_ring_kmeans_keeps_an_empty_clusters_centroid(tmp_path: Path) -> None:
    rng = np.random.default_rng(22)
    x = _clusters(rng, 80, np.array([[-20.0, 0.0], [40.0, 90.0]]))
    start = np.array([[-20.0, 0.0], [40.0, 90.0], [119.0, -49.0]])  # the last draws no row
    params = {**_box(2), "k": 3, "iterations": 3, "initial": start.ravel().tolist()}

    run = run_parties(
        tmp_path,
        "kmeans",
        [_owner(x[:40]), _owner(x[40:]), None],
        params,
        decimals=2,
        timeout=300,
    )

    want = km.reference([{"features": x}], params)
    for key, value in want.items():
        assert float(run.outputs[key]) == pytest.approx(value, abs=5e-4), key
    assert int(run.outputs["size[2]"]) == 0


def test_three_owners_take_the_all_mpyc_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRACE_ENV, "1")
    rng = np.random.default_rng(23)
    x = _clusters(rng, 36, np.array([[-20.0, 0.0], [40.0, 90.0]]))
    params = {**_box(2), "k": 2, "iterations": 2, "initial": [0.0, 0.0, 50.0, 50.0]}

    run = run_parties(
        tmp_path,
        "kmeans",
        [_owner(x[:12]), _owner(x[12:24]), _owner(x[24:])],
        params,
        decimals=2,
        timeout=300,
    )

    want = km.reference([{"features": x}], params)
    for key, value in want.items():
        assert float(run.outputs[key]) == pytest.approx(value, abs=5e-4), key
    assert not any((d / TRACE_FILE).exists() for d in run.dirs)
