"""The contract's MPC run: one registered protocol, three real MPyC parties, its first
example, against its plaintext reference.

The registry is split into shards (``shard(i)``), one test module each
(``test_contract_mpc_<i>.py``): ``make test`` gives pytest-xdist whole modules
(``--dist loadfile``), and one module holding every protocol was the suite's longest single
file (about 9 minutes). Every protocol is in exactly one shard (``test_contract_entries``
checks the union).

Each worker is a separate process talking TLS over loopback, exact release. Integer results
must equal the reference computed on exact fractions; fixed-point ones must be within the
error the example declares from the protocol's precision. A run may take up to 480 s before
it fails (6–72 s each on two shared cores; the fixed-point ports are the slowest).
"""

from __future__ import annotations

import zlib
from pathlib import Path

from protocols.registry import catalog
from tests.contract import generate
from tests.protocols.harness import run_parties

SHARDS = 3


def shard(index: int) -> list[str]:
    """The protocols of shard ``index``: every SHARDS-th name in sorted order, so the slow
    neighbours (test_math, test_sqrt, …) land in different shards."""
    return sorted(catalog())[index::SHARDS]


def check(tmp_path: Path, protocol: str) -> None:
    definition = catalog()[protocol]
    assert definition.examples, f"{protocol}: no examples to run (ProtocolDef.examples)"
    example = definition.examples[0]
    tables = generate.owners(definition, example, seed=zlib.crc32(protocol.encode()))
    if definition.backend == "local":  # one owner alone: no helpers, no MPC session
        tables = tables[: example.owners]

    common = {
        "decimals": example.decimals,
        "lower": example.lower,
        "upper": example.upper,
        "timeout": 480,
    }
    artifacts = None
    if definition.artifacts_in:
        # A protocol that reads artifacts runs after the one that keeps them, on the same
        # parties: each party's kept shares are its input, as its node would hand them on.
        producer = str(definition.extra["artifacts_from"])
        made_with = definition.extra.get("artifacts_params", example.params)
        first = run_parties(tmp_path, producer, tables, made_with, job_id="job0", **common)
        artifacts = first.kept
    run = run_parties(tmp_path, protocol, tables, example.params, artifacts=artifacts, **common)

    # Every output, wherever it went: the analyst's, each named party's (opened with that
    # party's key), and the artifacts kept (opened from all parties' shares by the test).
    got = dict(run.outputs)
    for opened in run.party_outputs.values():
        got.update(opened)
    got.update(run.artifacts)
    want = generate.reference(definition, tables, example)
    assert want, f"{protocol}: the reference returned nothing"
    missing = sorted(set(want) - set(got))
    assert not missing, f"{protocol}: outputs {missing} not released"
    wrong = {
        name: (float(got[name]), value)
        for name, value in want.items()
        if not generate.close(got[name], value, example)
    }
    assert not wrong, f"{protocol}: MPC (got, want) differ: {wrong}"
