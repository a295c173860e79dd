"""Port of SCALE-MAMBA's Programs/test_float_sorting: an oblivious sort.

Who provides what: every data owner its value column; a helper feeds nothing.

What is computed: the union of the owners' values, sorted ascending by MPyC's
``np_sort`` — Batcher's odd-even merge network, the same family as the original's
``odd_even_merge_sort``: its compare-and-swap pattern is fixed by the length alone, so
the parties learn nothing of the order. The original sorts ``sfloat`` numbers with an
8-bit mantissa; here the values are exact on the session's decimal grid (secure
integers), so the sorted values are the owners' values, without rounding.

What is revealed: the sorted values, to the analyst only — the multiset of all owners'
values, not which owner holds which. What leaks: the owners' row counts to the parties.
"""

from __future__ import annotations

from protocols.program import Program, program


@program
async def test_float_sorting(p: Program) -> None:
    mpc = p.mpc
    sint = p.sint()
    columns = [await p.input_from(i, sint) for i in range(len(p.ctx.owners))]
    values = mpc.np_concatenate(columns) if len(columns) > 1 else columns[0]
    p.reveal_to_analyst("sorted", mpc.np_sort(values), scaled=True)
