"""Plaintext references of the ports: the same computations in the clear (exact where
the port is exact: fractions in, fractions out)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from protocols.registry import Table


def _column(table: Table) -> list[Any]:
    return list(np.asarray(table["value"]).tolist())


def _each(name: str, values: Sequence[Any]) -> dict[str, float]:
    return {f"{name}[{i}]": float(v) for i, v in enumerate(values)}


def _matrix(name: str, rows: Sequence[Sequence[Any]]) -> dict[str, float]:
    return {f"{name}[{i},{j}]": float(v) for i, row in enumerate(rows) for j, v in enumerate(row)}


def tutorial(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    x = _column(tables[0])
    a, b = x[0], params.get("b", 2)
    return {
        "a+b": float(a + b),
        "a+a": float(a + a),
        "a*b": float(a * b),
        "a*a": float(a * a),
        "a-b": float(a - b),
        "a<b": float(a < b),
        "a<=b": float(a <= b),
        "a>=b": float(a >= b),
        "a>b": float(a > b),
        "a==b": float(a == b),
        "a!=b": float(a != b),
        "last^2": float(x[-1] * x[-1]),
        "if_a>b": 123.0 if a > b else 789.0,
    }


def millionaires(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    first, second = (sum(_column(t)) for t in tables[:2])
    return {"first_is_richer": float(first > second)}


def vectorize(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    b = _column(tables[0])
    a = [2 * i for i in range(len(b))]
    d = [bi + ai for ai, bi in zip(a, b, strict=True)]
    return {
        **_each("c", [bi * ai for ai, bi in zip(a, b, strict=True)]),
        **_each("d", d),
        **_each("f", [di * bi for di, bi in zip(d, b, strict=True)]),
    }


def test_map_reduce(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    values = [v for t in tables for v in _column(t)]
    return {"count": float(len(values)), "twice": float(2 * len(values)), "sum": float(sum(values))}


def _shaped(values: Sequence[Any], rows: int, cols: int) -> list[list[Fraction]]:
    flat = [Fraction(v) for v in values]
    return [flat[i * cols : (i + 1) * cols] for i in range(rows)]


def _matmul(a: list[list[Fraction]], b: list[list[Fraction]]) -> list[list[Fraction]]:
    return [
        [
            sum((x * y for x, y in zip(row, col, strict=True)), Fraction(0))
            for col in zip(*b, strict=True)
        ]
        for row in a
    ]


def rref(a: list[list[Fraction]]) -> list[list[Fraction]]:
    """Gauss–Jordan without pivoting, exactly (what the port computes in fixed point)."""
    m = [list(row) for row in a]
    for k in range(len(m)):
        pivot = m[k][k]
        m[k] = [v / pivot for v in m[k]]
        for i in range(len(m)):
            if i != k:
                factor = m[i][k]
                m[i] = [v - factor * w for v, w in zip(m[i], m[k], strict=True)]
    return m


def local_test(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    n, inner, m = (int(params[k]) for k in ("n", "l", "m"))
    a = _shaped(_column(tables[0]), n, inner)
    b = _shaped(_column(tables[1]), inner, m)
    public_a = _shaped(params["public_a"], n, inner)
    public_b = _shaped(params["public_b"], inner, m)
    return {
        **_matrix("SC", _matmul(a, public_b)),
        **_matrix("CS", _matmul(public_a, b)),
        **_matrix("SS", _matmul(a, b)),
        **_matrix("GE", rref(a)),
    }


def test_sfix(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    a = [float(v) for v in _column(tables[0])]
    b = [float(v) for v in _column(tables[1])]
    pb = [float(v) for v in params["public_b"]]
    pairs = list(zip(a, b, pb, strict=True))
    return {
        **_each("a+b", [x + y for x, y, _ in pairs]),
        **_each("a-b", [x - y for x, y, _ in pairs]),
        **_each("a*b", [x * y for x, y, _ in pairs]),
        **_each("a/b", [x / y for x, y, _ in pairs]),
        **_each("b/a", [y / x for x, y, _ in pairs]),
        **_each("a+pb", [x + z for x, _, z in pairs]),
        **_each("a*pb", [x * z for x, _, z in pairs]),
        **_each("a/pb", [x / z for x, _, z in pairs]),
        **_each("pb/a", [z / x for x, _, z in pairs]),
        **_each("a<b", [float(x < y) for x, y, _ in pairs]),
        **_each("a==b", [float(x == y) for x, y, _ in pairs]),
    }


def test_math(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    x = [float(v) for v in _column(tables[0])]
    return {
        **_each("sin", [math.sin(v) for v in x]),
        **_each("cos", [math.cos(v) for v in x]),
        **_each("tan", [math.tan(v) for v in x]),
        **_each("exp", [math.exp(v) for v in x]),
        **_each("log_abs", [math.log(abs(v)) for v in x]),
    }


def test_sqrt(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    return _each("sqrt", [math.sqrt(float(v)) for v in _column(tables[0])])


def test_float_sorting(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    return _each("sorted", sorted(v for t in tables for v in _column(t)))


def keccak_f1600(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    from protocols.ports.keccak import lanes, permute  # the same code, on clear bits

    bits = np.array([int(v) for v in _column(tables[0])], dtype=np.int64)
    # Exact integers (a float would round a 64-bit lane).
    return {f"lane[{i}]": int(v) for i, v in enumerate(lanes(permute(bits).astype(object)))}


def rescue_hash(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    from protocols.ports.rescue import P, clear_hash  # the same permutation, in the clear

    digest = clear_hash([int(v) for v in _column(tables[0])])
    return {"digest": digest - P if digest > P // 2 else digest}  # as the analyst reads it


def aes128(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    from protocols.ports.aes import encrypt  # AES-128 in the clear, on numpy bytes

    key, plaintext = (np.array([int(v) for v in _column(t)], dtype=np.int64) for t in tables[:2])
    return {f"ct[{i}]": int(v) for i, v in enumerate(encrypt(key, plaintext))}
