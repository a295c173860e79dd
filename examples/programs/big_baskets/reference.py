"""The same computation in the clear, for `ensnif program check` (numpy on the generated data)."""

import numpy as np


def big_baskets(tables, params):
    threshold = params.get("threshold", 50)
    values = np.concatenate([np.asarray(t["value"], dtype=float) for t in tables])
    big = values[values >= threshold]
    return {"count_above": float(big.size), "sum_above": float(big.sum())}
