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
from ensnif_mpc.data.sources import Measure, Where
from ensnif_mpc.privacy import dp
from party_node import datasets


def smallest(ds: DatasetConfig, roles: Mapping[str, str], params: Mapping[str, Any]) -> int:
    """The smallest non-zero cohort (0 when every cohort is empty)."""
    source = datasets.open_dataset(ds)
    where = []
    value = roles.get("value")
    if value is not None and "key" not in roles:
        if params.get("min") is not None:
            where.append(Where(value, ">=", params["min"]))
        if params.get("max") is not None:
            where.append(Where(value, "<=", params["max"]))
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
