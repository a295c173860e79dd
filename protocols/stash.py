"""Keep a result secret-shared for a later job: ``stash_sum`` and ``stash_add``.

``stash_sum``: each data owner's sum of its ``value`` column, as secure fixed-point numbers
(one per owner, in input order), kept at the parties as the artifact ``totals``; nothing
is opened to anyone. ``stash_add``: a later job, on the same parties, reads ``totals``
back, adds its own owners' sums element by element and opens the new totals and their
grand total to the analyst — a running total over two jobs whose first step no one saw.
It is also how a model keeps its weights (a vector of secure fixed-point numbers) between
jobs.

Who provides what: every data owner its value column (pre-aggregated locally into its sum).

What is revealed: ``stash_sum`` nothing; ``stash_add`` the per-owner totals over both jobs
and their sum, to the analyst (re-randomized shares sealed to the analyst's key).

What leaks: the parties learn nothing (nothing is opened in MPC); each node's store holds
its own shares of ``totals`` (one Shamir share per element, worthless alone) until the
artifact is deleted. Using it needs every producing owner's policy to allow the analyst.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ensnif_mpc.jobs.protocol import ARTIFACT
from protocols.program import Program, program
from protocols.registry import Example, ProtocolDef, Table

FRAC_BITS = 32  # SecFxp(64, 32): the same field in every job, whatever the session's sizes


async def _owner_sums(p: Program) -> Any:
    secfxp = p.fixed(FRAC_BITS)
    sums = [await p.input_from(i, secfxp, reduce="sum") for i in range(len(p.ctx.owners))]
    return p.mpc.np_fromlist(sums)


@program
async def stash_sum(p: Program) -> None:
    """Each owner's sum, kept as the artifact ``totals``; nothing opened."""
    await p.export_shares("totals", await _owner_sums(p))


@program
async def stash_add(p: Program) -> None:
    """``totals`` from an earlier job plus this job's owners' sums, opened to the analyst."""
    kept = await p.import_shares("totals", p.fixed(FRAC_BITS))
    now = await _owner_sums(p)
    if kept.shape != now.shape:
        raise ValueError("the artifact totals has another number of owners than this job")
    totals = kept + now
    p.reveal_to_analyst("total", totals)
    p.reveal_to_analyst("grand_total", p.mpc.np_sum(totals))


def _sums(tables: Sequence[Table]) -> list[float]:
    return [float(np.sum(np.asarray(t["value"], dtype=float))) for t in tables]


def ref_stash_sum(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    return {f"totals[{i}]": s for i, s in enumerate(_sums(tables))}


def ref_stash_add(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    """Run after ``stash_sum`` on the same tables: every total twice."""
    doubled = [2 * s for s in _sums(tables)]
    return {**{f"total[{i}]": s for i, s in enumerate(doubled)}, "grand_total": sum(doubled)}


# Fixed point with 32 fractional bits: each owner's sum is rounded once to 2^-32 (in each
# job), so a total is within 2^-31 of the exact one.
_EXAMPLE = Example(rows=(30, 20), lower=-50, upper=120, decimals=2, abs_error=1e-6)
_INPUTS = "one numeric `value` column per data owner (its sum is what is kept)"

DEFINITIONS = (
    ProtocolDef(
        name="stash_sum",
        family="artifacts",
        summary="Each owner's sum, kept secret-shared as the artifact `totals`; nothing opened",
        inputs=_INPUTS,
        outputs=("totals[<i>]",),
        leakage="Nothing is opened to anyone: every party's node keeps its own Shamir shares "
        "of the per-owner sums (secure fixed point, 32 fractional bits) as the artifact "
        "`totals`. The parties learn each owner's row count (public in the catalog).",
        program="protocols.stash:stash_sum",
        reference=ref_stash_sum,
        destinations={"totals": ARTIFACT},
        examples=(_EXAMPLE,),
    ),
    ProtocolDef(
        name="stash_add",
        family="artifacts",
        summary="The totals an earlier stash_sum kept plus this job's sums, to the analyst",
        inputs=_INPUTS + "; the job lists the artifact `<job>/totals` of an earlier stash_sum "
        "on the same parties",
        outputs=("total[<i>]", "grand_total"),
        leakage="The per-owner totals over both jobs and their sum, to the analyst only; not "
        "either job's own sums. Nothing is opened to the parties.",
        program="protocols.stash:stash_add",
        reference=ref_stash_add,
        artifacts_in=("totals",),
        examples=(_EXAMPLE,),
        extra={"artifacts_from": "stash_sum"},
    ),
)
