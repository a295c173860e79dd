"""Ports of SCALE-MAMBA's fixed-point programs: ``test_sfix`` (arithmetic with negatives
and comparisons), ``test_math`` (sin, cos, tan, exp, log) and ``test_sqrt``.

Who provides what: ``test_sfix`` — the first owner a column a, the second a column b (the
same length), the public ``public_b`` (numbers, that length); ``test_math`` and
``test_sqrt`` — the first owner a column x. Values as declared (any decimals); they go
in as secure fixed point with 32 fractional bits in 64 bits (MPyC's SecFxp(64, 32)).

What is computed, and how exactly (the bounds the tests check, with margin):
- ``test_sfix``: a±b, a·b, a/b, b/a, and with the public b: a+b', a·b', a/b', b'/a; a<b,
  a==b. Sums exact; products within 2^-31 absolute; quotients within 1e-6 absolute for
  operands in [1, 2^15) in magnitude.
- ``test_math``: sin, cos, tan of x (MPyC's sincos, Korzilius–Schoenmakers), within 1e-6
  absolute where |cos x| > 0.1 for tan; exp(x) within 1e-6 relative for |x| <= 8
  (range reduction by 2^4, a degree-9 Taylor polynomial from a tree of powers, four
  squarings), and log|x| within 1e-6 absolute for 1/64 <= |x| <= 64 (Halley's iteration
  on exp, five steps from 0).
- ``test_sqrt``: sqrt(x) = exp(log(x)/2) refined by one Newton step, within 1e-6 relative
  for 1/64 <= x <= 64.

All element-wise work is on secure arrays; MPyC has sin and cos for scalars only, so
those loop over the elements (a loop of independent calls, batched into the same rounds).

What is revealed: the declared outputs, to the analyst only. What leaks: the owners' row
counts to the parties (public in the catalog).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from protocols.program import Program, program

FRAC_BITS = 32
EXP_HALVINGS = 4  # exp(x) = exp(x / 2^4)^(2^4): |x / 16| <= 1/2 for |x| <= 8
EXP_DEGREE = 9  # Taylor remainder of e^z, |z| <= 1/2: below 0.5^10/10! ≈ 2.7e-10
LOG_STEPS = 5  # from 0, enough for |ln x| <= ln 64 (then the error is below 1e-12)


def exp(x: Any) -> Any:
    """e^x for a secure fixed-point array, |x| <= 8: the Taylor polynomial of e^(x/16) from
    its powers (computed by a tree: four rounds for z..z^9, not nine as by Horner), then
    four squarings."""
    z = x * (1 / 2**EXP_HALVINGS)
    powers = {1: z}
    powers[2] = z * z
    powers[3], powers[4] = powers[2] * z, powers[2] * powers[2]
    for k in range(5, 9):
        powers[k] = powers[4] * powers[k - 4]
    powers[9] = powers[8] * z
    acc = powers[1] + 1
    for k in range(2, EXP_DEGREE + 1):
        acc = acc + powers[k] * (1 / math.factorial(k))
    for _ in range(EXP_HALVINGS):
        acc = acc * acc
    return acc


def log(x: Any) -> Any:
    """ln x for a secure fixed-point array of positive values in [1/64, 64]:
    y ← y + 2(x − e^y)/(x + e^y), from y = 0 (each step moves y by less than 2; the
    convergence is then cubic)."""
    y = x * 0
    for _ in range(LOG_STEPS):
        e = exp(y)
        y = y + (x - e) * 2 / (x + e)
    return y


def sqrt(x: Any) -> Any:
    """sqrt x for x in [1/64, 64]: exp(ln(x)/2) and one Newton step."""
    y = exp(log(x) * 0.5)
    return (y + x / y) * 0.5


@program
async def test_sfix(p: Program) -> None:
    fixed = p.fixed(FRAC_BITS)
    a = await p.input_from(0, fixed)
    b = await p.input_from(1, fixed)
    public_b = np.array([float(v) for v in p.public("public_b")])
    if public_b.shape != a.shape or b.shape != a.shape:
        raise ValueError("test_sfix: a, b and params.public_b must have the same length")
    outputs = {
        "a+b": a + b,
        "a-b": a - b,
        "a*b": a * b,
        "a/b": a / b,
        "b/a": b / a,
        "a+pb": a + public_b,
        "a*pb": a * public_b,
        "a/pb": a * (1 / public_b),
        "pb/a": (1 / a) * public_b,
        "a<b": a < b,
        "a==b": a == b,
    }
    for name, value in outputs.items():
        p.reveal_to_analyst(name, value)


@program
async def test_math(p: Program) -> None:
    mpc = p.mpc
    x = await p.input_from(0, p.fixed(FRAC_BITS))
    pairs = [mpc.sincos(x[i]) for i in range(x.shape[0])]  # MPyC: scalars only
    sin = [s for s, _ in pairs]
    cos = [c for _, c in pairs]
    for i, (s, c) in enumerate(zip(sin, cos, strict=True)):
        p.reveal_to_analyst(f"sin[{i}]", s)
        p.reveal_to_analyst(f"cos[{i}]", c)
        p.reveal_to_analyst(f"tan[{i}]", s / c)
    p.reveal_to_analyst("exp", exp(x))
    p.reveal_to_analyst("log_abs", log(mpc.np_absolute(x)))


@program
async def test_sqrt(p: Program) -> None:
    x = await p.input_from(0, p.fixed(FRAC_BITS))
    p.reveal_to_analyst("sqrt", sqrt(x))
