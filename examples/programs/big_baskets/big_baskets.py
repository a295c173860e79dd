"""Big baskets: the number of rows at or above a public threshold, and their total.

Who provides what: every data owner its value column (``value`` role); the helper
nothing. What is revealed: ``count_above`` and ``sum_above`` to the analyst. What leaks:
the owners' row counts (public in the catalog). The comparisons are MPyC's, on shares.
"""

from protocols.program import Program, program


@program
async def big_baskets(p: Program) -> None:
    sint = p.sint()
    mpc = p.mpc
    # The threshold on the session's integer grid (values are integers × 10**decimals).
    threshold = p.ctx.scaled_bound(p.public("threshold", 50), upper=False)
    count = sint(0)
    total = sint(0)
    for owner in range(len(p.ctx.owners)):
        values = await p.input_from(owner, sint)
        big = values >= threshold
        count = count + mpc.np_sum(big)
        total = total + mpc.np_sum(big * values)
    p.reveal_to_analyst("count_above", count)
    p.reveal_to_analyst("sum_above", total, scaled=True)
