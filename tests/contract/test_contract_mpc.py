"""Every registered protocol, run by three real MPyC parties on its example, against its
plaintext reference.

One run per protocol (its first example; small data: tens of rows), each worker a separate
process talking TLS over loopback, exact release. Integer results must equal the
reference computed on exact fractions; fixed-point ones must be within the error the
example declares from the protocol's precision.

Run time: 27 protocols, one run each, about 9 minutes on two heavily shared cores
(6–72 s per run; the fixed-point ports, test_math and test_sqrt, are the slowest); each
run may take up to 480 s before it fails.
"""

from __future__ import annotations

import zlib

import pytest

from protocols.registry import catalog
from tests.contract import generate
from tests.protocols.harness import run_parties

pytestmark = pytest.mark.slow

PROTOCOLS = sorted(catalog())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_three_parties_match_the_plaintext_reference_on_the_example(tmp_path, protocol):
    definition = catalog()[protocol]
    assert definition.examples, f"{protocol}: no examples to run (ProtocolDef.examples)"
    example = definition.examples[0]
    tables = generate.owners(definition, example, seed=zlib.crc32(protocol.encode()))

    run = run_parties(
        tmp_path,
        protocol,
        tables,
        example.params,
        decimals=example.decimals,
        lower=example.lower,
        upper=example.upper,
        timeout=480,
    )

    want = generate.reference(definition, tables, example)
    assert want, f"{protocol}: the reference returned nothing"
    missing = sorted(set(want) - set(run.outputs))
    assert not missing, f"{protocol}: outputs {missing} not released"
    wrong = {
        name: (float(run.outputs[name]), value)
        for name, value in want.items()
        if not generate.close(run.outputs[name], value, example)
    }
    assert not wrong, f"{protocol}: MPC (got, want) differ: {wrong}"
