"""Statistics of a numeric column held by one or more data owners.

Variance, standard deviation, minimum and maximum, histogram and quantile.

Who provides what: each data owner feeds one numeric column (the ``value`` role) of
its own dataset; a compute-only party (the helper) feeds nothing.

How: nothing in MPC is per row. Each owner first reduces its own rows locally (in its
own database for a SQL source) to a handful of exact integers on the session's decimal
scale, and secret-shares only those:

* variance, stdev: (count N, sum S, sum of squares Q). The parties add them and form
  A = N·Q − S² and D = N·(N − 1) exactly, so there is no cancellation; the sample
  variance is A / D and the standard deviation sqrt(A / D) (on the squared and the plain
  scale). Both come from one bit decomposition per operand, which splits it as
  m·4^k with m in [1/4, 1), and Newton's iteration for 1/sqrt(m) (see
  :func:`normalize`), in fixed point sized from the session's bit length.
* minmax: its local minimum and maximum (a sentinel beyond every bound when it has no
  row) and a non-empty bit; the parties take the minimum and maximum over owners —
  a few secure comparisons, not one per row.
* histogram: its counts per public bin; the vectors are added.
* quantile: its counts per point of a public grid (values rounded down onto it); the
  parties add them, take cumulative counts C and compare den·C_j < num·N for all j in
  one vectorized comparison (q = num/den exactly, N stays secret); the number of ones
  is the index of the inverted-CDF quantile on the grid.

What is revealed: nothing, to any party. The outputs stay secret-shared; each worker
hands its re-randomized share to the analyst (see ``protocols.worker``).

What leaks, to the analyst only, beyond the declared outputs: for variance and stdev
whether fewer than two rows were selected, for minmax and quantile whether none was
(the output is then NaN). The quantile is only known to the grid's resolution.

DP release (``ctx.dp``): noise is added to integers on the grid, so nothing is divided,
rooted or searched in MPC. Variance and stdev open noisy (N, S, Q), the quantile noisy
counts per grid point, the histogram its noisy counts, and the analyst's side computes
the declared output from them (``finalize``: post-processing, free under DP). Minmax
opens its two ends clipped to the largest owner's bound, with noise of the order of the
whole range: a minimum is one person's value.
"""

from __future__ import annotations

from protocols.statistics.common import MAX_BINS as MAX_BINS, exact as exact
from protocols.statistics.declarations import DEFINITIONS as DEFINITIONS
from protocols.statistics.histogram import bin_counts as bin_counts, histogram as histogram
from protocols.statistics.minmax import minmax as minmax
from protocols.statistics.quantile import (
    check_grid as check_grid,
    decimal_text as decimal_text,
    grid_counts as grid_counts,
    quantile as quantile,
    quantile_from_counts as quantile_from_counts,
)
from protocols.statistics.spread import (
    moment_sizes as moment_sizes,
    spread_from_moments as spread_from_moments,
    stdev as stdev,
    variance as variance,
)
