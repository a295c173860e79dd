"""Which route a private join takes, chosen from the session alone so every party agrees.

Two routes exist (``protocols.join``):

- ``tagged-helper`` (``protocols.join.tagged``): two data owners and one compute-only
  helper, threshold t = 1. The owners tag their keys with a keyed PRF (CBC-MAC over
  AES-256, ``protocols.tagging``) under a fresh key the helper never holds; the helper
  matches the tags and secret-shares the selection.
  Only the helper learns the number of matching keys; a helper that deviates from the
  protocol chooses the selection alone.
  For ``join_group_by`` and ``join_correlation`` the helper's matching aligns the two
  owners' rows by two resharings (``protocols.join.aligned``); every party learns both
  table sizes there, only the helper the number of matching keys.
- ``prf-shuffle`` (``protocols.join.common``): every other session (more parties,
  t ≥ 2), a job that asks for it (``params.join_path = "prf-shuffle"``), or one whose
  integers would not fit the helper route's 64-bit ring. Keys are shuffled obliviously
  and pseudonymized by a PRF evaluated in MPC; every party matches for itself and learns
  the sizes and the match count.

The choice depends only on what every party's session holds (party count, threshold,
the owners, the signed parameters, the session's integer size), never on data. An owner
whose policy forbids a single party choosing the selection has no policy switch yet: it
approves only jobs that set ``join_path = "prf-shuffle"`` (the parameter is part of the
signed spec its node checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TAGGED = "tagged-helper"
PRF = "prf-shuffle"
AUTO = "auto"
ALIGNED = "aligned"  # the description of the tagged-helper route's aligned join
PARAM = "join_path"
CHOICES = (AUTO, PRF)  # "auto": the helper route where the session allows it

# Protocols that have a tagged-helper route: the selection (protocols.join.tagged) and the
# aligned join (protocols.join.aligned: the matched rows of both owners side by side).
SELECTION_PROTOCOLS = frozenset({"intersection_size", "intersection_sum"})
ALIGNED_PROTOCOLS = frozenset(
    {"join_group_by", "join_correlation", "join_moments", "join_regression", "join_logistic"}
)
TAGGED_PROTOCOLS = SELECTION_PROTOCOLS | ALIGNED_PROTOCOLS
# These sum in the ring Z_2^64 (signed): the session's integers must fit. The correlation
# sums in the MPyC field itself (Z_p), where every session's integers fit.
# The private joins that take one outsourced side (protocols/he_join.py): on the PRF route
# only. The coordinator refuses the others at submit; the helper node serves these.
OUTSOURCED_JOINS = frozenset(
    {
        "intersection_size",
        "intersection_sum",
        "join_regression",
        "join_group_by",
        "join_correlation",
        "join_moments",
    }
)
RING_PROTOCOLS = frozenset({"intersection_size", "intersection_sum", "join_group_by"})
MAX_BITS = 62
# Models whose exact release has a two-owner route with the helper as dealer
# (protocols.models.kmeans_ring); their other sessions run all in MPyC.
DEALER = "two-owner-dealer"
MPC_ONLY = "mpc"
DEALER_PROTOCOLS = frozenset({"kmeans"})

DESCRIPTIONS = {
    TAGGED: (
        "tagged-helper: the two owners tag their distinct keys with CBC-MAC-AES-256 (truncated "
        "to 64 bits) under a fresh per-job key only they hold and send the tags, in a "
        "private random order, to the helper; the helper matches them and secret-shares the "
        "selection; the aggregate is one dot product over shares. Only the helper learns the "
        "number of matching keys and both table sizes; the second owner learns the first "
        "owner's table size; the first owner learns nothing new. Trusts the helper to follow "
        "the protocol: a deviating helper chooses the selection alone; an owner colluding "
        "with the helper can test guessed keys of the other owner"
    ),
    ALIGNED: (
        "tagged-helper, aligned: the two owners tag their distinct keys with CBC-MAC-AES-256 "
        "(truncated to 64 bits) under a fresh per-job key only they hold and send the tags, "
        "in a private random order, to the helper, which matches them; the first owner's "
        "per-key columns are carried into the second owner's key order by two resharings "
        "(one permutation known to the first owner and the helper, uniformly random, one "
        "known to the helper and the second owner), so both owners' rows of a matched key "
        "stay secret-shared side by side; the aggregates are products over shares. Every "
        "party learns both table sizes (numbers of distinct keys); only the helper learns "
        "the number of matching keys; nobody learns how many groups a key has rows in. "
        "Trusts the helper to follow the protocol: a deviating helper chooses the pairing "
        "alone; an owner colluding with the helper can test guessed keys of the other owner "
        "and learns the other owner's columns"
    ),
    DEALER: (
        "two-owner-dealer (exact release): the two owners hold additive shares in Z_2^64 of "
        "the scores, assignments and per-cluster sums and the helper deals correlated "
        "randomness (triples, masks with their bits) from seeds it shares with each owner, "
        "receiving no share of data; comparisons open only values under fresh uniform "
        "masks; the counts and sums move into MPyC for the division and the centroids back "
        "under a statistical mask only the second owner sees. Every party learns both row "
        "counts. Trusts every party to follow the protocol; the helper colluding with an "
        "owner learns everything, every row's cluster included. A DP release uses no dealer"
    ),
    MPC_ONLY: (
        "mpc: every step in MPyC's Shamir secret sharing (more than two owners or t ≥ 2); "
        "every party learns the owners' row counts"
    ),
    PRF: (
        "prf-shuffle: shared keys shuffled obliviously by resharing, pseudonymized by a PRF "
        "evaluated in MPC, matched by every party for itself; every party learns both table "
        "sizes and the number of matching keys"
    ),
}


def requested(params: Mapping[str, Any]) -> str:
    """The route the job asks for (``auto`` unless set); an unknown value is an error."""
    value = params.get(PARAM, AUTO)
    if value not in CHOICES:
        raise ValueError(f"params.{PARAM}: expected one of {', '.join(CHOICES)}, got {value!r}")
    return str(value)


def choose(
    protocol: str,
    n_parties: int,
    threshold: int,
    n_owners: int,
    params: Mapping[str, Any],
    bit_length: int | None = None,
) -> str | None:
    """The route of a private join in this session, or None for a protocol that is not one.

    ``bit_length`` (the session's integer size) is known to the workers; the manifest,
    built before the session is sized, passes None and states the condition instead.
    """
    if protocol in DEALER_PROTOCOLS:
        return DEALER if (n_parties, threshold, n_owners) == (3, 1, 2) else MPC_ONLY
    if protocol not in TAGGED_PROTOCOLS:
        return None
    asked = requested(params)
    limit = bit_limit(protocol)
    fits = bit_length is None or limit is None or bit_length <= limit
    helper_session = n_parties == 3 and threshold == 1 and n_owners == 2
    if asked != PRF and protocol in TAGGED_PROTOCOLS and helper_session and fits:
        return TAGGED
    return PRF


def bit_limit(protocol: str) -> int | None:
    """The largest session integer size of the protocol's tagged-helper route (None: any)."""
    return MAX_BITS if protocol in RING_PROTOCOLS else None


def describe(path: str | None, protocol: str = "") -> str:
    """What the route reveals, for the manifest (the aligned join's text for its protocols)."""
    if path is None:
        return ""
    if path == TAGGED and protocol in ALIGNED_PROTOCOLS:
        return DESCRIPTIONS[ALIGNED]
    return DESCRIPTIONS[path]
