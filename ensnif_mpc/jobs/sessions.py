"""How many parallel MPC sessions a job runs per party (``protocols.partitions``).

Who decides what:

- the analyst may ask for k in the signed spec (``params.sessions``, an integer from 1 to
  :data:`MAX_SESSIONS`; absent means 1), and may ask only for a protocol whose work splits
  by key on the route the job takes (:func:`check`, at the job file's parse, refused with
  ``sessions_not_partitionable`` otherwise);
- each node offers at most its ``parallel_sessions`` setting (0: one per core;
  :func:`capacity`), and reserves that many consecutive MPC ports for the job. More
  sessions than cores still split the per-key work but no longer shorten the wall time;
- the coordinator takes the smallest of the request and the offers (:func:`decide`),
  records it with the job's session (``session["sessions"]``, which the manifest and
  ``ensnif job status`` show) and sends it in Start; each node checks it against its own
  offer again. k = 1 runs today's single session unchanged.

Which protocols: :data:`PARTITIONABLE`, on the tagged-helper route only (two owners, one
helper, t = 1; ``ensnif_mpc.jobs.join_path``), where a sum over keys is a sum of sums
over disjoint key partitions. The PRF route and every other protocol run as one session.
The aligned joins (``join_group_by``, ``join_correlation``) are sums over keys too, but
not partitioned yet: each session would have to pad B's keyed table as well as A's
vector (H sees both lengths and aligns them; unpadded, the per-session sizes would show
B's split to A and A's to B) and read both owners' inputs through
``protocols.partitions.owner_input``, changes to ``protocols.join.aligned`` and its
cohort and group checks that are not made.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from ensnif_mpc.jobs import join_path

PARAM = "sessions"
MAX_SESSIONS = 16
# Their outputs are sums over the keys, so the per-partition results add up exactly.
PARTITIONABLE = frozenset({"intersection_size", "intersection_sum"})


class SessionsNotPartitionable(ValueError):
    """The job asks for k > 1 sessions for a protocol or route that does not split."""


def requested(params: Mapping[str, Any]) -> int:
    """The analyst's k (1 when absent); ValueError for anything but an int in range."""
    value = params.get(PARAM, 1)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"params.{PARAM}: expected an integer, got {type(value).__name__}")
    if not 1 <= value <= MAX_SESSIONS:
        raise ValueError(f"params.{PARAM}: expected 1 to {MAX_SESSIONS}, got {value}")
    return value


def partitionable(protocol: str, n_parties: int, n_owners: int, params: Mapping[str, Any]) -> bool:
    """True when a job of ``protocol`` in this session shape may run as k > 1 sessions: a
    protocol of :data:`PARTITIONABLE` on the tagged-helper route."""
    threshold = (n_parties - 1) // 2  # the honest-majority threshold every session uses
    route = join_path.choose(protocol, n_parties, threshold, n_owners, params)
    return protocol in PARTITIONABLE and route == join_path.TAGGED


def check(protocol: str, n_parties: int, n_owners: int, params: Mapping[str, Any]) -> int:
    """The requested k, refused (:class:`SessionsNotPartitionable`) when k > 1 for a job
    that does not split."""
    k = requested(params)
    if k > 1 and not partitionable(protocol, n_parties, n_owners, params):
        raise SessionsNotPartitionable(
            f"params.{PARAM} = {k}: {protocol} on this job's route runs as one session only "
            f"(parallel sessions: {', '.join(sorted(PARTITIONABLE))} on the "
            f"{join_path.TAGGED} route)"
        )
    return k


def capacity(configured: int, cores: int | None = None) -> int:
    """What a node offers: its ``parallel_sessions`` setting, or one per core for 0."""
    if int(configured) <= 0:
        configured = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, min(int(configured), MAX_SESSIONS))


def offer(configured: int, protocol: str, n_parties: int, n_owners: int, params: Any) -> int:
    """A node's offer for one job: its capacity, capped by the request (1 for a job that
    does not split or asks for one session)."""
    try:
        k = requested(params)
    except ValueError:
        return 1
    if k == 1 or not partitionable(protocol, n_parties, n_owners, params):
        return 1
    return min(k, capacity(configured))


def decide(request: int, offers: Iterable[int]) -> int:
    """The job's k: the smallest of the request and every node's offer (0 from a node
    that does not say: 1)."""
    return max(1, min([request, *(max(1, int(o)) for o in offers)]))
