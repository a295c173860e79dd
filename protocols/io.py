"""The small I/O layer between a protocol program and its worker.

A program gets a :class:`Context` (its runtime, this party's own data through
:class:`LocalData`, the session sizes) and returns named secure outputs; it
never prints or opens a secret. The worker turns those outputs into sealed
shares for the analyst.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import numpy as np

from ensnif_mpc.data.sources import Aggregate, Measure, Source, Where
from ensnif_mpc.jobs.protocol import GRID_ROLES


def scaled_bound(bound: float, decimals: int, upper: bool) -> int:
    """A bound on a column's integer scale (values are integers × 10**decimals).

    A bound between two grid points must not admit the point beyond it: an upper
    bound is floored and a lower bound ceiled, on the exact decimal the user wrote
    (a float product such as 0.29 * 100 = 28.999... would floor wrongly).
    """
    exact = Decimal(repr(float(bound))).scaleb(decimals)
    return int(exact.to_integral_value(ROUND_FLOOR if upper else ROUND_CEILING))


class LocalData:
    """This owner's dataset, addressed by role; only local pre-aggregations come out.

    ``source`` is this owner's :class:`ensnif_mpc.data.sources.Source`. Sums of the roles
    on the grid (``value``, ``features``, ``label``, ``weight``) are on the session's
    decimal scale (so every owner's partials add up); other numeric roles keep their
    column's declared decimals. ``columns`` maps each single-column role to its column,
    ``lists`` each role given a list (e.g. features) to its columns in the job's order;
    a column of a list is addressed as ``"features[j]"`` wherever a role is named.
    """

    def __init__(
        self,
        source: Source,
        columns: dict[str, str],
        decimals: int,
        withheld: bool = False,
        lists: dict[str, list[str]] | None = None,
        min_cohort: int = 0,
    ) -> None:
        self.source = source
        self.columns = columns
        self.lists = dict(lists or {})
        self.decimals = decimals
        # The owner's min_cohort rule withheld its rows (silently, on a noisy count): every
        # pre-aggregation is that of an empty selection, the program runs unchanged.
        self.withheld = withheld
        # This owner's min_cohort where the protocol enforces it on the joint noisy count
        # inside MPC (it is input as a secret there); 0 otherwise.
        self.min_cohort = min_cohort

    def name(self, ref: str) -> str:
        """The column behind ``ref``: a single role, or ``role[j]``, a list's j-th column."""
        if ref.endswith("]") and "[" in ref:
            role, j = ref[:-1].split("[", 1)
            return self.role_names(role)[int(j)]
        return self.columns[ref]

    def role_names(self, role: str) -> list[str]:
        """The columns of ``role`` in order (one for a role given a single column)."""
        if role in self.lists:
            return list(self.lists[role])
        return [self.columns[role]]

    def scale(self, role: str) -> int:
        if role.split("[", 1)[0] in GRID_ROLES:
            return self.decimals
        declared = {c.name: c for c in self.source.columns}
        return declared[self.name(role)].decimals

    def _refs(self) -> list[str]:
        singles = list(self.columns)
        return singles + [f"{r}[{j}]" for r, cols in self.lists.items() for j in range(len(cols))]

    def aggregate(
        self,
        by: Sequence[str] = (),
        measures: Sequence[tuple[str, str | None]] = (("count", None),),
        where: Sequence[tuple[str, str, float | int | str]] = (),
    ) -> Aggregate:
        """GROUP BY roles ``by``; measures as (func, role); results keyed by role names."""
        col = self.name
        scaled = [r for r in self._refs() if r.split("[", 1)[0] in GRID_ROLES | {"filter"}]
        result = self.source.aggregate(
            by=[col(r) for r in by],
            measures=[Measure(f, col(r) if r else None) for f, r in measures],
            where=[Where(col(r), op, v) for r, op, v in where],
            scale={col(r): self.scale(r) for r in scaled},
        )
        keys = {r: result.keys[col(r)] for r in by}
        values = {
            (f if r is None else f"{f}:{r}"): result.values[Measure(f, col(r) if r else None).name]
            for f, r in measures
        }
        if self.withheld:
            return _empty(keys, values, bool(by))
        return Aggregate(keys=keys, values=values, rows=result.rows, groups=result.groups)

    def column(self, role: str, scaled: bool = False) -> np.ndarray:
        values = self.source.column(self.name(role), self.scale(role) if scaled else None)
        return values[:0] if self.withheld else values

    def columns_of(self, refs: Sequence[str], scaled: bool = False) -> list[np.ndarray]:
        """Several roles' columns (``role`` or ``role[j]``) read together from the same rows,
        as :meth:`column` gives each (one pass over a file)."""
        names = [self.name(r) for r in refs]
        scales = {self.scale(r) for r in refs} if scaled else {None}
        if len(scales) == 1:
            got = self.source.read_columns(names, scales.pop()) if names else []
        else:  # roles on different scales: one read per column
            got = [self.source.column(n, self.scale(r)) for n, r in zip(names, refs, strict=True)]
        return [v[:0] for v in got] if self.withheld else got

    def matrix(self, role: str, scaled: bool = False) -> np.ndarray:
        """The columns of ``role`` as one rows × columns array, column j the job's j-th:
        int64 on the session's grid when ``scaled`` (every column of a grid role on the
        same scale), else each column as declared (float64 if any is a float column)."""
        names = self.role_names(role)
        scale = self.scale(role) if scaled else None
        columns = self.source.read_columns(names, scale) if names else []
        out = np.column_stack(columns) if columns else np.empty((0, 0))
        return out[:0] if self.withheld else out


def _empty(keys: dict[str, np.ndarray], values: dict[str, np.ndarray], grouped: bool) -> Aggregate:
    """The pre-aggregation of no rows, shaped as the source returns it: no groups when
    grouped, else one group with count and sums 0 and min and max None."""
    if grouped:
        return Aggregate(
            {r: k[:0] for r, k in keys.items()}, {n: v[:0] for n, v in values.items()}, 0, 0
        )
    out = {}
    for name, v in values.items():
        blank = np.empty(len(v), dtype=v.dtype)
        blank[:] = None if name.startswith(("min", "max")) else 0
        out[name] = blank
    return Aggregate(keys, out, 0, len(next(iter(values.values()), [])))


@dataclass
class Context:
    mpc: Any  # the MPyC runtime of this worker process (MPyC has no type stubs)
    index: int
    owners: list[int]  # party indices of the data owners, in input order
    local: LocalData | None  # this party's data; None at a compute-only party
    params: dict[str, Any]
    bit_length: int
    decimals: int
    progress: Callable[[str, float], None]
    # Public: per data owner (input order), the role → column names it provides.
    input_roles: tuple[dict[str, str], ...] = ()
    # Public: per data owner (input order), the roles it fills with a list of columns.
    input_role_lists: tuple[dict[str, list[str]], ...] = ()
    # True when the release is noised (DP): programs then output integers only (e.g. the
    # mean as sum and count), since noise is added on the integer grid before opening.
    dp: bool = False
    # This party's shares of the artifacts the job takes as input (ArtifactShare dicts).
    artifacts: tuple[dict[str, Any], ...] = ()
    # DP release: the noise blocks an iterative program opens round by round
    # (protocols.rounds.NoisyRounds, set by the worker); None for an exact release.
    rounds: Any = None
    # An outsourced dataset's input in this job (protocols/he_outsourced.py), set by the
    # worker at every party: its position, this party's per-job key, what the holder staged.
    outsourced: Any = None

    @property
    def is_owner(self) -> bool:
        return self.index in self.owners

    def scaled_bound(self, bound: float, upper: bool) -> int:
        return scaled_bound(bound, self.decimals, upper)


@dataclass(frozen=True)
class SecureOutput:
    name: str
    value: Any  # a secure scalar (secint/secfxp) produced by the program
    # True when the value is on the column's decimal scale (a sum, a mean), False for a count;
    # an integer k: on that scale to the power k (2 for a product of two sums).
    on_value_scale: bool | int = True
    # Released with DP noise (integer outputs only) when the job's release is not exact.
    noisy: bool = True
    # Where it goes (ensnif_mpc.jobs.protocol): "analyst", "party:<i>" (opened by that MPC
    # party's member only) or "artifact" (kept secret-shared; the value may be an array).
    to: str = "analyst"
