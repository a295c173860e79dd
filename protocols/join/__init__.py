"""Private joins on a key column held by two data owners (docs/protocols.md, private joins).

Pipeline, the same for every protocol here:

1. Each owner pre-aggregates its own rows per join key in its own engine
   (so its table has one row per key — or per (key, group) for the group-by)
   and hashes the keys into Z_q locally (``protocols.prf.hash_keys``).
2. The tables are secret-shared and each is shuffled obliviously by resharing
   among the (t+1)-sets (``protocols.shuffle``): no party knows where its rows went.
3. A PRF is evaluated on the shuffled shared keys under a shared random key and
   only the pseudonyms are revealed (``protocols.prf``).
4. Pseudonyms are matched in the clear (a sort and a binary search — no
   comparison matrix, no oblivious sort); matching positions are public.
5. The still-shared values of matched rows are selected by those positions
   (local, no communication) and aggregated; where the owner's payload is wide
   (the group-by), a secret selection vector is carried back to the owner's
   original row order by the inverse shuffle instead, and one secure
   matrix-vector product aggregates it.

Sessions of two owners and one helper with t = 1 take the tagged-helper route instead
(``ensnif_mpc.jobs.join_path``): keyed-hash tags matched by the helper, a secret-shared
selection (``protocols.join.tagged``) or, for the group-by and the correlation, the
first owner's rows aligned to the second's by two resharings (``protocols.join.aligned``,
whose ``aligned_rows`` hands any program both owners' matched rows).

On the PRF route, what leaks to every party of the session (the helper included) is
listed per protocol: the two tables' sizes after per-key pre-aggregation (numbers of
distinct keys), the number of matching keys, and for the group-by, how many
(key, group) rows each matching key has on the value owner's side. No party
learns which of its own keys matched, nor any value.

DP release: every output is an integer noised inside MPC before the analyst opens it
(the correlation as its sufficient statistics, r computed on the analyst's side). A
key's contribution is bounded first, on the owner's side (``max_rows_per_key``), since
a key need not be a person: one person's row could otherwise bring in a key with any
number of other people's rows. The sizes and the match count stay exact and known to
the parties, as above: against them the noise changes nothing.
"""

from __future__ import annotations

from protocols.join.common import (
    cap_per_key as cap_per_key,
    capped as capped,
    match as match,
    row_cap as row_cap,
)
from protocols.join.correlation import (
    MOMENTS as MOMENTS,
    correlation_from_moments as correlation_from_moments,
    join_correlation as join_correlation,
    per_key_values as per_key_values,
)
from protocols.join.declarations import DEFINITIONS as DEFINITIONS
from protocols.join.group_by import (
    join_group_by as join_group_by,
    threshold_flags as threshold_flags,
)
from protocols.join.intersection import (
    intersection_size as intersection_size,
    intersection_sum as intersection_sum,
)
