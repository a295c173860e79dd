"""Throughput programs, after SCALE-MAMBA's Programs/mult_demo (an endless loop of 1,000
secure multiplications per iteration, run to measure a deployment's multiplication rate).

Here one program, three kinds (the job parameter ``kind``), each ``n`` operations in one
vectorized batch so the rate is that of the runtime, not of a Python loop:

- ``mul``: n secure products a_i·b_i of the first owner's values (its column, cycled to
  length n, times the same column shifted by one); output their sum.
- ``lt``: n secure comparisons a_i < b_i on the same pairs; output how many hold.
- ``bits``: n shared random bits (``mpc.np_random_bits``), each checked to be a bit by one
  more product, b·b − b; output the sum of those checks (0 unless the bits are not bits).

Each output has a plaintext reference, so a throughput run is also a correctness run.
``bench/throughput.py`` runs each kind at two sizes through the worker and a minimal raw
MPyC program, and prints operations per second from the difference (the fixed cost of a
job cancels out).

What is revealed: the one output, to the analyst. What leaks: the owner's row count to the
parties (``Program.input_from`` sends it; the catalog publishes it anyway).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ensnif_mpc.errors import InvalidJobSpec
from protocols.program import Program, program
from protocols.registry import Example, Param, ProtocolDef, Table

KINDS = ("mul", "lt", "bits")


def pairs(rows: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of a_i and b_i in the owner's column: cycled to n, b shifted by one."""
    a = np.arange(n) % rows
    return a, (a + 1) % rows


@program
async def throughput(p: Program) -> None:
    """n secure multiplications, comparisons or random bits in one batch (see the module)."""
    mpc = p.mpc
    kind = str(p.public("kind", "mul"))
    n = int(p.public("n", 1000))
    sint = p.sint(2 * p.ctx.bit_length + 32)  # room for n products of two grid values
    if kind == "bits":
        bits = mpc.np_random_bits(sint, n)
        p.reveal_to_analyst("result", mpc.np_sum(bits * bits - bits))
        return
    x = await p.input_from(0, sint)
    ia, ib = pairs(len(x), n)
    a, b = x[ia], x[ib]
    p.reveal_to_analyst("result", mpc.np_sum(a * b) if kind == "mul" else mpc.np_sum(a < b))


def reference(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    kind, n = params.get("kind", "mul"), int(params.get("n", 1000))
    if kind == "bits":
        return {"result": 0.0}
    x = [int(v) for v in np.asarray(tables[0]["value"]).tolist()]
    ia, ib = pairs(len(x), n)
    a, b = np.array(x, dtype=object)[ia], np.array(x, dtype=object)[ib]
    return {"result": float(sum(a * b) if kind == "mul" else sum(a < b))}


def check_spec(spec: Any) -> None:
    kind, n = spec.params.get("kind", "mul"), spec.params.get("n", 1000)
    if kind not in KINDS:
        raise InvalidJobSpec(f"params.kind: one of {', '.join(KINDS)}")
    if not 1 <= n <= 10_000_000:
        raise InvalidJobSpec("params.n: between 1 and 10,000,000 operations")


DEFINITION = ProtocolDef(
    name="throughput",
    family="scale-mamba",
    summary="n secure multiplications, comparisons or random bits in one batch, for rates",
    inputs="first owner: an integer `value` column (cycled to n pairs); none for kind=bits",
    outputs=("result",),
    leakage=(
        "Only the one output, to the analyst (re-randomized shares sealed to the analyst's "
        "key). The parties learn the owner's row count (the catalog publishes it) and n."
    ),
    program="protocols.ports.throughput:throughput",
    reference=reference,
    parameters=(
        Param("kind", "string", "mul, lt or bits", default="mul"),
        Param("n", "int", "operations in the batch", default=1000),
    ),
    max_data_owners=1,
    check_spec=check_spec,
    examples=(
        Example(
            {"kind": "mul", "n": 500},
            owners=1,
            lower=0,
            upper=100,
            decimals=0,
            data=({"value": list(range(1, 38))},),
        ),
        Example(
            {"kind": "lt", "n": 300},
            owners=1,
            lower=0,
            upper=100,
            decimals=0,
            data=({"value": list(range(1, 38))},),
        ),
        Example({"kind": "bits", "n": 300}, owners=1, lower=0, upper=1, decimals=0, rows=(5,)),
    ),
    extra={
        "provenance": (
            "mult_demo.mpc: an endless loop of 1,000 sint products per iteration, SCALE-MAMBA's "
            "way to watch a deployment's multiplication rate. Here a bounded batch of n "
            "products, comparisons or random bits, vectorized (one round per batch for the "
            "products), with an output checked against a plaintext reference; bench/"
            "throughput.py turns two batch sizes into operations per second."
        ),
        "origin": "KULeuven-COSIC/SCALE-MAMBA, Programs/mult_demo/mult_demo.mpc",
    },
)
