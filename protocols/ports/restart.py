"""Ports of SCALE-MAMBA's ``restart``, ``restart_1`` and ``restart_2``: two data owners'
private numbers, their product or sum revealed to ONE party only, and shares written for
the program that runs after a restart.

Who provides what: the first two data owners each a number, the local sum of its declared
``value`` column (pre-aggregated by the owner before sharing; columns with decimals work
too: the product is opened on the grid 10**(2·decimals)). A helper feeds nothing.
``restart_2`` also takes the artifact ``inp`` a ``restart`` job kept (``JobSpec.artifacts``).

What is revealed: ``restart`` and ``restart_2`` open a·b, ``restart_1`` a + b, to the member
at MPC party index 1 (the second data owner, SCALE-MAMBA's player one) only: every party
seals its re-randomized share to that member's consortium certificate, so neither the
analyst, nor the other parties, nor the coordinator can open it. ``restart`` and
``restart_1`` keep [1, 2, 3, 4] secret-shared as the artifact ``inp`` (nothing opened);
``restart_2`` reveals the vector it reads back to party 1 as well.

What leaks: nothing beyond that to any party (no value is opened inside the program);
the analyst learns only that the job succeeded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ensnif_mpc.jobs.protocol import ARTIFACT, party_destination
from protocols.program import Program, program
from protocols.registry import Example, ProtocolDef, Table

RECIPIENT = 1  # SCALE-MAMBA's ``c.reveal_to(1)``: player one, here the second data owner
INP = (1, 2, 3, 4)  # the original's ``output_shares(3000, sint(1), sint(2), sint(3), sint(4))``


async def _inputs(p: Program) -> tuple[Any, Any, Any]:
    """The type wide enough for a product of two sums, and the two owners' sums."""
    sint = p.sint(2 * p.ctx.bit_length + 2)
    a = await p.input_from(0, sint, reduce="sum")
    b = await p.input_from(1, sint, reduce="sum")
    return sint, a, b


@program
async def restart(p: Program) -> None:
    """SCALE-MAMBA's Programs/restart: a·b to party 1; [1, 2, 3, 4] kept as shares."""
    sint, a, b = await _inputs(p)
    await p.export_shares("inp", sint.array(np.array(INP, dtype=object)))
    p.reveal_to(RECIPIENT, "product", a * b, scaled=2)  # a product of two sums on the grid


@program
async def restart_1(p: Program) -> None:
    """SCALE-MAMBA's Programs/restart_1: a + b to party 1; [1, 2, 3, 4] kept as shares."""
    sint, a, b = await _inputs(p)
    await p.export_shares("inp", sint.array(np.array(INP, dtype=object)))
    p.reveal_to(RECIPIENT, "sum", a + b, scaled=True)


@program
async def restart_2(p: Program) -> None:
    """The program after the restart: reads back ``restart``'s shares (MAMBA's
    ``input_shares``), reveals a·b and the restored vector to party 1."""
    _, a, b = await _inputs(p)
    restored = await p.import_shares("inp")
    p.reveal_to(RECIPIENT, "product", a * b, scaled=2)
    p.reveal_to(RECIPIENT, "inp", restored)


def _sums(tables: Sequence[Table]) -> tuple[Any, Any]:
    a, b = (sum(np.asarray(t["value"]).tolist()) for t in tables[:2])
    return a, b


def _inp() -> dict[str, float]:
    return {f"inp[{i}]": float(v) for i, v in enumerate(INP)}


def ref_restart(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    a, b = _sums(tables)
    return {"product": float(a * b), **_inp()}


def ref_restart_1(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    a, b = _sums(tables)
    return {"sum": float(a + b), **_inp()}


def ref_restart_2(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    a, b = _sums(tables)
    return {"product": float(a * b), **_inp()}


_ORIGIN = "KULeuven-COSIC/SCALE-MAMBA, Programs/{}/restart.mpc"
_LEAKS = (
    "The result goes to the member at MPC party index 1 (the second data owner) only: each "
    "party's re-randomized share is sealed to that member's consortium certificate; the "
    "analyst, the other parties and the coordinator get nothing they can open. The parties "
    "learn nothing else (no value is opened inside the program)."
)
_KEPT = " The vector [1, 2, 3, 4] is kept secret-shared at every party as the artifact `inp`."
_TO_ONE = party_destination(RECIPIENT)
_EXAMPLE = Example(
    lower=0, upper=1000, decimals=0, data=({"value": [2, 4]}, {"value": [3, 4]})
)  # a = 6, b = 7


def _restart_def(
    name: str, summary: str, provenance: str, artifacts_from: str = "", **fields: Any
) -> ProtocolDef:
    extra = {"provenance": provenance, "origin": _ORIGIN.format(name)}
    if artifacts_from:
        extra["artifacts_from"] = artifacts_from
    return ProtocolDef(
        name=name,
        family="scale-mamba",
        summary=summary,
        inputs="two data owners, each a numeric `value` column (its number is the column's sum)",
        program=f"protocols.ports.restart:{name}",
        min_data_owners=2,
        max_data_owners=2,
        examples=(_EXAMPLE,),
        extra=extra,
        **fields,
    )


DEFINITIONS = (
    _restart_def(
        "restart",
        "The product of two owners' numbers, revealed to the second owner only",
        "restart.mpc writes sint(1..4) to channel 3000 with output_shares, reads a from player "
        "0 and b from player 1 (get_private_input_from), reveals c = a·b to player one "
        "(reveal_to(1)), prints reveal(a), reveal(b), reveal(c) to everyone, and calls "
        "restart() so the engine loads the next program. Here a and b are the two owners' "
        "column sums; c goes to MPC party 1 only; output_shares becomes export_shares into "
        "the artifact `inp`; the three debugging reveals to everyone are left out (they "
        "would open a, b and c to all); a job ends where restart() would load the next "
        "program (restart_2 is that next program).",
        outputs=("product", "inp[<i>]"),
        leakage=_LEAKS + _KEPT,
        reference=ref_restart,
        destinations={"product": _TO_ONE, "inp": ARTIFACT},
    ),
    _restart_def(
        "restart_1",
        "The sum of two owners' numbers, revealed to the second owner only",
        "restart_1/restart.mpc is restart.mpc with c = a + b: the SUM goes to player one. "
        "Changed as restart: the two owners' column sums, the sum to MPC party 1 only, "
        "output_shares as the artifact `inp`, no reveals to everyone, no restart().",
        outputs=("sum", "inp[<i>]"),
        leakage=_LEAKS + _KEPT,
        reference=ref_restart_1,
        destinations={"sum": _TO_ONE, "inp": ARTIFACT},
    ),
    _restart_def(
        "restart_2",
        "The product of two owners' numbers and a restored artifact, to the second owner",
        "restart_2/restart.mpc is the same text as restart.mpc; SCALE-MAMBA keeps it as the "
        "program its restart test switches to. Here it is what that second program is for: "
        "it reads back the shares an earlier restart job kept (MAMBA's input_shares on the "
        "channel output_shares wrote; here import_shares of the artifact `inp`, which the "
        "job lists in its spec) and reveals a·b and the restored vector to MPC party 1 only.",
        outputs=("product", "inp[<i>]"),
        leakage=_LEAKS + " The artifact `inp` is opened to that member too, and to no one else.",
        reference=ref_restart_2,
        destinations={"product": _TO_ONE, "inp[<i>]": _TO_ONE},
        artifacts_in=("inp",),
        # The contract suite runs this job after one of the named protocol, whose kept
        # artifacts it takes as input.
        artifacts_from="restart",
    ),
)
