"""The elliptic-curve work of the join's PRF (protocols/prf.py), timed alone on one core, the
way prf.pseudonyms does it: a designated party turns each of its weighted shares into a point
(a fixed-base scalar multiplication), and every party adds the t+1 published points of each
element."""

from __future__ import annotations

import secrets
import time

from protocols.prf import Q


def per_point_us(n: int = 500, rounds: int = 5) -> tuple[float, float]:
    """(µs per scalar multiplication + serialization, µs per parse-and-add of two points),
    each the best of ``rounds`` batches of ``n`` (the machine is shared)."""
    from coincurve import PublicKey

    mult = add = float("inf")
    for _ in range(rounds):
        scalars = [secrets.randbelow(Q - 1) + 1 for _ in range(n)]
        t = time.perf_counter()
        raw = [PublicKey.from_valid_secret(s.to_bytes(32, "big")).format(False) for s in scalars]
        mult = min(mult, (time.perf_counter() - t) / n)
        t = time.perf_counter()
        for x, y in zip(raw, reversed(raw), strict=True):
            PublicKey.combine_keys([PublicKey(x), PublicKey(y)]).format()
        add = min(add, (time.perf_counter() - t) / n)
    return mult * 1e6, add * 1e6


def print_costs(mult: float, add: float) -> None:
    print()
    print(
        f"PRF point work on this machine (one core, coincurve): {mult:.0f} µs per point a "
        f"designated party publishes, {add:.0f} µs per element to combine two published points "
        "(every party combines every element). With 3 parties each party publishes 2/3 of "
        "the elements."
    )
