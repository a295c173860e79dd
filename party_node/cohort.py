"""The smallest cohort of this owner's rows behind any aggregate a job would release.

For the policy's ``min_cohort``: every released aggregate must draw on at least k
of this dataset's rows, or on none (an aggregate with none of them says nothing
about them). Computed on the owner's own data with the same local pre-aggregation
the protocols use, so it costs one scan (pushed down to SQL for SQL sources).

What "an aggregate" is here, per the roles a job reads:
- a ``key`` (joins): the distinct keys this owner contributes — per group when
  the input also has a ``group``. The matched set of a join is only known inside
  MPC, so this bounds this owner's side; DP covers the rest.
- a ``group``: the rows of each listed group (``params.groups``; every group when
  the protocol takes no list).
- otherwise: the rows the job selects (``params.min``/``max`` on the value).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np

from ensnif_mpc.config import DatasetConfig
from ensnif_mpc.data.bounding import Bound
from ensnif_mpc.data.sources import Measure, Where
from ensnif_mpc.errors import FailedPrecondition
from ensnif_mpc.privacy import dp
from party_node import datasets


def smallest(
    ds: DatasetConfig, roles: Mapping[str, str], params: Mapping[str, Any], position: int = 0
) -> int:
    """The smallest non-zero cohort (0 when every cohort is empty).

    Every number the job opens counts: each histogram bin (``params.edges``), each group,
    and for a join this owner's side of the joined selection: its distinct keys after the
    first owner's value filter (``min``/``max``) and per-key ``threshold``, which select
    rows of the first owner only (``position`` 0). The matched set itself exists only
    inside MPC; DP covers it (a cohort inside MPC is not computed here)."""
    source = datasets.open_dataset(ds)
    where = []
    value = roles.get("value")
    if value is not None and ("key" not in roles or position == 0):
        if params.get("min") is not None:
            where.append(Where(value, ">=", params["min"]))
        if params.get("max") is not None:
            where.append(Where(value, "<=", params["max"]))
    edges = params.get("edges")
    if value is not None and "key" not in roles and "group" not in roles and edges:
        return _smallest_bin(source, value, list(edges), where)
    if "key" in roles and position == 0 and params.get("threshold") is not None:
        return _smallest_above(source, roles, float(params["threshold"]), where, params)
    by = [roles[r] for r in ("group", "key") if r in roles]
    agg = source.aggregate(by=by, measures=[Measure("count")], where=where)
    if not by:
        return agg.rows
    if "group" in roles:
        labels = agg.keys[roles["group"]]
        if "key" in roles:  # distinct keys per group: each aggregate row is one (group, key)
            counts = np.ones(len(labels), dtype=np.int64)
        else:
            counts = np.asarray(agg.values["count"], dtype=np.int64)
        wanted = params.get("groups")
        sizes: dict[Any, int] = {}
        for label, n in zip(labels.tolist(), counts.tolist(), strict=True):
            sizes[str(label)] = sizes.get(str(label), 0) + int(n)
        if wanted:
            sizes = {k: v for k, v in sizes.items() if k in {str(g) for g in wanted}}
        nonzero = [v for v in sizes.values() if v > 0]
        return min(nonzero, default=0)
    return agg.groups if agg.groups else len(agg.keys[roles["key"]])


def _smallest_bin(source: Any, value: str, edges: list[Any], where: list[Where]) -> int:
    """The smallest non-empty histogram bin [e_i, e_(i+1)) (the last one closed)."""
    sizes = []
    for i in range(len(edges) - 1):
        upper = Where(value, "<=" if i == len(edges) - 2 else "<", edges[i + 1])
        rows = source.aggregate(
            [], [Measure("count")], [*where, Where(value, ">=", edges[i]), upper]
        )
        sizes.append(int(rows.rows))
    return min((n for n in sizes if n > 0), default=0)


def _smallest_above(
    source: Any,
    roles: Mapping[str, str],
    threshold: float,
    where: list[Where],
    params: Mapping[str, Any],
) -> int:
    """A join's first owner under a per-key threshold: its distinct keys whose total of
    the ``filter`` column exceeds the threshold (per group when the input has one)."""
    column = roles.get("filter") or roles.get("value")
    if column is None:
        return 0
    by = [roles[r] for r in ("group", "key") if r in roles]
    agg = source.aggregate(by=by, measures=[Measure("sum", column)], where=where)
    scale = next(c.decimals for c in source.columns if c.name == column)
    sums = np.asarray(agg.values[f"sum:{column}"], dtype=object)
    kept = [i for i, t in enumerate(sums.tolist()) if t / 10**scale > threshold]
    if "group" not in roles:
        return len(kept)
    labels = agg.keys[roles["group"]].tolist()
    sizes: dict[str, int] = {}
    for i in kept:
        sizes[str(labels[i])] = sizes.get(str(labels[i]), 0) + 1
    wanted = params.get("groups")
    if wanted:
        sizes = {k: v for k, v in sizes.items() if k in {str(g) for g in wanted}}
    return min((v for v in sizes.values() if v > 0), default=0)


def withheld(smallest: int, ds: DatasetConfig, rho: Fraction) -> bool:
    """The min_cohort rule of a DP release, enforced without telling: True when the
    smallest cohort plus discrete Gaussian noise (OpenDP's exact sampler, scale
    rows_per_person/√(2ρ_c): ρ_c-zCDP for one person's rows) is below min_cohort. The
    owner's rows are then withheld from the job (it runs on an empty selection here) and
    the job is charged as if answered: the decision is a function of a DP output only,
    and nothing the analyst sees (state, reason, timing) tells it apart.
    An empty selection (0) withholds nothing, whatever the noise."""
    if smallest <= 0 or rho <= 0:
        return False
    sigma = ds.privacy.rows_per_person / math.sqrt(2 * float(rho))
    noisy = smallest + dp.sample_shares(min(sigma, dp.MAX_SIGMA_SHARE), 1)[0]
    return noisy < ds.policy.min_cohort


def check_person_bound(ds: DatasetConfig, params: Mapping[str, Any]) -> None:
    """Group discovery's DP release counts a person in at most ``groups_per_person``
    groups here; without a person column that holds only if the person's rows are that
    few. Refused before any data is read (the same whatever the data)."""
    from protocols import discovery

    if not ds.privacy.person_column and discovery.per_person(params) < ds.privacy.rows_per_person:
        raise FailedPrecondition(
            f"dataset {ds.name!r}: group discovery counts a person in at most "
            f"{discovery.per_person(params)} group(s), which needs a person_column to "
            f"enforce (rows_per_person is {ds.privacy.rows_per_person}); set one, or ask "
            "with groups_per_person at least rows_per_person",
            reason="dp_unavailable",
        )


def slots_overflow(
    ds: DatasetConfig, roles: Mapping[str, str], params: Mapping[str, Any], rho: Fraction
) -> bool:
    """Group discovery's candidate bound, enforced without telling: True when this owner's
    labels (as its worker counts them: ``protocols.discovery.local_counts``) plus discrete
    Gaussian noise exceed ``max_groups`` less a margin. One person brings at most
    g = min(groups_per_person, rows_per_person) labels: scale g/√(2ρ_c). The owner's rows
    are then withheld and the job charged as if answered, like the minimum cohort's rule.

    The margin makes an owner with more labels than slots pass with probability at most
    δ (the job's ``delta``): only then would the program keep its first ``max_groups``
    labels. An owner well under the bound is almost never withheld."""
    from protocols import discovery

    if rho <= 0 or "group" not in roles:
        return False
    slots, width = discovery.sizes(params)
    source = datasets.open_dataset(ds)
    if ds.privacy.person_column:
        source.bound = Bound(ds.privacy.person_column, ds.privacy.rows_per_person)
    labels = discovery.local_counts(source, roles["group"], discovery.per_person(params), width)
    g = min(discovery.per_person(params), ds.privacy.rows_per_person)
    sigma = min(g / math.sqrt(2 * float(rho)), dp.MAX_SIGMA_SHARE)
    delta = float(params.get("delta", discovery.DEFAULT_DELTA))
    margin = math.ceil(sigma * math.sqrt(2 * math.log(1 / delta)))
    noisy = len(labels) + dp.sample_shares(sigma, 1)[0]
    return bool(noisy > slots - margin)
