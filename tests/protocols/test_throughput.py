"""The throughput program's other kinds (the contract suite runs its first, ``mul``): n
secure comparisons and n random bits, three real worker processes, against the reference."""

from __future__ import annotations

import pytest

from protocols.registry import catalog
from tests.contract import generate
from tests.protocols.harness import run_parties

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("index", [1, 2], ids=["lt", "bits"])
def test_kind_matches_the_reference(tmp_path, index):
    definition = catalog()["throughput"]
    example = definition.examples[index]
    tables = generate.owners(definition, example, seed=index)

    run = run_parties(
        tmp_path,
        "throughput",
        tables,
        example.params,
        decimals=0,
        lower=example.lower,
        upper=example.upper,
        timeout=240,
    )

    want = generate.reference(definition, tables, example)
    assert run.outputs["result"] == want["result"]
    if example.params["kind"] == "lt":
        assert want["result"] == 292  # 1..37 cycled to 300 pairs: all but the 8 wrap-arounds


def test_unknown_kind_is_refused():
    from ensnif_mpc.errors import InvalidJobSpec
    from ensnif_mpc.jobs.jobspec import Input, JobSpec

    spec = JobSpec("throughput", (Input("a", "d", "v"),), params={"kind": "div", "n": 5})
    with pytest.raises(InvalidJobSpec, match="params.kind"):
        catalog()["throughput"].check_spec(spec)


def test_messages_and_rounds_are_counted_and_messages_set_by_sizes_not_values(tmp_path):
    """Two runs on different values of the same size: every party reports the same number
    of messages (protocols/transport_stats.py), and a batch of n products costs a handful
    of rounds, not n (rounds also depend on timing: on loopback a payload may arrive before
    it is awaited)."""
    import numpy as np

    counts = []
    for seed in (1, 2):
        values = np.random.default_rng(seed).integers(-100, 100, 37)
        run = run_parties(
            tmp_path / f"run{seed}",
            "throughput",
            [values, None, None],
            {"kind": "mul", "n": 2000},
            lower=-100,
            upper=100,
            timeout=240,
        )
        counts.append([(s.messages_sent, s.rounds) for s in run.statuses])
    assert [m for m, _ in counts[0]] == [m for m, _ in counts[1]]
    for messages, rounds in counts[0] + counts[1]:
        assert 0 < rounds <= messages <= 12
