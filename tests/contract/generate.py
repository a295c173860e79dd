"""Owners' datasets for a protocol's declared example, and the tables its reference reads.

Everything comes from the registry entry: the roles at each input position say which
columns an owner has, the :class:`ensnif_mpc.jobs.protocol.Example` says how many rows,
the bounds and decimals of the value column, how many join keys and how many of them the
owners share, the group labels, or the owner's columns verbatim (a known answer).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from ensnif_mpc.data.schema import Column
from ensnif_mpc.jobs.protocol import Example, ProtocolDef
from tests.protocols.harness import OwnerTable, draw, exact, exact_params

PARTIES = 3  # every MPC run of the suite: three real parties (helpers fill up the owners)
FILTER_MAX = 10  # a filter column: integers 0..10 (its own decimals: 0)
KEY_SPAN = 10**6


def rows_of(example: Example, position: int) -> int:
    return example.rows[min(position, len(example.rows) - 1)]


def _keys(example: Example, position: int, rng: np.random.Generator, rows: int) -> np.ndarray:
    """Keys drawn from a pool of ``example.keys``: ``overlap`` of it common to all owners,
    the rest the owner's own, with duplicates (several rows per key)."""
    shared = round(example.keys * example.overlap)
    own = example.keys - shared
    pool = np.concatenate([np.arange(shared), 1000 * (position + 1) + np.arange(own)]).astype(
        np.int64
    )
    return rng.choice(pool, size=rows)


def owner_table(
    definition: ProtocolDef, example: Example, position: int, rng: np.random.Generator
) -> OwnerTable:
    """Owner ``position``'s dataset: one column per role it fills (required, or optional
    and named by the example)."""
    given = example.data[position] if position < len(example.data) else None
    rows = len(next(iter(given.values()))) if given else rows_of(example, position)
    data: dict[str, Any] = {}
    columns: list[Column] = []
    roles: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    for role in definition.roles_at(position):
        if not (role.required or role.name in example.optional_roles):
            continue
        name = role.name
        if role.many:  # columns name0, name1, …: numbers like the value column's
            count = example.columns.get(name, role.min_columns)
            lists[name] = [f"{name}{j}" for j in range(count)]
            for column in lists[name]:
                data[column], declared = _numbers(example, rng, rows, column)
                columns.append(declared)
            continue
        if name == "label":
            data[name], declared = _numbers(example, rng, rows, name)
            roles[name] = name
            columns.append(declared)
            continue
        roles[name] = name
        if given is not None and name in given:
            values = np.asarray(given[name])
        elif name == "value":
            values = draw(rng, rows, example.lower, example.upper, example.decimals)
        elif name == "filter":
            values = rng.integers(0, FILTER_MAX, size=rows, endpoint=True)
        elif name == "key":
            values = _keys(example, position, rng, rows)
        elif name == "group":
            values = rng.choice(np.array(example.groups, dtype=object), size=rows)
        else:
            raise AssertionError(f"no generator for role {name!r}")
        if name == "value":
            kind = "float" if example.decimals else "int"
            if kind == "int":
                values = values.astype(np.int64)
            columns.append(Column(name, kind, example.lower, example.upper, example.decimals))
        elif name == "filter":
            columns.append(Column(name, "int", 0, FILTER_MAX))
        elif name == "key":
            columns.append(Column(name, "int", 0, KEY_SPAN))
        else:
            columns.append(Column(name, "string"))
        data[name] = values
    return OwnerTable(data, tuple(columns), roles, lists=lists)


def _numbers(
    example: Example, rng: np.random.Generator, rows: int, name: str
) -> tuple[np.ndarray, Column]:
    """A numeric column drawn within the example's bounds at its decimals."""
    values = draw(rng, rows, example.lower, example.upper, example.decimals)
    kind = "float" if example.decimals else "int"
    if kind == "int":
        values = values.astype(np.int64)
    return values, Column(name, kind, example.lower, example.upper, example.decimals)


def owners(definition: ProtocolDef, example: Example, seed: int) -> list[OwnerTable | None]:
    """The example's owners in input order, then helpers up to three parties."""
    rng = np.random.default_rng(seed)
    tables: list[OwnerTable | None] = [
        owner_table(definition, example, i, rng) for i in range(example.owners)
    ]
    return tables + [None] * max(0, PARTIES - example.owners)


def reference_tables(
    tables: list[OwnerTable | None], decimals: int, fractions: bool
) -> list[dict[str, Any]]:
    """What a reference reads: keys as given; numbers as floats (the contract), or as exact
    fractions on their decimals where the result is compared exactly (a float sum would
    round)."""
    out = []
    for table in tables:
        if table is None:
            continue
        row: dict[str, Any] = {}
        for role, values in table.role_values().items():
            if fractions and role in ("value", "filter"):
                row[role] = exact(values, decimals if role == "value" else 0)
            else:
                row[role] = values
        out.append(row)
    return out


def reference(
    definition: ProtocolDef, tables: list[OwnerTable | None], example: Example
) -> dict[str, float]:
    exactly = not (example.rel_error or example.abs_error)
    params = exact_params(example.params) if exactly else dict(example.params)
    return definition.reference(reference_tables(tables, example.decimals, exactly), params)


def close(got: Fraction | float, want: float, example: Example) -> bool:
    """Equal (NaN to NaN), or within the example's declared error."""
    g, w = float(got), float(want)
    if np.isnan(w) or np.isnan(g):
        return bool(np.isnan(w) and np.isnan(g))
    if not (example.rel_error or example.abs_error):
        if isinstance(want, int):  # an exact integer (e.g. a 64-bit lane): no float rounding
            return Fraction(got) == want
        return g == w
    return abs(g - w) <= max(example.abs_error, example.rel_error * abs(w))
