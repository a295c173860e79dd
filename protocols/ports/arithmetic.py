"""Ports of SCALE-MAMBA's integer programs: ``tutorial``, the millionaires' problem,
``vectorize`` and ``test_map_reduce``, written against :mod:`protocols.program`.

Who provides what: data owners feed their declared value column (integers on the
session's grid; these ports are meant for integer columns, decimals 0); a helper feeds
nothing. Public inputs are job parameters.

What is revealed: only the declared outputs, to the analyst (re-randomized shares sealed
to the analyst's key by the worker), except ``vectorize``'s c and d, which go to MPC
parties 1 and 2 only as in the original (``Program.reveal_to``). Where an original opened
intermediate values (``reveal()``), the port keeps them secret.

What leaks: each owner's row count to the parties (``Program.input_from`` sends it; the
catalog publishes it anyway); nothing else.
"""

from __future__ import annotations

import numpy as np

from protocols.program import Program, program


@program
async def tutorial(p: Program) -> None:
    """SCALE-MAMBA's Programs/tutorial: secret-public and secret-secret arithmetic,
    comparisons, an array of squares and a conditional, on the first owner's column."""
    mpc = p.mpc
    sint = p.sint(2 * p.ctx.bit_length + 8)  # room for the squares
    x = await p.input_from(0, sint)
    a = x[0]
    b = int(p.public("b", 2))
    squares = x * x  # one vectorized product for the whole array
    p.reveal_to_analyst("a+b", a + b)
    p.reveal_to_analyst("a+a", a + a)
    p.reveal_to_analyst("a*b", a * b)
    p.reveal_to_analyst("a*a", a * a)
    p.reveal_to_analyst("a-b", a - b)
    p.reveal_to_analyst("a<b", a < b)
    p.reveal_to_analyst("a<=b", a <= b)
    p.reveal_to_analyst("a>=b", a >= b)
    p.reveal_to_analyst("a>b", a > b)
    p.reveal_to_analyst("a==b", a == b)
    p.reveal_to_analyst("a!=b", a != b)
    p.reveal_to_analyst("last^2", squares[-1])
    # MAMBA's if_then/else_then on a clear condition becomes an oblivious selection on a
    # secret one: both branches are computed, the secret bit picks.
    p.reveal_to_analyst("if_a>b", mpc.if_else(a > b, sint(123), sint(789)))


@program
async def millionaires(p: Program) -> None:
    """Yao's millionaires: is the first owner richer than the second? Each owner's
    wealth is the local sum of its value column (its accounts); one bit comes out."""
    sint = p.sint()
    first = await p.input_from(0, sint, reduce="sum")
    second = await p.input_from(1, sint, reduce="sum")
    p.reveal_to_analyst("first_is_richer", first > second)


@program
async def vectorize(p: Program) -> None:
    """SCALE-MAMBA's Programs/vectorize: a public vector a (a_i = 2i) against the first
    owner's private vector b, element-wise, with no per-element loop."""
    sint = p.sint(2 * p.ctx.bit_length + 8)
    b = await p.input_from(0, sint)
    a = np.array([2 * i for i in range(b.shape[0])], dtype=object)
    c = b * a  # secret × public
    d = b + a  # secret + public
    f = d * b  # secret × secret (the original multiplies by the opened d: kept secret here)
    p.reveal_to(1, "c", c)  # the original's c.reveal_to(1)
    p.reveal_to(2, "d", d)  # and d.reveal_to(2)
    p.reveal_to_analyst("f", f)


@program
async def test_map_reduce(p: Program) -> None:
    """SCALE-MAMBA's Programs/test_map_reduce: map every row of every owner to the
    tuple (1, 2, x), reduce by element-wise sums; rows per owner in one array operation,
    owners combined by MPyC's log-depth tree reduction (mpctools.reduce)."""
    from mpyc import mpctools  # the worker has imported MPyC; never at module import

    mpc = p.mpc
    sint = p.sint()
    partials = []
    for owner in range(len(p.ctx.owners)):
        x = await p.input_from(owner, sint)
        ones = x * 0 + 1  # the map's constant parts, as secure arrays of x's shape
        mapped = mpc.np_stack([ones, ones * 2, x])  # shape (3, rows)
        partials.append(mpc.np_sum(mapped, axis=1))
    total = mpctools.reduce(lambda u, v: u + v, partials)
    p.reveal_to_analyst("count", total[0])
    p.reveal_to_analyst("twice", total[1])
    p.reveal_to_analyst("sum", total[2], scaled=True)
